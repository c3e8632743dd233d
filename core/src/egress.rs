//! Egress lookup: every public IP of the NAT gateways and tagged Elastic IPs that match a query,
//! in every account and region asked, at once.
//!
//! Accounts are reached first (the caller's own, assumed roles, an organization's members: one
//! AssumeRole each), then every account × region × source is asked concurrently, at most
//! [`MAX_IN_FLIGHT`] requests at a time, so a lookup costs about one region's latency. A lookup is
//! all-or-nothing: if any account or region fails, the result is an error listing every failure
//! with its account, never a shorter list.

use crate::accounts::Accounts;
use crate::aws::Aws;
use crate::error::AwsError;
use crate::estate;
pub use crate::estate::Failure;
use crate::paging::Pages;
use crate::region;
/// The region list value that means "every region enabled for the account".
pub use crate::region::ALL as ALL_REGIONS;
use crate::wildcard::Pattern;
use aws_sdk_ec2::types::{
    AvailabilityMode, Filter as Ec2Filter, NatGatewayAddressStatus, NatGatewayState,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

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

/// Where an egress address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The public addresses of available NAT gateways (zonal and regional).
    NatGateway,
    /// Elastic IPs, associated or not.
    ElasticIp,
}

impl Source {
    /// Every source, in order.
    pub const ALL: [Source; 2] = [Source::NatGateway, Source::ElasticIp];

    /// The name used in configuration and output: `nat_gateway`, `elastic_ip`.
    pub fn name(self) -> &'static str {
        match self {
            Source::NatGateway => "nat_gateway",
            Source::ElasticIp => "elastic_ip",
        }
    }

    /// The source named `name` ([`Source::name`]).
    pub fn from_name(name: &str) -> Result<Source, String> {
        Source::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
                format!("{name:?} is not a source; use {}", names.join(" or "))
            })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressQuery {
    /// Region names, or the single value [`ALL_REGIONS`].
    pub regions: Vec<String>,
    /// Tags every gateway and Elastic IP must carry; values may use `*` and `?` wildcards.
    pub tags: BTreeMap<String, String>,
    /// Extra EC2 filters, passed through to DescribeNatGateways (not to DescribeAddresses).
    pub filters: Vec<Filter>,
    /// Where addresses come from; never empty.
    pub sources: BTreeSet<Source>,
    /// The accounts to look in.
    pub accounts: Accounts,
}

impl Default for EgressQuery {
    /// NAT gateways of the caller's own account: the lookup before sources and accounts existed.
    fn default() -> Self {
        EgressQuery {
            regions: Vec::new(),
            tags: BTreeMap::new(),
            filters: Vec::new(),
            sources: BTreeSet::from([Source::NatGateway]),
            accounts: Accounts::default(),
        }
    }
}

/// One public address found: which resource holds it, where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EgressAddress {
    pub public_ip: Ipv4Addr,
    pub region: String,
    pub account_id: String,
    pub source: Source,
    /// `nat-…` for a NAT gateway, `eipalloc-…` for an Elastic IP.
    pub resource_id: String,
    /// The NAT gateway's VPC; None for an Elastic IP.
    pub vpc_id: Option<String>,
    /// The NAT gateway's subnet; None for a regional NAT gateway and for an Elastic IP.
    pub subnet_id: Option<String>,
    pub allocation_id: Option<String>,
    /// True when the address is attached (a NAT gateway's always is; an Elastic IP when
    /// associated with an instance or network interface).
    pub associated: bool,
}

/// The result of a lookup: every matching address once, sorted by IP, then region and account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressIps {
    /// The regions that were asked (in any account), after expanding [`ALL_REGIONS`], sorted.
    pub regions: Vec<String>,
    /// The accounts that were asked, sorted.
    pub accounts: Vec<String>,
    pub addresses: Vec<EgressAddress>,
}

impl EgressIps {
    /// Builds the result from unsorted addresses (possibly with duplicates). An Elastic IP that a
    /// NAT gateway of the same account and region also reports is listed once, as the gateway's.
    pub fn new(
        mut regions: Vec<String>,
        mut accounts: Vec<String>,
        addresses: impl IntoIterator<Item = EgressAddress>,
    ) -> Self {
        regions.sort();
        regions.dedup();
        accounts.sort();
        accounts.dedup();
        let addresses: BTreeSet<EgressAddress> = addresses.into_iter().collect();
        let on_gateways: HashSet<(Ipv4Addr, &str, &str)> = addresses
            .iter()
            .filter(|a| a.source == Source::NatGateway)
            .map(|a| (a.public_ip, a.region.as_str(), a.account_id.as_str()))
            .collect();
        let addresses = addresses
            .iter()
            .filter(|a| {
                a.source == Source::NatGateway
                    || !on_gateways.contains(&(
                        a.public_ip,
                        a.region.as_str(),
                        a.account_id.as_str(),
                    ))
            })
            .cloned()
            .collect();
        EgressIps {
            regions,
            accounts,
            addresses,
        }
    }

    /// The addresses of NAT gateways only.
    pub fn nat_gateways(&self) -> impl Iterator<Item = &EgressAddress> {
        self.addresses
            .iter()
            .filter(|a| a.source == Source::NatGateway)
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
    /// One or more calls failed (AssumeRole, ListAccounts, DescribeRegions, a region's lookup);
    /// every failure is listed, sorted by account and region. `asked` counts the account × region
    /// lookups planned.
    #[error("{} of {} lookups failed: {}", .failures.len(), .asked, list(.failures))]
    Regions {
        asked: usize,
        failures: Vec<Failure>,
    },
    /// Expanding `["all"]` failed ([`resolve_regions`] alone; a lookup reports it as a failure).
    #[error("listing the enabled regions failed: {0}")]
    ListRegions(AwsError),
    /// A region name is malformed.
    #[error("{0}")]
    BadRegion(String),
}

fn list(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Requests in flight at once over a whole lookup (all accounts, regions and sources): enough
/// for 10 accounts × 17 regions in one round, few enough that 50 × 20 do not trip throttling.
pub const MAX_IN_FLIGHT: usize = 256;

/// Looks up the query in all its accounts, regions and sources concurrently.
pub async fn lookup(aws: &Aws, query: &EgressQuery) -> Result<EgressIps, LookupError> {
    let requested = check_requested_regions(&query.regions)?;
    let (reached, mut failures) = estate::reach(aws, &query.accounts).await;

    // The regions of each account ("all" is what each account has enabled).
    let regions = futures::future::join_all(
        reached
            .iter()
            .map(|r| resolve_regions(r.aws.get(), &requested)),
    )
    .await;
    let mut work = Vec::new();
    for (n, result) in regions.into_iter().enumerate() {
        match result {
            Ok(names) => {
                for region in names {
                    work.extend(query.sources.iter().map(|s| (n, region.clone(), *s)));
                }
            }
            Err(LookupError::ListRegions(error)) => failures.push(Failure {
                account: reached[n].account.clone(),
                error,
            }),
            Err(other) => return Err(other),
        }
    }
    let asked = {
        let pairs: HashSet<(usize, &str)> = work.iter().map(|(n, r, _)| (*n, r.as_str())).collect();
        pairs.len() + failures.len()
    };
    let results: Vec<_> = futures::stream::iter(work)
        .map(|(n, region, source)| {
            let reached = &reached[n];
            async move {
                let account_id = reached.account.id.as_deref().unwrap_or_default();
                let found = match source {
                    Source::NatGateway => {
                        nat_gateway_ips(reached.aws.get(), account_id, &region, query).await
                    }
                    Source::ElasticIp => {
                        elastic_ips(reached.aws.get(), account_id, &region, query).await
                    }
                };
                (n, region, found)
            }
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await;
    let mut addresses = Vec::new();
    let mut asked_regions = Vec::new();
    for (n, region, result) in results {
        match result {
            Ok(found) => addresses.extend(found),
            Err(error) => failures.push(Failure {
                account: reached[n].account.clone(),
                error,
            }),
        }
        asked_regions.push(region);
    }
    if !failures.is_empty() {
        failures.sort_by(|a, b| {
            (&a.account.id, &a.error.region, a.error.operation).cmp(&(
                &b.account.id,
                &b.error.region,
                b.error.operation,
            ))
        });
        return Err(LookupError::Regions { asked, failures });
    }
    let accounts = reached
        .iter()
        .filter_map(|r| r.account.id.clone())
        .collect();
    Ok(EgressIps::new(asked_regions, accounts, addresses))
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

/// The tag patterns of `query`, and the same as EC2 `tag:<key>` filters.
fn tag_patterns(query: &EgressQuery) -> (Vec<(&str, Pattern)>, Vec<Ec2Filter>) {
    let patterns: Vec<(&str, Pattern)> = query
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), Pattern::new(v)))
        .collect();
    let filters = patterns
        .iter()
        .map(|(k, p)| {
            Ec2Filter::builder()
                .name(format!("tag:{k}"))
                .values(p.as_str())
                .build()
        })
        .collect();
    (patterns, filters)
}

/// True when `tags` carry every key of `patterns` with a matching value (checked on our side,
/// not trusted to the server's filter).
fn tags_match(patterns: &[(&str, Pattern)], tags: &[aws_sdk_ec2::types::Tag]) -> bool {
    patterns.iter().all(|(key, pattern)| {
        tags.iter()
            .any(|t| t.key() == Some(*key) && pattern.matches(t.value().unwrap_or("")))
    })
}

/// The addresses of every available NAT gateway in `region` (of account `account_id`) that
/// matches `query`, following pagination. Tag patterns are sent as filters and also checked on
/// each gateway returned. Regional gateways (no subnet) are read like zonal ones.
pub async fn nat_gateway_ips(
    aws: &Aws,
    account_id: &str,
    region: &str,
    query: &EgressQuery,
) -> Result<Vec<EgressAddress>, AwsError> {
    let client = aws.ec2(region);
    let (patterns, tag_filters) = tag_patterns(query);
    let mut filters = vec![Ec2Filter::builder()
        .name("state")
        .values("available")
        .build()];
    filters.extend(tag_filters);
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
            if gateway.state() != Some(&NatGatewayState::Available)
                || !tags_match(&patterns, gateway.tags())
            {
                continue;
            }
            // A regional gateway has no subnet (AWS may still send an empty one).
            let subnet_id = match gateway.availability_mode() {
                Some(AvailabilityMode::Regional) => None,
                _ => gateway.subnet_id().filter(|s| !s.is_empty()),
            };
            for address in gateway.nat_gateway_addresses() {
                if address.status() == Some(&NatGatewayAddressStatus::Failed) {
                    continue;
                }
                // Private NAT gateways have no public IP; skip what does not parse as IPv4.
                let Some(public_ip) = address.public_ip().and_then(|ip| ip.parse().ok()) else {
                    continue;
                };
                found.push(EgressAddress {
                    public_ip,
                    region: region.to_owned(),
                    account_id: account_id.to_owned(),
                    source: Source::NatGateway,
                    resource_id: gateway.nat_gateway_id().unwrap_or_default().to_owned(),
                    vpc_id: gateway.vpc_id().map(str::to_owned),
                    subnet_id: subnet_id.map(str::to_owned),
                    allocation_id: address.allocation_id().map(str::to_owned),
                    associated: true,
                });
            }
        }
        if !pages.advance(page.next_token())? {
            break;
        }
    }
    Ok(found)
}

/// The Elastic IPs in `region` (of account `account_id`) carrying the query's tags, associated
/// or not: tagging an allocated address announces it before it carries traffic. Tag patterns are
/// sent as filters and checked again here; the raw `filters` are DescribeNatGateways filters and
/// do not apply. DescribeAddresses answers in one page.
pub async fn elastic_ips(
    aws: &Aws,
    account_id: &str,
    region: &str,
    query: &EgressQuery,
) -> Result<Vec<EgressAddress>, AwsError> {
    let (patterns, filters) = tag_patterns(query);
    let out = aws
        .ec2(region)
        .describe_addresses()
        .set_filters((!filters.is_empty()).then_some(filters))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(region, "DescribeAddresses", e))?;
    let mut found = Vec::new();
    for address in out.addresses() {
        if !tags_match(&patterns, address.tags()) {
            continue;
        }
        let Some(public_ip) = address.public_ip().and_then(|ip| ip.parse().ok()) else {
            continue;
        };
        let allocation_id = address.allocation_id().map(str::to_owned);
        let present = |v: Option<&str>| v.is_some_and(|v| !v.is_empty());
        found.push(EgressAddress {
            public_ip,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            source: Source::ElasticIp,
            resource_id: allocation_id
                .clone()
                .unwrap_or_else(|| public_ip.to_string()),
            vpc_id: None,
            subnet_id: address
                .subnet_id()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            allocation_id,
            associated: present(address.association_id())
                || present(address.instance_id())
                || present(address.network_interface_id()),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str, region: &str, id: &str) -> EgressAddress {
        EgressAddress {
            public_ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            region: region.into(),
            account_id: "123456789012".into(),
            source: Source::NatGateway,
            resource_id: id.into(),
            vpc_id: Some("vpc-1".into()),
            subnet_id: Some("subnet-1".into()),
            allocation_id: Some(format!("eipalloc-{id}")),
            associated: true,
        }
    }

    fn eip(ip: &str, region: &str, account: &str) -> EgressAddress {
        EgressAddress {
            account_id: account.into(),
            source: Source::ElasticIp,
            resource_id: format!("eipalloc-{ip}"),
            vpc_id: None,
            subnet_id: None,
            allocation_id: Some(format!("eipalloc-{ip}")),
            associated: false,
            ..addr(ip, region, "x")
        }
    }

    #[test]
    fn cidrs_are_sorted_numerically_and_deduplicated() {
        let ips = EgressIps::new(
            vec!["us-west-2".into(), "eu-central-1".into()],
            vec![],
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
    fn an_elastic_ip_of_a_nat_gateway_is_listed_once_as_the_gateway() {
        let ips = EgressIps::new(
            vec!["us-west-2".into()],
            vec![
                "222222222222".into(),
                "123456789012".into(),
                "222222222222".into(),
            ],
            vec![
                eip("198.18.0.1", "us-west-2", "123456789012"),
                addr("198.18.0.1", "us-west-2", "nat-a"),
                // The same IP reported in another account or region is another address.
                eip("198.18.0.1", "us-west-2", "222222222222"),
                eip("198.18.0.1", "eu-west-1", "123456789012"),
                eip("198.18.0.2", "us-west-2", "123456789012"),
                eip("198.18.0.2", "us-west-2", "123456789012"),
            ],
        );
        let listed: Vec<(String, Source, &str, &str)> = ips
            .addresses
            .iter()
            .map(|a| {
                (
                    a.public_ip.to_string(),
                    a.source,
                    a.region.as_str(),
                    a.account_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                (
                    "198.18.0.1".into(),
                    Source::ElasticIp,
                    "eu-west-1",
                    "123456789012"
                ),
                (
                    "198.18.0.1".into(),
                    Source::NatGateway,
                    "us-west-2",
                    "123456789012"
                ),
                (
                    "198.18.0.1".into(),
                    Source::ElasticIp,
                    "us-west-2",
                    "222222222222"
                ),
                (
                    "198.18.0.2".into(),
                    Source::ElasticIp,
                    "us-west-2",
                    "123456789012"
                ),
            ]
        );
        assert_eq!(ips.cidrs(), vec!["198.18.0.1/32", "198.18.0.2/32"]);
        assert_eq!(ips.nat_gateways().count(), 1);
        assert_eq!(ips.accounts, vec!["123456789012", "222222222222"]);
    }

    #[test]
    fn sources_have_one_name_each() {
        for source in Source::ALL {
            assert_eq!(Source::from_name(source.name()), Ok(source));
        }
        let err = Source::from_name("nat-gateway").expect_err("kebab case is the CLI's");
        assert!(err.contains("nat_gateway or elastic_ip"), "{err}");
        assert_eq!(
            EgressQuery::default().sources,
            BTreeSet::from([Source::NatGateway])
        );
        assert!(EgressQuery::default().accounts.current);
    }

    #[test]
    fn sync_token_changes_iff_the_set_changes() {
        let a = EgressIps::new(
            vec![],
            vec![],
            vec![addr("198.18.0.1", "r", "a"), addr("198.18.0.2", "r", "b")],
        );
        let same_set = EgressIps::new(
            vec![],
            vec![],
            vec![
                addr("198.18.0.2", "other", "x"),
                eip("198.18.0.1", "r", "222222222222"),
            ],
        );
        let different = EgressIps::new(vec![], vec![], vec![addr("198.18.0.1", "r", "a")]);
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
