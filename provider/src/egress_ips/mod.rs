//! `allowlist_egress_ips`: the public IPs of available, tagged NAT gateways across many regions,
//! looked up concurrently, as a sorted, de-duplicated list of `/32` CIDRs.
//!
//! Its `id` is a digest of the query (regions, tags, filters); `sync_token` is a digest of the
//! result and changes exactly when the set of addresses changes.

mod model;

use crate::diagnostics::{lookup_error, unknown_regions};
use crate::provider_data::ProviderDataCell;
use crate::tfplugin::{
    Attribute, AttributePath, Block, DataSource, Diagnostic, Diagnostics, Mode, Nesting, Schema,
    Type, Value,
};
use allowlist_core::egress::{self, LookupError};
use allowlist_core::region::{self, RegionFailure};
use async_trait::async_trait;
use model::{attr, Query};

pub struct EgressIpsDataSource {
    provider: ProviderDataCell,
}

impl EgressIpsDataSource {
    pub fn new(provider: ProviderDataCell) -> Self {
        EgressIpsDataSource { provider }
    }
}

fn nat_gateway_type() -> Type {
    use attr::nat_gateway as ng;
    Type::object([
        (ng::ID, Type::String),
        (ng::REGION, Type::String),
        (ng::VPC_ID, Type::String),
        (ng::SUBNET_ID, Type::String),
        (ng::PUBLIC_IP, Type::String),
        (ng::ALLOCATION_ID, Type::String),
    ])
}

#[async_trait]
impl DataSource for EgressIpsDataSource {
    fn type_name(&self) -> &'static str {
        "allowlist_egress_ips"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Looks up every public IP of every `available` NAT gateway matching `tags` and `filter` in \
                 all `regions` at once, and returns them as a sorted, de-duplicated list of `/32` CIDRs. \
                 The lookup is all-or-nothing: if any region fails, the read fails with an error naming \
                 that region, and no partial list is ever returned.",
            )
            .attribute(Attribute::new(
                attr::REGIONS,
                Type::list(Type::String),
                Mode::Optional,
                "Regions to look in, e.g. `[\"us-west-2\", \"eu-central-1\"]`; `[\"all\"]` means every region \
                 enabled for the account. Defaults to the provider's `egress_regions`, else the provider's region.",
            ))
            .attribute(Attribute::new(
                attr::TAGS,
                Type::map(Type::String),
                Mode::Optional,
                "Tags every NAT gateway must carry. Values may use the wildcards `*` (any run of characters) \
                 and `?` (one character), e.g. `{ Name = \"*proxy*\" }`; `\\` makes the next character literal.",
            ))
            .attribute(Attribute::new(
                attr::MIN_COUNT,
                Type::Number,
                Mode::Optional,
                "Fail the read when fewer distinct addresses than this are found, so an empty or shrunken \
                 list never reaches a firewall. Defaults to 0 (no minimum).",
            ))
            .attribute(Attribute::new(
                attr::CIDRS,
                Type::list(Type::String),
                Mode::Computed,
                "The distinct public IPs as `/32` CIDRs, sorted numerically.",
            ))
            .attribute(Attribute::new(
                attr::PUBLIC_IPS,
                Type::list(Type::String),
                Mode::Computed,
                "The distinct public IPs, sorted numerically.",
            ))
            .attribute(Attribute::new(
                attr::NAT_GATEWAYS,
                Type::list(nat_gateway_type()),
                Mode::Computed,
                "One entry per public address of each matching NAT gateway (a gateway with secondary \
                 addresses has several): `id`, `region`, `vpc_id`, `subnet_id`, `public_ip`, `allocation_id`. \
                 Sorted by `public_ip`, then `region` and `id`.",
            ))
            .attribute(Attribute::new(
                attr::SYNC_TOKEN,
                Type::String,
                Mode::Computed,
                "A SHA-256 digest of `cidrs`: it changes exactly when the set of addresses changes, so it can \
                 trigger downstream updates.",
            ))
            .attribute(Attribute::new(
                attr::ID,
                Type::String,
                Mode::Computed,
                "A digest of the query (regions, tags and filters).",
            ))
            .block(
                attr::FILTER,
                Nesting::List,
                Block::new(
                    "A raw EC2 filter for DescribeNatGateways, e.g. `name = \"vpc-id\"`. Allowed names: \
                     `nat-gateway-id`, `subnet-id`, `vpc-id`, `tag-key`, `tag:<key>`. Several blocks must all match.",
                )
                .attribute(Attribute::new(
                    attr::filter::NAME,
                    Type::String,
                    Mode::Required,
                    "The filter name.",
                ))
                .attribute(Attribute::new(
                    attr::filter::VALUES,
                    Type::list(Type::String),
                    Mode::Required,
                    "Accepted values (any may match); EC2 wildcards `*` and `?` are allowed.",
                )),
            ),
        )
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Query::read(config).1
    }

    async fn read(&self, config: &Value) -> Result<Value, Diagnostics> {
        let (query, mut diags) = Query::read(config);
        if diags.has_errors() {
            return Err(diags);
        }
        if !query.fully_known {
            diags.push(Diagnostic::error(
                "Lookup Arguments Not Known",
                "The lookup's arguments are not known yet; Terraform reads this data source once they are.",
            ));
            return Err(diags);
        }
        let provider = self.provider.get()?;
        let from_config = !query.inner.regions.is_empty();
        let mut lookup_query = query.inner.clone();
        if !from_config {
            lookup_query.regions = if provider.egress_regions.is_empty() {
                provider
                    .aws
                    .home_region()
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            } else {
                provider.egress_regions.clone()
            };
        }
        let regions_path = AttributePath::of(attr::REGIONS);
        let attr = from_config.then_some((&regions_path, lookup_query.regions.as_slice()));
        let found = match egress::lookup(&provider.aws, &lookup_query).await {
            Ok(found) => found,
            Err(err) => {
                // A region that does not exist (or is not enabled) is the configuration's
                // fault: say so instead of "try again".
                if let LookupError::Regions { failures, .. } = &err {
                    let failed: Vec<&str> = failures.iter().map(|f| f.region.as_str()).collect();
                    if let RegionFailure::Unknown(msg) =
                        region::explain(&provider.aws, &failed).await
                    {
                        let summary =
                            format!("Unable to Look Up NAT Gateways in {}", failed.join(", "));
                        let said: Vec<String> = failures.iter().map(ToString::to_string).collect();
                        let d = unknown_regions(&summary, &msg, &failed, &said.join("; "), attr);
                        return Err(d.into());
                    }
                }
                return Err(lookup_error(&err, attr));
            }
        };

        let count = found.cidrs().len();
        tracing::info!(
            regions = found.regions.len(),
            addresses = count,
            "egress lookup finished"
        );
        if let Some(min) = query.min_count {
            if (count as i64) < min {
                return Err(Diagnostic::error(
                    "Too Few Egress Addresses",
                    format!(
                        "Found {count} distinct addresses in {} regions ({}), fewer than min_count = {min}. \
                         Check the tags and filters, and that the NAT gateways are available.",
                        found.regions.len(),
                        found.regions.join(", ")
                    ),
                )
                .at(AttributePath::of(attr::MIN_COUNT))
                .into());
            }
        }
        model::state(config, &lookup_query, &found).ok_or_else(|| {
            Diagnostic::error("Invalid Request", "The configuration is not an object.").into()
        })
    }
}
