//! Egress lookup: every public IP of every available NAT gateway that matches a query, across many
//! regions at once.
//!
//! All regions are asked concurrently, so a lookup costs about one region's latency. A lookup is
//! all-or-nothing: if any region fails, the result is an error listing every failed region, never
//! a shorter list.

use crate::aws::Aws;
use crate::error::AwsError;
use crate::paging::Pages;
use crate::region;
use crate::wildcard::Pattern;
use aws_sdk_ec2::types::{Filter as Ec2Filter, NatGatewayAddressStatus, NatGatewayState};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

/// The region list value that means "every region enabled for the account".
pub use crate::region::ALL as ALL_REGIONS;

/// EC2 filter names DescribeNatGateways accepts (besides `tag:<key>`). `state` is not offered:
/// the lookup always asks for `available` gateways.
pub const FILTER_NAMES: &[&str] = &["nat-gateway-id", "subnet-id", "tag-key", "vpc-id"];

/// A raw EC2 filter passed through to DescribeNatGateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    /// Checks the filter before any call: a known name, at least one non-empty value.
    pub fn check(&self) -> Result<(), FilterProblem> {
        check_filter_name(&self.name)?;
        if self.values.is_empty() || self.values.iter().any(String::is_empty) {
            return Err(FilterProblem::Values(format!(
                "filter {:?} needs at least one value, and no value may be empty",
                self.name
            )));
        }
        Ok(())
    }
}

/// Checks a filter's name alone (its values may not be known yet): one DescribeNatGateways
/// accepts, or `tag:<key>`.
pub fn check_filter_name(name: &str) -> Result<(), FilterProblem> {
    let name_ok =
        FILTER_NAMES.contains(&name) || name.strip_prefix("tag:").is_some_and(|k| !k.is_empty());
    if name_ok {
        return Ok(());
    }
    Err(FilterProblem::Name(format!(
        "{name:?} is not a DescribeNatGateways filter. Use one of {}, or tag:<key> \
         (the state filter is always \"available\")",
        FILTER_NAMES.join(", ")
    )))
}

/// Which part of a [`Filter`] is wrong, so a diagnostic can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterProblem {
    Name(String),
    Values(String),
}

/// What to look up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressQuery {
    /// Region names, or the single value [`ALL_REGIONS`].
    pub regions: Vec<String>,
    /// Tags every gateway must carry; values may use `*` and `?` wildcards.
    pub tags: BTreeMap<String, String>,
    /// Extra EC2 filters, passed through.
    pub filters: Vec<Filter>,
}

/// One public address of one NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatGatewayAddress {
    pub public_ip: Ipv4Addr,
    pub region: String,
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub allocation_id: String,
}

/// The result of a lookup: every matching address, sorted by IP, then region and gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressIps {
    /// The regions that were asked, after expanding [`ALL_REGIONS`], sorted.
    pub regions: Vec<String>,
    pub addresses: Vec<NatGatewayAddress>,
}

impl EgressIps {
    /// Builds the result from unsorted addresses (possibly with duplicates).
    pub fn new(
        mut regions: Vec<String>,
        addresses: impl IntoIterator<Item = NatGatewayAddress>,
    ) -> Self {
        regions.sort();
        regions.dedup();
        let addresses: BTreeSet<NatGatewayAddress> = addresses.into_iter().collect();
        EgressIps {
            regions,
            addresses: addresses.into_iter().collect(),
        }
    }

    /// The distinct public IPs, sorted numerically.
    pub fn public_ips(&self) -> Vec<Ipv4Addr> {
        let ips: BTreeSet<Ipv4Addr> = self.addresses.iter().map(|a| a.public_ip).collect();
        ips.into_iter().collect()
    }

    /// The distinct public IPs as `/32` CIDRs, sorted numerically.
    pub fn cidrs(&self) -> Vec<String> {
        self.public_ips()
            .iter()
            .map(|ip| format!("{ip}/32"))
            .collect()
    }

    /// A digest of [`cidrs`](Self::cidrs): it changes exactly when the set of addresses changes.
    pub fn sync_token(&self) -> String {
        let mut hash = Sha256::new();
        for cidr in self.cidrs() {
            hash.update(cidr.as_bytes());
            hash.update(b"\n");
        }
        hex::encode(hash.finalize())
    }
}

/// Why a lookup produced no list.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No region was given and none is configured.
    #[error("no region to look in: set regions, or the provider's egress_regions or region")]
    NoRegions,
    /// One or more regions failed; every failure is listed, sorted by region.
    #[error("{} of {} regions failed: {}", .failures.len(), .asked, list(.failures))]
    Regions {
        asked: usize,
        failures: Vec<AwsError>,
    },
    /// Expanding `["all"]` failed.
    #[error("listing the enabled regions failed: {0}")]
    ListRegions(AwsError),
    /// A region name is malformed.
    #[error("{0}")]
    BadRegion(String),
}

fn list(failures: &[AwsError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Looks up the query in all its regions concurrently.
pub async fn lookup(aws: &Aws, query: &EgressQuery) -> Result<EgressIps, LookupError> {
    let regions = resolve_regions(aws, &query.regions).await?;
    let results = futures::future::join_all(
        regions
            .iter()
            .map(|region| nat_gateway_ips(aws, region, query)),
    )
    .await;
    let mut addresses = Vec::new();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(found) => addresses.extend(found),
            Err(err) => failures.push(err),
        }
    }
    if !failures.is_empty() {
        failures.sort_by(|a, b| a.region.cmp(&b.region));
        return Err(LookupError::Regions {
            asked: regions.len(),
            failures,
        });
    }
    Ok(EgressIps::new(regions, addresses))
}

/// Turns the requested region list into concrete region names: `["all"]` becomes every region
/// enabled for the account (asked in the home region); names are checked and de-duplicated.
pub async fn resolve_regions(aws: &Aws, requested: &[String]) -> Result<Vec<String>, LookupError> {
    let regions = check_requested_regions(requested)?;
    if regions.iter().any(|r| r == ALL_REGIONS) {
        return region::describe_regions(aws, false)
            .await
            .map_err(LookupError::ListRegions);
    }
    Ok(regions)
}

/// Checks a requested region list without asking AWS ([`region::list_problems`]): [`ALL_REGIONS`]
/// alone, or region names, de-duplicated in their order.
pub fn check_requested_regions(requested: &[String]) -> Result<Vec<String>, LookupError> {
    if requested.is_empty() {
        return Err(LookupError::NoRegions);
    }
    let names: Vec<Option<&str>> = requested.iter().map(|r| Some(r.as_str())).collect();
    if let Some((_, problem)) = region::list_problems(&names, true).into_iter().next() {
        return Err(LookupError::BadRegion(problem));
    }
    let mut seen = HashSet::new();
    Ok(requested
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .cloned()
        .collect())
}

/// Page size for DescribeNatGateways (the API's maximum).
const PAGE_SIZE: i32 = 1000;

/// The addresses of every available NAT gateway in `region` that matches `query`, following
/// pagination. Tag patterns are sent as filters and also checked on each gateway returned.
pub async fn nat_gateway_ips(
    aws: &Aws,
    region: &str,
    query: &EgressQuery,
) -> Result<Vec<NatGatewayAddress>, AwsError> {
    let client = aws.ec2(region);
    let patterns: Vec<(&str, Pattern)> = query
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), Pattern::new(v)))
        .collect();
    let mut filters = vec![Ec2Filter::builder()
        .name("state")
        .values("available")
        .build()];
    filters.extend(patterns.iter().map(|(k, p)| {
        Ec2Filter::builder()
            .name(format!("tag:{k}"))
            .values(p.as_str())
            .build()
    }));
    filters.extend(query.filters.iter().map(|f| {
        Ec2Filter::builder()
            .name(&f.name)
            .set_values(Some(f.values.clone()))
            .build()
    }));

    let mut found = Vec::new();
    let mut pages = Pages::new(region, "DescribeNatGateways");
    loop {
        let page = client
            .describe_nat_gateways()
            .set_filter(Some(filters.clone()))
            .max_results(PAGE_SIZE)
            .set_next_token(pages.token())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DescribeNatGateways", e))?;
        for gateway in page.nat_gateways() {
            if gateway.state() != Some(&NatGatewayState::Available) {
                continue;
            }
            let tags_match = patterns.iter().all(|(key, pattern)| {
                gateway
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some(*key) && pattern.matches(t.value().unwrap_or("")))
            });
            if !tags_match {
                continue;
            }
            for address in gateway.nat_gateway_addresses() {
                if address.status() == Some(&NatGatewayAddressStatus::Failed) {
                    continue;
                }
                // Private NAT gateways have no public IP; skip what does not parse as IPv4.
                let Some(public_ip) = address.public_ip().and_then(|ip| ip.parse().ok()) else {
                    continue;
                };
                found.push(NatGatewayAddress {
                    public_ip,
                    region: region.to_owned(),
                    id: gateway.nat_gateway_id().unwrap_or_default().to_owned(),
                    vpc_id: gateway.vpc_id().unwrap_or_default().to_owned(),
                    subnet_id: gateway.subnet_id().unwrap_or_default().to_owned(),
                    allocation_id: address.allocation_id().unwrap_or_default().to_owned(),
                });
            }
        }
        if !pages.advance(page.next_token())? {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str, region: &str, id: &str) -> NatGatewayAddress {
        NatGatewayAddress {
            public_ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            region: region.into(),
            id: id.into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            allocation_id: format!("eipalloc-{id}"),
        }
    }

    #[test]
    fn cidrs_are_sorted_numerically_and_deduplicated() {
        let ips = EgressIps::new(
            vec!["us-west-2".into(), "eu-central-1".into()],
            vec![
                addr("198.18.10.1", "us-west-2", "nat-b"),
                addr("198.18.9.1", "eu-central-1", "nat-a"),
                addr("198.18.10.1", "us-west-2", "nat-b"),
                addr("198.18.10.1", "eu-central-1", "nat-c"),
            ],
        );
        assert_eq!(ips.cidrs(), vec!["198.18.9.1/32", "198.18.10.1/32"]);
        assert_eq!(
            ips.addresses.len(),
            3,
            "same IP on two gateways stays two entries"
        );
        assert_eq!(ips.regions, vec!["eu-central-1", "us-west-2"]);
    }

    #[test]
    fn sync_token_changes_iff_the_set_changes() {
        let a = EgressIps::new(
            vec![],
            vec![addr("198.18.0.1", "r", "a"), addr("198.18.0.2", "r", "b")],
        );
        let same_set = EgressIps::new(
            vec![],
            vec![
                addr("198.18.0.2", "other", "x"),
                addr("198.18.0.1", "r", "y"),
            ],
        );
        let different = EgressIps::new(vec![], vec![addr("198.18.0.1", "r", "a")]);
        assert_eq!(a.sync_token(), same_set.sync_token());
        assert_ne!(a.sync_token(), different.sync_token());
        assert_eq!(a.sync_token().len(), 64);
    }

    #[test]
    fn filters_are_checked_before_any_call() {
        let ok = Filter {
            name: "vpc-id".into(),
            values: vec!["vpc-1".into()],
        };
        assert_eq!(ok.check(), Ok(()));
        let tag = Filter {
            name: "tag:env".into(),
            values: vec!["prod".into()],
        };
        assert_eq!(tag.check(), Ok(()));
        let bad_name = Filter {
            name: "state".into(),
            values: vec!["pending".into()],
        };
        assert!(matches!(bad_name.check(), Err(FilterProblem::Name(m)) if m.contains("\"state\"")));
        let empty_tag = Filter {
            name: "tag:".into(),
            values: vec!["x".into()],
        };
        assert!(matches!(empty_tag.check(), Err(FilterProblem::Name(_))));
        let no_values = Filter {
            name: "vpc-id".into(),
            values: vec![],
        };
        assert!(matches!(no_values.check(), Err(FilterProblem::Values(_))));
    }
}
