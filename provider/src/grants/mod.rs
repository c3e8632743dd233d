//! `allowlist_grants`: who holds access right now. Every grant behind our managed rules in the
//! given regions (and, optionally, security groups), read back from the rules' tags, so grants
//! made by the resource, the ephemeral resource or any other front door show up alike. One
//! DescribeSecurityGroupRules per region and page; regions are read concurrently, and any region
//! failing fails the read (never a shorter list).
//!
//! Its `id` is a digest of the regions read, the groups and `include_expired`.

mod model;

use crate::diagnostics::{aws_error, unknown_regions};
use crate::provider_data::ProviderDataCell;
use crate::tfplugin::{
    Attribute, AttributePath, Block, DataSource, Diagnostic, Diagnostics, Mode, Schema, Type, Value,
};
use allowlist_core::clock::Clock;
use allowlist_core::egress;
use allowlist_core::ingress;
use allowlist_core::region::{self, RegionFailure};
use async_trait::async_trait;
use model::{attr, Query};
use std::sync::Arc;

pub struct GrantsDataSource {
    provider: ProviderDataCell,
    clock: Arc<dyn Clock>,
}

impl GrantsDataSource {
    pub fn new(provider: ProviderDataCell, clock: Arc<dyn Clock>) -> Self {
        GrantsDataSource { provider, clock }
    }
}

fn grant_type() -> Type {
    use attr::grant as g;
    Type::object([
        (g::ID, Type::String),
        (g::REGION, Type::String),
        (g::SECURITY_GROUP_IDS, Type::list(Type::String)),
        (g::CIDR_BLOCKS, Type::list(Type::String)),
        (g::PORTS, Type::list(Type::Number)),
        (g::PORT_RANGES, Type::list(Type::String)),
        (g::PROTOCOL, Type::String),
        (g::CREATED_AT, Type::String),
        (g::EXPIRES_AT, Type::String),
        (g::GRANTED_BY, Type::String),
        (g::EPHEMERAL, Type::Bool),
        (g::EXPIRED, Type::Bool),
        (g::RULE_IDS, Type::list(Type::String)),
    ])
}

#[async_trait]
impl DataSource for GrantsDataSource {
    fn type_name(&self) -> &'static str {
        "allowlist_grants"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Lists who holds access right now: every temporary ingress grant whose rules carry our tags in \
                 `regions` (optionally only in `security_group_ids`), whichever way it was made (the \
                 `allowlist_temporary_ingress` resource, the ephemeral resource of the same name, or another \
                 front door writing the same tags). Each grant is read from its rules' tags alone; a rule \
                 that several grants share appears in each of them. The read is all-or-nothing: if any \
                 region fails, it fails naming the region, and no shorter list is ever returned.",
            )
            .attribute(Attribute::new(
                attr::REGIONS,
                Type::list(Type::String),
                Mode::Optional,
                "Regions to look in, e.g. `[\"us-west-2\"]`; `[\"all\"]` means every region enabled for the \
                 account. Defaults to the provider's region.",
            ))
            .attribute(Attribute::new(
                attr::SECURITY_GROUP_IDS,
                Type::list(Type::String),
                Mode::Optional,
                "Only rules in these security groups (`sg-…`). A grant that also opens other groups then \
                 lists only its rules in these. Defaults to every group.",
            ))
            .attribute(Attribute::new(
                attr::INCLUDE_EXPIRED,
                Type::Bool,
                Mode::Optional,
                "Also list grants whose expiry has passed but whose rules the sweep has not revoked yet \
                 (`expired = true`). Defaults to false.",
            ))
            .attribute(Attribute::new(
                attr::GRANTS,
                Type::list(grant_type()),
                Mode::Computed,
                "One object per grant, sorted by `region`, then `id`: `id` (the grant id), `region`, \
                 `security_group_ids`, `cidr_blocks`, `ports` (single ports), `port_ranges` (`\"FROM-TO\"`), \
                 `protocol`, `created_at` and `expires_at` (RFC 3339 UTC; `expires_at` is null when a rule's \
                 tags were edited so that it cannot be read, and the sweep then keeps it), `granted_by` (the \
                 caller ARN recorded when the grant was made), `ephemeral` (true for a grant of the \
                 ephemeral resource, alive only during one Terraform run), `expired`, and `rule_ids` \
                 (`sgr-…`). Times are the grant's own, even on a shared rule.",
            ))
            .attribute(Attribute::new(
                attr::ID,
                Type::String,
                Mode::Computed,
                "A digest of the query (regions, security groups, include_expired).",
            )),
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
                "Arguments Not Known",
                "The data source's arguments are not known yet; Terraform reads it once they are.",
            ));
            return Err(diags);
        }
        let provider = self.provider.get()?;
        let aws = &provider.aws;
        let from_config = !query.regions.is_empty();
        let requested = if from_config {
            query.regions.clone()
        } else {
            aws.home_region().map(str::to_owned).into_iter().collect()
        };
        let regions_path = AttributePath::of(attr::REGIONS);
        let attr = from_config.then_some((&regions_path, query.regions.as_slice()));
        let regions = egress::resolve_regions(aws, &requested)
            .await
            .map_err(|e| match e {
                egress::LookupError::ListRegions(err) => {
                    Diagnostics::from(aws_error("Unable to List Enabled Regions", &err))
                }
                other => {
                    let d = Diagnostic::error("No Usable Region", other.to_string());
                    Diagnostics::from(if from_config {
                        d.at(regions_path.clone())
                    } else {
                        d
                    })
                }
            })?;
        let results = futures::future::join_all(
            regions
                .iter()
                .map(|region| ingress::list_grants(aws, region, &query.group_ids)),
        )
        .await;
        let mut grants = Vec::new();
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(found) => grants.extend(found),
                Err(err) => failures.push(err),
            }
        }
        if !failures.is_empty() {
            let failed: Vec<&str> = failures.iter().map(|f| f.region.as_str()).collect();
            if let RegionFailure::Unknown(msg) = region::explain(aws, &failed).await {
                let said: Vec<String> = failures.iter().map(ToString::to_string).collect();
                let summary = format!("Unable to List Grants in {}", failed.join(", "));
                return Err(
                    unknown_regions(&summary, &msg, &failed, &said.join("; "), attr).into(),
                );
            }
            let mut diags = Diagnostics::new();
            for err in &failures {
                let mut d = aws_error(&format!("Unable to List Grants in {}", err.region), err);
                d.detail.push_str(&format!(
                    "\n\n{} of {} regions failed. No list is returned unless every region answers.",
                    failures.len(),
                    regions.len()
                ));
                if let Some(i) = query.regions.iter().position(|r| *r == err.region) {
                    d = d.at(regions_path.index(i));
                }
                diags.push(d);
            }
            return Err(diags);
        }
        grants.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
        let now = self.clock.now();
        tracing::info!(
            regions = regions.len(),
            grants = grants.len(),
            "grants listed"
        );
        model::state(config, &query, &regions, &grants, now).ok_or_else(|| {
            Diagnostic::error("Invalid Request", "The configuration is not an object.").into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::ToValue;
    use allowlist_core::clock::{format_instant, FixedClock};
    use allowlist_core::ingress::{HeldGrant, PortRange, Rule};
    use std::time::{Duration, SystemTime};

    fn data_source() -> GrantsDataSource {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        GrantsDataSource::new(ProviderDataCell::default(), Arc::new(FixedClock(now)))
    }

    fn config(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        data_source()
            .schema()
            .block
            .conform(&mut v)
            .expect("conforms");
        v
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        let ds = data_source();
        assert_eq!(ds.schema().block.check(ds.type_name()), Ok(()));
    }

    #[test]
    fn bad_arguments_point_at_the_attribute() {
        let bad = config(&[
            (attr::REGIONS, Value::strings(["us-west-2", "nowhere"])),
            (
                attr::SECURITY_GROUP_IDS,
                Value::strings(["sg-0123abcd", "web", "sg-0123abcd"]),
            ),
        ]);
        let diags = data_source().validate(&bad);
        assert_eq!(
            diags.paths(),
            vec![
                "regions[1]",
                "security_group_ids[1]",
                "security_group_ids[2]"
            ]
        );
        let empty = config(&[(attr::REGIONS, Value::List(vec![]))]);
        assert_eq!(data_source().validate(&empty).paths(), vec!["regions"]);
    }

    #[test]
    fn unknown_arguments_validate_but_are_not_read() {
        let config = config(&[(
            attr::SECURITY_GROUP_IDS,
            Value::List(vec![Value::unknown()]),
        )]);
        let (query, diags) = Query::read(&config);
        assert!(!diags.has_errors());
        assert!(!query.fully_known);
    }

    #[test]
    fn expired_grants_are_listed_only_when_asked() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let grant = |id: &str, expires: SystemTime| HeldGrant {
            id: id.into(),
            region: "us-west-2".into(),
            protocol: "tcp".into(),
            created_at: None,
            expires_at: Some(expires),
            granted_by: Some("arn:aws:sts::123456789012:assumed-role/ci/run".into()),
            ephemeral: true,
            rules: [
                ("sgr-1", PortRange::single(22)),
                (
                    "sgr-2",
                    PortRange {
                        from: 8000,
                        to: 8100,
                    },
                ),
            ]
            .into_iter()
            .map(|(rule_id, ports)| Rule {
                group_id: "sg-0123abcd".into(),
                id: rule_id.into(),
                protocol: "tcp".into(),
                ports,
                cidr: Some("203.0.113.7/32".parse().expect("cidr")),
                description: None,
                tags: Default::default(),
            })
            .collect(),
        };
        let grants = [
            grant("old", now),
            grant("new", now + Duration::from_secs(60)),
        ];
        let read = |include_expired: bool| {
            let config = config(&[(attr::INCLUDE_EXPIRED, Value::Bool(include_expired))]);
            let (query, _) = Query::read(&config);
            let state =
                model::state(&config, &query, &["us-west-2".into()], &grants, now).expect("state");
            match state.attr(attr::GRANTS) {
                Value::List(items) => items.clone(),
                other => panic!("grants is {other:?}"),
            }
        };
        let live = read(false);
        assert_eq!(live.len(), 1);
        let g = &live[0];
        assert_eq!(g.attr("id"), &Value::string("new"));
        assert_eq!(g.attr("ports"), &Value::List(vec![22i64.to_value()]));
        assert_eq!(g.attr("port_ranges"), &Value::strings(["8000-8100"]));
        assert_eq!(g.attr("created_at"), &Value::Null);
        assert_eq!(
            g.attr("expires_at"),
            &Value::string(format_instant(now + Duration::from_secs(60)))
        );
        assert_eq!(
            (g.attr("ephemeral"), g.attr("expired")),
            (&Value::Bool(true), &Value::Bool(false))
        );
        let all = read(true);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].attr("expired"), &Value::Bool(true));
    }
}
