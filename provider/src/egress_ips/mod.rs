//! `allowlist_egress_ips`: the public IPs of available, tagged NAT gateways and tagged Elastic IPs
//! across many accounts and regions, looked up concurrently, as a sorted, de-duplicated list of
//! `/32` CIDRs plus one object per address.
//!
//! Its `id` is a digest of the query (regions, tags, filters, and sources and accounts when not
//! the defaults); `sync_token` is a digest of the result and changes exactly when the set of
//! addresses changes.

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

fn address_type() -> Type {
    use attr::address as ad;
    Type::object([
        (ad::PUBLIC_IP, Type::String),
        (ad::CIDR, Type::String),
        (ad::SOURCE, Type::String),
        (ad::RESOURCE_ID, Type::String),
        (ad::ACCOUNT_ID, Type::String),
        (ad::REGION, Type::String),
        (ad::VPC_ID, Type::String),
        (ad::SUBNET_ID, Type::String),
        (ad::ALLOCATION_ID, Type::String),
        (ad::ASSOCIATED, Type::Bool),
    ])
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
                "Looks up every public IP of every `available` NAT gateway (zonal or regional) matching `tags` \
                 and `filter`, and with `sources` also every Elastic IP carrying `tags`, in all `regions` of \
                 every account at once (the provider's own, `account` blocks, or a whole `organization`), and \
                 returns them as a sorted, de-duplicated list of `/32` CIDRs plus one object per address. \
                 The lookup is all-or-nothing: if any account or region fails, the read fails with an error \
                 naming that account and region, and no partial list is ever returned.",
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
                "Tags every NAT gateway and Elastic IP must carry. Values may use the wildcards `*` (any run of \
                 characters) and `?` (one character), e.g. `{ Name = \"*proxy*\" }`; `\\` makes the next \
                 character literal.",
            ))
            .attribute(Attribute::new(
                attr::SOURCES,
                Type::list(Type::String),
                Mode::Optional,
                "Where addresses come from: `nat_gateway` (the public addresses of available NAT gateways) \
                 and/or `elastic_ip` (Elastic IPs carrying `tags`, whether associated or not: tagging an \
                 allocated Elastic IP announces it before it carries traffic, so firewalls are ready first). \
                 An address that a NAT gateway and an Elastic IP both report is listed once, as the gateway's. \
                 `filter` blocks apply to NAT gateways only. Defaults to `[\"nat_gateway\"]`.",
            ))
            .attribute(Attribute::new(
                attr::INCLUDE_CURRENT_ACCOUNT,
                Type::Bool,
                Mode::Optional,
                "Whether to look in the account of the provider's own credentials too. Defaults to true \
                 without `account` and `organization` blocks, else false. An account reached twice (say, \
                 the current one also listed by the organization) is looked up once.",
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
                attr::ADDRESSES,
                Type::list(address_type()),
                Mode::Computed,
                "One object per address found, sorted by `public_ip`, then `region` and `account_id`: \
                 `public_ip`, `cidr` (`/32`), `source` (`nat_gateway` or `elastic_ip`), `resource_id` \
                 (`nat-…` or `eipalloc-…`), `account_id`, `region`, `vpc_id` (null for an Elastic IP), \
                 `subnet_id` (null for a regional NAT gateway and an Elastic IP), `allocation_id`, and \
                 `associated` (false for an Elastic IP not attached yet; always true for a NAT gateway).",
            ))
            .attribute(Attribute::new(
                attr::NAT_GATEWAYS,
                Type::list(nat_gateway_type()),
                Mode::Computed,
                "Superseded by `addresses`, kept for existing configurations. One entry per public address of \
                 each matching NAT gateway (a gateway with secondary addresses has several): `id`, `region`, \
                 `vpc_id`, `subnet_id` (null for a regional gateway), `public_ip`, `allocation_id`. Sorted by \
                 `public_ip`, then `region` and account.",
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
                "A digest of the query (regions, tags, filters, sources and accounts).",
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
            )
            .block(
                attr::ACCOUNT,
                Nesting::List,
                Block::new(
                    "Another AWS account to look in, reached by assuming a role there with the provider's \
                     credentials (one AssumeRole per account per provider process; credentials are cached \
                     and refreshed). The role needs `ec2:DescribeNatGateways`, `ec2:DescribeAddresses` and \
                     `ec2:DescribeRegions`, and must trust the provider's principal. Repeat for each account; \
                     not together with `organization`.",
                )
                .attribute(Attribute::new(
                    attr::account::ROLE_ARN,
                    Type::String,
                    Mode::Required,
                    "The IAM role to assume, e.g. `arn:aws:iam::222222222222:role/allowlist-egress-reader`. \
                     Its account is the account looked in; each account may be given once.",
                ))
                .attribute(Attribute::new(
                    attr::account::EXTERNAL_ID,
                    Type::String,
                    Mode::Optional,
                    "The external id the role's trust policy requires, if any.",
                )),
            )
            .block(
                attr::ORGANIZATION,
                Nesting::List,
                Block::new(
                    "Look in every ACTIVE account of the provider's organization (AWS Organizations \
                     ListAccounts, so the provider's credentials must belong to the management account or a \
                     delegated administrator), assuming the role `role_name` in each. At most one block; not \
                     together with `account` blocks. The management account is listed too: exclude it, or \
                     give it the role.",
                )
                .attribute(Attribute::new(
                    attr::organization::ROLE_NAME,
                    Type::String,
                    Mode::Required,
                    "The name of the role to assume in each account, e.g. `allowlist-egress-reader`.",
                ))
                .attribute(Attribute::new(
                    attr::organization::EXCLUDE,
                    Type::list(Type::String),
                    Mode::Optional,
                    "Account ids (12 digits) to leave out.",
                ))
                .attribute(Attribute::new(
                    attr::organization::EXTERNAL_ID,
                    Type::String,
                    Mode::Optional,
                    "The external id the roles' trust policies require, if any.",
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
        let accounts_path = AttributePath::of(attr::ACCOUNT);
        let attr = from_config.then_some((&regions_path, lookup_query.regions.as_slice()));
        let found = match egress::lookup(&provider.aws, &lookup_query).await {
            Ok(found) => found,
            Err(err) => {
                // A region that does not exist (or is not enabled) is the configuration's
                // fault: say so instead of "try again".
                if let LookupError::Regions { failures, .. } = &err {
                    let failed: Vec<&str> = failures
                        .iter()
                        .filter(|f| f.error.operation != "AssumeRole")
                        .map(|f| f.error.region.as_str())
                        .collect();
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
                let roles: Vec<String> = lookup_query
                    .accounts
                    .roles
                    .iter()
                    .map(|r| r.role_arn.clone())
                    .collect();
                return Err(lookup_error(
                    &err,
                    attr,
                    Some((&accounts_path, roles.as_slice(), attr::account::ROLE_ARN)),
                ));
            }
        };

        let count = found.cidrs().len();
        tracing::info!(
            accounts = found.accounts.len(),
            regions = found.regions.len(),
            addresses = count,
            "egress lookup finished"
        );
        if let Some(min) = query.min_count {
            if (count as i64) < min {
                return Err(Diagnostic::error(
                    "Too Few Egress Addresses",
                    format!(
                        "Found {count} distinct addresses in {} regions ({}) of {} accounts, fewer than \
                         min_count = {min}. Check the tags and filters, and that the NAT gateways are available.",
                        found.regions.len(),
                        found.regions.join(", "),
                        found.accounts.len()
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
