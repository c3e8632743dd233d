//! The `allowlist` provider block: where AWS is (region, profile, endpoint, a base role to
//! assume), the default regions for egress lookups, and guardrails for temporary ingress. AWS
//! clients are built once per provider process and shared by every data source and resource.

use crate::egress_ips::EgressIpsDataSource;
use crate::grants::GrantsDataSource;
use crate::provider_data::{ProviderData, ProviderDataCell};
use crate::temporary_ingress::{EphemeralIngress, TemporaryIngress};
use crate::tfplugin::{
    Attribute, AttributePath, Block, DataSource, Diagnostic, Diagnostics, EphemeralResource, Mode,
    Nesting, Provider, Resource, Schema, Tri, Type, Value,
};
use crate::validators;
use allowlist_core::accounts::{self, AssumeRole};
use allowlist_core::clock::Clock;
use allowlist_core::{Aws, AwsSettings};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Default upper bound on a temporary grant's TTL.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default service that answers with the caller's public IP.
pub const DEFAULT_IP_LOOKUP_URL: &str = "https://checkip.amazonaws.com";

/// The provider block's attribute names, written once.
mod attr {
    pub const REGION: &str = "region";
    pub const PROFILE: &str = "profile";
    pub const EGRESS_REGIONS: &str = "egress_regions";
    pub const ENDPOINT_URL: &str = "endpoint_url";
    pub const MAX_TTL: &str = "max_ttl";
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    pub const IP_LOOKUP_URL: &str = "ip_lookup_url";
    /// The `assume_role` block type.
    pub const ASSUME_ROLE: &str = "assume_role";

    /// Attributes of the `assume_role` block.
    pub mod assume_role {
        pub const ROLE_ARN: &str = "role_arn";
        pub const EXTERNAL_ID: &str = "external_id";
        pub const SESSION_NAME: &str = "session_name";
    }
}

pub struct AllowlistProvider {
    data: ProviderDataCell,
    clock: Arc<dyn Clock>,
}

impl AllowlistProvider {
    /// A provider whose resources read the time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        AllowlistProvider {
            data: ProviderDataCell::default(),
            clock,
        }
    }
}

/// The provider configuration after validation.
#[derive(Debug, Default, PartialEq)]
struct Config {
    settings: AwsSettings,
    egress_regions: Vec<String>,
    max_ttl: Option<Duration>,
    ip_lookup_url: Option<String>,
}

/// Reads and checks the configuration. Unknown values are skipped when `allow_unknown`
/// (validation) and are errors otherwise (configuration needs every value).
fn read_config(config: &Value, allow_unknown: bool) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::new();
    let mut out = Config::default();
    let root = AttributePath::root();
    let string = |name: &str, diags: &mut Diagnostics| -> Option<String> {
        match diags.take(config.get::<String>(&root, name))? {
            Tri::Known(v) => Some(v),
            Tri::Null => None,
            Tri::Unknown => {
                if !allow_unknown {
                    diags.push(unknown_at_configure(name));
                }
                None
            }
        }
    };
    out.settings.region = string(attr::REGION, &mut diags);
    out.settings.profile = string(attr::PROFILE, &mut diags);
    out.settings.endpoint_url = string(attr::ENDPOINT_URL, &mut diags);
    let max_ttl = string(attr::MAX_TTL, &mut diags);
    let request_timeout = string(attr::REQUEST_TIMEOUT, &mut diags);
    out.ip_lookup_url = string(attr::IP_LOOKUP_URL, &mut diags);

    if let Some(region) = &out.settings.region {
        diags.take(validators::region_name(
            region,
            &AttributePath::of(attr::REGION),
        ));
    }
    if let Some(url) = &out.settings.endpoint_url {
        diags.take(validators::url(url, &AttributePath::of(attr::ENDPOINT_URL)));
    }
    if let Some(url) = &out.ip_lookup_url {
        diags.take(validators::url(
            url,
            &AttributePath::of(attr::IP_LOOKUP_URL),
        ));
    }
    if let Some(timeout) = request_timeout {
        out.settings.request_timeout = diags.take(validators::positive_duration(
            &timeout,
            &AttributePath::of(attr::REQUEST_TIMEOUT),
        ));
    }
    if let Some(ttl) = max_ttl {
        out.max_ttl = diags.take(validators::positive_duration(
            &ttl,
            &AttributePath::of(attr::MAX_TTL),
        ));
    }
    match diags.take(config.get::<Vec<Tri<String>>>(&root, attr::EGRESS_REGIONS)) {
        Some(Tri::Known(regions)) => {
            let path = AttributePath::of(attr::EGRESS_REGIONS);
            diags.extend(validators::region_list(&regions, &path, true));
            if regions.iter().any(Tri::is_unknown) && !allow_unknown {
                diags.push(unknown_at_configure(attr::EGRESS_REGIONS));
            }
            out.egress_regions = regions.into_iter().filter_map(Tri::known).collect();
        }
        Some(Tri::Unknown) if !allow_unknown => {
            diags.push(unknown_at_configure(attr::EGRESS_REGIONS))
        }
        _ => {}
    }
    out.settings.assume_role = read_assume_role(config, allow_unknown, &mut diags);
    (out, diags)
}

/// The `assume_role` block: at most one, a role ARN, optional external id and session name.
fn read_assume_role(
    config: &Value,
    allow_unknown: bool,
    diags: &mut Diagnostics,
) -> Option<AssumeRole> {
    use attr::assume_role as ar;
    let Value::List(blocks) = config.attr(attr::ASSUME_ROLE) else {
        return None;
    };
    for i in 1..blocks.len() {
        diags.push(
            Diagnostic::error(
                "Too Many assume_role Blocks",
                "Give at most one assume_role block.",
            )
            .at(AttributePath::of(attr::ASSUME_ROLE).index(i)),
        );
    }
    let block = blocks.first()?;
    let path = AttributePath::of(attr::ASSUME_ROLE).index(0);
    let string = |name: &str,
                  check: fn(&str) -> Result<(), String>,
                  summary: &str,
                  diags: &mut Diagnostics|
     -> Option<String> {
        match diags.take(block.get::<String>(&path, name))? {
            Tri::Known(v) => {
                if let Err(msg) = check(&v) {
                    diags.push(Diagnostic::error(summary, msg).at(path.attr(name)));
                }
                Some(v)
            }
            Tri::Null => None,
            Tri::Unknown => {
                if !allow_unknown {
                    diags.push(unknown_at_configure(attr::ASSUME_ROLE).at(path.attr(name)));
                }
                None
            }
        }
    };
    let role_arn = string(
        ar::ROLE_ARN,
        |arn| accounts::check_role_arn(arn).map(drop),
        "Invalid Role ARN",
        diags,
    )?;
    let external_id = string(
        ar::EXTERNAL_ID,
        accounts::check_external_id,
        "Invalid External ID",
        diags,
    );
    let session_name = string(
        ar::SESSION_NAME,
        accounts::check_session_name,
        "Invalid Session Name",
        diags,
    );
    Some(AssumeRole {
        role_arn,
        external_id,
        session_name,
    })
}

fn unknown_at_configure(name: &str) -> Diagnostic {
    Diagnostic::error(
        "Provider Configuration Not Known",
        format!("{name} depends on a value that is not known until apply. The provider needs it to plan; set it from values known at plan time."),
    )
    .at(AttributePath::of(name))
}

#[async_trait]
impl Provider for AllowlistProvider {
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "The allowlist provider answers two questions: which IPs our traffic comes from \
                 (`allowlist_egress_ips`, looked up across many accounts and regions at once) and how to let \
                 someone in for a while (`allowlist_temporary_ingress`). AWS credentials come from the usual \
                 AWS chain (environment, shared config and credentials files, SSO, container and instance \
                 roles), optionally through an `assume_role` block.",
            )
            .attribute(Attribute::new(
                attr::REGION,
                Type::String,
                Mode::Optional,
                "The home AWS region: the default region of temporary ingress grants, of egress lookups when \
                 neither the data source nor `egress_regions` names any, and where the region list is read for \
                 `[\"all\"]`. Defaults to the AWS SDK's region (`AWS_REGION`, the profile).",
            ))
            .attribute(Attribute::new(
                attr::PROFILE,
                Type::String,
                Mode::Optional,
                "A named profile from the AWS shared config and credentials files. Defaults to `AWS_PROFILE`, \
                 else `default`.",
            ))
            .attribute(Attribute::new(
                attr::EGRESS_REGIONS,
                Type::list(Type::String),
                Mode::Optional,
                "Default regions for `allowlist_egress_ips` lookups, e.g. `[\"us-west-2\", \"eu-central-1\"]`. \
                 `[\"all\"]` means every region enabled for the account.",
            ))
            .attribute(Attribute::new(
                attr::ENDPOINT_URL,
                Type::String,
                Mode::Optional,
                "A custom AWS endpoint for every service, e.g. a local emulator at `http://127.0.0.1:5000`. \
                 Defaults to `AWS_ENDPOINT_URL`, else AWS itself.",
            ))
            .attribute(Attribute::new(
                attr::MAX_TTL,
                Type::String,
                Mode::Optional,
                "The longest `ttl` a temporary ingress grant may have, as a duration such as `24h` or `90m` \
                 (at most 100 years). Defaults to `24h`.",
            ))
            .attribute(Attribute::new(
                attr::REQUEST_TIMEOUT,
                Type::String,
                Mode::Optional,
                "Time allowed for one AWS call, retries and backoff included, as a duration such as `60s` \
                 or `2m`. Throttling and server errors are retried (4 attempts, bounded exponential \
                 backoff) within it; one attempt gets at most 20s of it. Defaults to `60s`.",
            ))
            .attribute(Attribute::new(
                attr::IP_LOOKUP_URL,
                Type::String,
                Mode::Optional,
                "A URL that answers with the caller's public IP address as plain text; used when a temporary \
                 ingress grant sets no `cidr_blocks`. Defaults to `https://checkip.amazonaws.com`.",
            ))
            .block(
                attr::ASSUME_ROLE,
                Nesting::List,
                Block::new(
                    "A role the provider assumes with the credentials it found, as in the hashicorp/aws \
                     provider: every call is then made as that role, and the roles of \
                     `allowlist_egress_ips` `account` blocks are assumed from it. Assumed once per provider \
                     process; the credentials are cached and refreshed before they expire. At most one block.",
                )
                .attribute(Attribute::new(
                    attr::assume_role::ROLE_ARN,
                    Type::String,
                    Mode::Required,
                    "The IAM role to assume, e.g. `arn:aws:iam::111111111111:role/deployer`.",
                ))
                .attribute(Attribute::new(
                    attr::assume_role::EXTERNAL_ID,
                    Type::String,
                    Mode::Optional,
                    "The external id the role's trust policy requires, if any.",
                ))
                .attribute(Attribute::new(
                    attr::assume_role::SESSION_NAME,
                    Type::String,
                    Mode::Optional,
                    "The session name, shown in the role's account (CloudTrail, the assumed-role ARN). \
                     2 to 64 letters, digits or `+=,.@_-`. Defaults to `allowlist`.",
                )),
            ),
        )
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        read_config(config, true).1
    }

    async fn configure(&self, terraform_version: &str, config: &Value) -> Diagnostics {
        let (config, diags) = read_config(config, false);
        if diags.has_errors() {
            return diags;
        }
        let aws = Aws::load(&config.settings).await;
        tracing::info!(
            terraform_version,
            region = aws.home_region().unwrap_or("(none)"),
            egress_regions = ?config.egress_regions,
            endpoint_override = config.settings.endpoint_url.is_some(),
            assume_role = config.settings.assume_role.as_ref().map(|r| r.role_arn.as_str()),
            "provider configured"
        );
        self.data.set(ProviderData {
            aws,
            egress_regions: config.egress_regions,
            max_ttl: config.max_ttl.unwrap_or(DEFAULT_MAX_TTL),
            ip_lookup_url: config
                .ip_lookup_url
                .unwrap_or_else(|| DEFAULT_IP_LOOKUP_URL.to_owned()),
        });
        diags
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![
            Arc::new(EgressIpsDataSource::new(self.data.clone())),
            Arc::new(GrantsDataSource::new(self.data.clone(), self.clock.clone())),
        ]
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(TemporaryIngress::new(
            self.data.clone(),
            self.clock.clone(),
        ))]
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource>> {
        vec![Arc::new(EphemeralIngress::new(
            self.data.clone(),
            self.clock.clone(),
        ))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> AllowlistProvider {
        AllowlistProvider::new(Arc::new(allowlist_core::clock::SystemClock::new()))
    }

    fn config(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        provider().schema().block.conform(&mut v).expect("conforms");
        v
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        assert_eq!(provider().schema().block.check("provider"), Ok(()));
    }

    #[test]
    fn empty_configuration_is_valid() {
        let (cfg, diags) = read_config(&config(&[]), false);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn bad_values_point_at_their_attribute() {
        let (_, diags) = read_config(
            &config(&[
                ("region", Value::string("mars-1")),
                (
                    "egress_regions",
                    Value::strings(["us-west-2", "bogus", "all"]),
                ),
                ("max_ttl", Value::string("0s")),
                ("endpoint_url", Value::string("127.0.0.1:5000")),
                ("ip_lookup_url", Value::string("ftp://x")),
                ("request_timeout", Value::string("soon")),
            ]),
            true,
        );
        assert_eq!(
            diags.paths(),
            vec![
                "region",
                "endpoint_url",
                "ip_lookup_url",
                "request_timeout",
                "max_ttl",
                "egress_regions[1]",
                "egress_regions[2]"
            ]
        );
    }

    #[test]
    fn unknown_values_are_fine_to_validate_but_not_to_configure() {
        let cfg = config(&[("region", Value::unknown())]);
        assert!(read_config(&cfg, true).1.is_empty());
        let (_, diags) = read_config(&cfg, false);
        assert_eq!(diags.paths(), vec!["region"]);
    }

    #[test]
    fn request_timeout_reaches_the_aws_settings() {
        let (cfg, diags) = read_config(&config(&[("request_timeout", Value::string("2m"))]), false);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.settings.request_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn all_regions_alone_is_accepted() {
        let (cfg, diags) = read_config(
            &config(&[("egress_regions", Value::strings(["all"]))]),
            false,
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.egress_regions, vec!["all"]);
    }
}
