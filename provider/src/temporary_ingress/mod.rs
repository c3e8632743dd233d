//! `allowlist_temporary_ingress`: "knock for access". Adds the caller's IP (or given CIDRs) to
//! one or more security groups for a TTL. Every rule carries the grant's tags (managed-by,
//! grant-id, expires-at, created-at, granted-by, holder, user tags), so the publisher's sweep
//! removes expired rules even if Terraform never runs again. Grants opening the same permission
//! share its rule (core's `ingress::holders`).
//!
//! The resource id is the grant id (`grant-` + 16 hex digits), named by the
//! `allowlist:holder:<grant-id>` tag on each rule it holds. Import with `<region>/<grant-id>`.
//!
//! In the order of hashicorp's time provider: the type, schema, validation, plan, create, read,
//! update, delete, import. The typed model is in [`model`], the pure plan rules in [`plan`], and
//! what one provider process asks AWS once in [`caches`]; AWS itself is reached through core.

mod caches;
mod ephemeral;
mod model;
mod plan;

pub use ephemeral::EphemeralIngress;

use crate::diagnostics::{authorize_error, aws_error, grant_error, unknown_regions};
use crate::provider_data::{ProviderData, ProviderDataCell};
use crate::tfplugin::{
    Attribute, AttributePath, Block, Diagnostic, Diagnostics, Mode, PlanChange, ReadOutcome,
    Resource, Schema, ToValue, Tri, Type, Value,
};
use allowlist_core::clock::{format_instant, Clock};
use allowlist_core::ingress::{self, tags, Grant, Hold};
use allowlist_core::region::{self, RegionFailure};
use async_trait::async_trait;
use caches::Caches;
use model::{attr, Model};
use plan::{Decision, Expiry};
use std::sync::Arc;

const TYPE_NAME: &str = "allowlist_temporary_ingress";

pub struct TemporaryIngress {
    provider: ProviderDataCell,
    clock: Arc<dyn Clock>,
    caches: Caches,
}

impl TemporaryIngress {
    pub fn new(provider: ProviderDataCell, clock: Arc<dyn Clock>) -> Self {
        TemporaryIngress {
            provider,
            clock,
            caches: Caches::default(),
        }
    }
}

#[async_trait]
impl Resource for TemporaryIngress {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema(Kind::Resource)
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match Model::read(config) {
            Ok(config) => model::check(&config),
            Err(diags) => diags,
        }
    }

    async fn modify_plan(&self, change: &mut PlanChange<'_>) {
        let config = match Model::read(change.config) {
            Ok(config) => config,
            Err(d) => return change.diagnostics.extend(d),
        };
        change.diagnostics.extend(model::check(&config));
        if change.diagnostics.has_errors() {
            return;
        }
        let provider = match self.provider.get() {
            Ok(p) => p,
            Err(d) => return change.diagnostics.extend(d),
        };
        if let (Some(ttl), Tri::Known(written)) = (config.ttl(), &config.ttl) {
            if let Err(d) = plan::check_ttl_limit(written, ttl, provider.max_ttl) {
                return change.diagnostics.push(d);
            }
        }
        if change.prior.is_null() {
            self.plan_create(change, &config, provider).await;
        } else {
            match Model::read(change.prior) {
                Ok(prior) => self.plan_update(change, &prior, &config),
                Err(d) => change.diagnostics.extend(d),
            }
        }
    }

    async fn create(&self, planned: &Value) -> (Value, Diagnostics) {
        match self.create_grant(planned).await {
            Ok(state) => (state, Diagnostics::new()),
            // Nothing was granted (authorize revokes whatever it had added): nothing to keep.
            Err(d) => (Value::Null, d),
        }
    }

    async fn read(&self, state: &Value) -> Result<(ReadOutcome, Diagnostics), Diagnostics> {
        let provider = self.provider.get()?;
        let current = Model::read(state)?;
        let (region, id) = region_and_id(&current)?;
        let rules = self
            .caches
            .snapshots
            .grant_rules(&provider.aws, region, id)
            .await
            .map_err(|e| Diagnostics::from(aws_error("Unable to Read Ingress Grant", &e)))?;
        match current.refreshed(&rules, self.clock.now()) {
            Some(refreshed) => Ok((ReadOutcome::Found(refreshed.to_value()), Diagnostics::new())),
            None => {
                tracing::info!(grant = %id, "all rules of the grant are gone");
                Ok((ReadOutcome::Gone, Diagnostics::new()))
            }
        }
    }

    async fn update(&self, prior: &Value, planned: &Value) -> (Value, Diagnostics) {
        let applied = match self.change_grant(prior, planned).await {
            Ok(applied) => applied,
            Err(d) => return (prior.clone(), d),
        };
        let mut state = planned.clone();
        let mut diags = Diagnostics::new();
        // A moved expiry: whether it has already passed is known only now.
        if applied.expired.is_unknown() {
            let expired = applied.expired_at(self.clock.now());
            if expired == Tri::Known(true) {
                diags.push(expired_on_update(&applied));
            }
            state.set(attr::EXPIRED, expired.to_value());
        }
        (state, diags)
    }

    async fn delete(&self, prior: &Value) -> Diagnostics {
        let result = async {
            let provider = self.provider.get()?;
            let state = Model::read(prior)?;
            let (region, id) = region_and_id(&state)?;
            self.caches.snapshots.invalidate(region);
            // Found by the grant's holder tag: only rules this grant holds are touched, and of
            // those only the ones no other live grant holds are revoked.
            let rules = ingress::grant_rules(&provider.aws, region, &[id.to_owned()])
                .await
                .map_err(|e| Diagnostics::from(aws_error("Unable to Revoke Ingress", &e)))?;
            ingress::release(&provider.aws, region, id, &rules, self.clock.now())
                .await
                .map_err(|e| Diagnostics::from(grant_error("Unable to Revoke Ingress", &e, None)))
        }
        .await;
        result.err().unwrap_or_default()
    }

    async fn import(&self, id: &str) -> Result<Value, Diagnostics> {
        let invalid = || {
            Diagnostics::from(Diagnostic::error(
                "Invalid Import ID",
                format!(
                    "{id:?} is not <region>/<grant-id>, e.g. us-west-2/grant-0123456789abcdef."
                ),
            ))
        };
        let (region, grant_id) = id.split_once('/').ok_or_else(invalid)?;
        if region::check_name(region).is_err() || !grant_id.starts_with("grant-") {
            return Err(invalid());
        }
        let provider = self.provider.get()?;
        let rules = match ingress::grant_rules(&provider.aws, region, &[grant_id.to_owned()]).await
        {
            Ok(rules) => rules,
            Err(e) => {
                let d = match region::explain(&provider.aws, &[region]).await {
                    RegionFailure::Unknown(msg) => {
                        unknown_regions("Unknown Region", &msg, &[region], &e.to_string(), None)
                    }
                    RegionFailure::Failed => aws_error("Unable to Import Ingress Grant", &e),
                };
                return Err(d.into());
            }
        };
        let now = self.clock.now();
        let state = Model::from_rules(region, grant_id, &rules, now).ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Cannot Import Non-existent Grant",
                format!("No security group rule in {region} is held by {grant_id} (tag {}{grant_id}, or {}={grant_id} on rules made before rules were shared). It may have expired and been swept.", tags::HOLDER_PREFIX, tags::GRANT_ID),
            ))
        })?;
        Ok(state.to_value())
    }
}

/// Which of the two Terraform types of a grant a schema is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Ephemeral,
}

/// The schema of a grant, managed or ephemeral: the same attributes (so one [`Model`] reads
/// both), with the words and the `ttl` rules of each kind.
fn schema(kind: Kind) -> Schema {
    Schema::new(
        Block::new(match kind {
            Kind::Resource => "Temporary ingress (\"knock for access\"): adds your current public IP, or the given CIDRs, to one \
             or more security groups for a `ttl`. Every rule is tagged with its expiry and who granted it. \
             Once the TTL has passed, the next `terraform plan` proposes to replace the grant (\"knock again\"); \
             if nobody runs Terraform, `allowlist-publisher sweep` revokes the expired rules by their tags.\n\n\
             ~> A security group opened by a grant must not declare inline `ingress {}` blocks in hashicorp/aws's \
             `aws_security_group`: that resource owns every rule of the group, so each apply of it removes the \
             grant's rules and the next apply here creates them again. Declare permanent rules with \
             `aws_vpc_security_group_ingress_rule` instead.",
            Kind::Ephemeral => "Access for one Terraform run (Terraform >= 1.10): the same grant as the \
             `allowlist_temporary_ingress` resource, opened when the run first needs it, its expiry moved \
             forward while the run lasts, and revoked when the run ends; never stored in state or plan. \
             Rules carry the same tags (plus `allowlist:ephemeral = true`, and the grant's holder tag marked \
             `ephemeral`), so if the run is killed they expire at their `ttl` and `allowlist-publisher sweep` \
             revokes them; `data \"allowlist_grants\"` lists the grant with `ephemeral = true`. Grants opening \
             the same permission (two runs from one IP) share its rule; the last one to close revokes it. \
             See the guide \"Access for CI runs\".\n\n\
             ~> A security group opened by a grant must not declare inline `ingress {}` blocks in hashicorp/aws's \
             `aws_security_group`: that resource owns every rule of the group and removes the grant's rule when \
             it is applied during the run. Declare permanent rules with `aws_vpc_security_group_ingress_rule` \
             instead.",
        })
        .attribute(
            Attribute::new(
                attr::SECURITY_GROUP_IDS,
                Type::list(Type::String),
                Mode::Required,
                "Security groups to open, all in `region`, each once, e.g. `[\"sg-0123456789abcdef0\"]`. Changing this \
                 replaces the grant.",
            )
            .force_new(),
        )
        .attribute(
            Attribute::new(
                attr::REGION,
                Type::String,
                Mode::OptionalComputed,
                "Region of the security groups. Defaults to the provider's `region`. Changing this replaces \
                 the grant.",
            )
            .force_new()
            .stable(),
        )
        .attribute(
            Attribute::new(
                attr::PORTS,
                Type::list(Type::Number),
                Mode::Optional,
                "Single ports to open (whole numbers 0-65535, each once), e.g. `[22, 443]`. For `tcp` and `udp`, at least one of \
                 `ports` and `port_ranges` is required; `icmp` and `icmpv6` take neither and open all types. \
                 Changing this replaces the grant.",
            )
            .force_new(),
        )
        .attribute(
            Attribute::new(
                attr::PORT_RANGES,
                Type::list(Type::String),
                Mode::Optional,
                "Inclusive port ranges to open, each once, written `\"FROM-TO\"`, e.g. `[\"8000-8100\"]`. Changing this \
                 replaces the grant.",
            )
            .force_new(),
        )
        .attribute(
            Attribute::new(
                attr::PROTOCOL,
                Type::String,
                Mode::OptionalComputed,
                "`tcp` (default), `udp`, `icmp` or `icmpv6`. Changing this replaces the grant.",
            )
            .force_new()
            .stable(),
        )
        .attribute(
            Attribute::new(
                attr::CIDR_BLOCKS,
                Type::list(Type::String),
                Mode::OptionalComputed,
                "IPv4 and/or IPv6 CIDR blocks to let in, each once, in canonical form (e.g. `203.0.113.7/32`). Defaults \
                 to your current public IP as a /32 (or /128), detected from the provider's `ip_lookup_url` \
                 when the grant is applied (the plan shows it as known after apply). `0.0.0.0/0`, `::/0` and blocks broader than /16 (IPv4) or /48 \
                 (IPv6) are refused unless `allow_world` is true. Changing this replaces the grant.",
            )
            .force_new()
            .stable(),
        )
        .attribute(match kind {
            Kind::Resource => Attribute::new(
                attr::TTL,
                Type::String,
                Mode::Required,
                "How long the grant lasts from its creation, as a duration such as `24h`, `90m` or `1h30m`. Must \
             be greater than zero and at most the provider's `max_ttl`. Changing it moves `expires_at` in \
             place (the rules are re-tagged, no access gap); if the new expiry has already passed when it \
             is applied, the grant is recorded as `expired` and the next apply replaces it.",
            ),
            Kind::Ephemeral => Attribute::new(
                attr::TTL,
                Type::String,
                Mode::OptionalComputed,
                "How long the grant lasts past its opening, and past each renewal while the run goes on, as a \
                 duration such as `15m` (the default) or `1h`. At most the provider's `max_ttl`. It bounds \
                 the access a killed run leaves behind.",
            ),
        })
        .attribute(Attribute::new(
            attr::DESCRIPTION,
            Type::String,
            Mode::Optional,
            "Description of each rule (up to 255 characters of `a-z A-Z 0-9 . _ - : / ( ) # , @ [ ] + = & ; { } ! $ *` \
             and spaces), e.g. `on-call access`. Updated in place.",
        ))
        .attribute(Attribute::new(
            attr::TAGS,
            Type::map(Type::String),
            Mode::Optional,
            "Extra tags on each rule. Keys starting with `allowlist:` or `aws:` are reserved. Updated in place.",
        ))
        .attribute(
            Attribute::new(
                attr::ALLOW_WORLD,
                Type::Bool,
                Mode::OptionalComputed,
                "Allow `0.0.0.0/0`, `::/0` and other blocks broader than /16 (IPv4) or /48 (IPv6). Defaults \
                 to `false`.",
            )
            .stable(),
        )
        .attribute(
            Attribute::new(
                attr::ID,
                Type::String,
                Mode::Computed,
                "The grant id: each rule the grant holds is tagged `allowlist:holder:<id>`, and the rules it \
                 created also `allowlist:grant-id = <id>`.",
            )
            .stable(),
        )
        .attribute(
            Attribute::new(
                attr::CREATED_AT,
                Type::String,
                Mode::Computed,
                "When the grant was made (RFC 3339, UTC).",
            )
            .stable(),
        )
        .attribute(Attribute::new(
            attr::EXPIRES_AT,
            Type::String,
            Mode::Computed,
            "When the grant expires: `created_at` + `ttl` (RFC 3339, UTC), as its `allowlist:holder:<id>` tag \
             says on each rule. A rule's `allowlist:expires-at` is the latest of its holders' (a rule shared \
             with a longer grant stays until that one expires).",
        ))
        .attribute(
            Attribute::new(
                attr::RULE_IDS,
                Type::list(Type::String),
                Mode::Computed,
                "The security group rule ids (`sgr-...`) of the grant, one per group, port range and CIDR.",
            )
            .stable(),
        )
        .attribute(
            Attribute::new(
                attr::GRANTED_BY,
                Type::String,
                Mode::Computed,
                "The ARN of the AWS identity that made the grant (from STS), also the `allowlist:granted-by` tag.",
            )
            .stable(),
        )
        .attribute(Attribute::new(
            attr::EXPIRED,
            Type::Bool,
            Mode::Computed,
            match kind {
                Kind::Resource => "Whether the grant had expired (`expires_at` passed) when Terraform last read it. The plan \
             takes time only from here, so a saved plan applies as planned however late: a grant read \
             as expired is replaced at the next apply, and `terraform plan -refresh=false` (which reads \
             nothing) never expires a grant.",
                Kind::Ephemeral => "Always `false`: an open grant has not expired.",
            },
        )),
    )
}

impl TemporaryIngress {
    /// Create: fill the defaults and check that the groups exist, so mistakes surface at plan
    /// time.
    async fn plan_create(
        &self,
        change: &mut PlanChange<'_>,
        config: &Model,
        provider: &ProviderData,
    ) {
        let defaults = match plan::create_defaults(config, provider.aws.home_region()) {
            Ok(d) => d,
            Err(d) => return change.diagnostics.push(d),
        };
        if let Some(region) = &defaults.region {
            change.planned.set(attr::REGION, Value::string(region));
        }
        if let Some(protocol) = defaults.protocol {
            change.planned.set(attr::PROTOCOL, Value::string(protocol));
        }
        if let Some(allow_world) = defaults.allow_world {
            change
                .planned
                .set(attr::ALLOW_WORLD, Value::Bool(allow_world));
        }
        let region = defaults
            .region
            .or_else(|| config.region.as_known().cloned());
        let (Some(region), Some(groups)) = (region, config.group_ids()) else {
            return;
        };
        match self
            .caches
            .missing_groups(&provider.aws, &region, &groups)
            .await
        {
            Ok(missing) => {
                for group in missing {
                    let i = groups.iter().position(|g| *g == group).unwrap_or(0);
                    change.diagnostics.push(
                        Diagnostic::error(
                            "Security Group Not Found",
                            format!("{group} does not exist in {region} (or is not visible to these credentials)."),
                        )
                        .at(AttributePath::of(attr::SECURITY_GROUP_IDS).index(i)),
                    );
                }
            }
            Err(e) => {
                let d = match region::explain(&provider.aws, &[&region]).await {
                    RegionFailure::Unknown(msg) => {
                        let path = AttributePath::of(attr::REGION);
                        let names = [region.clone()];
                        let said = e.to_string();
                        let at = Some((&path, names.as_slice()));
                        unknown_regions("Unknown Region", &msg, &[&region], &said, at)
                    }
                    RegionFailure::Failed => aws_error("Unable to Check Security Groups", &e),
                };
                change.diagnostics.push(d);
            }
        }
    }

    /// Update: apply what the pure rules decide (they read no clock: see [`plan`]).
    fn plan_update(&self, change: &mut PlanChange<'_>, prior: &Model, config: &Model) {
        let decided = plan::plan_update(prior, config);
        for name in decided.keep_prior {
            let kept = change.prior.attr(name).clone();
            change.planned.set(name, kept);
        }
        match decided.decision {
            Decision::InPlace(Expiry::Unchanged) => {
                for name in [attr::EXPIRES_AT, attr::EXPIRED] {
                    let kept = change.prior.attr(name).clone();
                    change.planned.set(name, kept);
                }
            }
            Decision::InPlace(moved) => {
                let expires_at = match moved {
                    Expiry::Moved(at) => Value::string(format_instant(at)),
                    _ => Value::unknown(),
                };
                change.planned.set(attr::EXPIRES_AT, expires_at);
                // Whether the new expiry has passed is found when it is applied.
                change.planned.set(attr::EXPIRED, Value::unknown());
            }
            Decision::Replace { because, warning } => {
                change.diagnostics.push(warning);
                for name in attr::MADE_BY_THE_GRANT {
                    change.planned.set(name, Value::unknown());
                }
                change.requires_replace.push(AttributePath::of(because));
            }
            Decision::Invalid(d) => change.diagnostics.push(d),
        }
    }

    /// Makes the planned grant and returns its state.
    async fn create_grant(&self, planned: &Value) -> Result<Value, Diagnostics> {
        let provider = self.provider.get()?;
        let mut state = Model::read(planned)?;
        make_grant(
            provider,
            &self.caches,
            self.clock.as_ref(),
            &mut state,
            false,
        )
        .await?;
        Ok(state.to_value())
    }

    /// Moves the expiry, user tags and description of the grant's rules to the planned ones;
    /// returns the planned grant.
    async fn change_grant(&self, prior: &Value, planned: &Value) -> Result<Model, Diagnostics> {
        let provider = self.provider.get()?;
        let (old, new) = (Model::read(prior)?, Model::read(planned)?);
        let (region, id) = region_and_id(&new)?;
        let aws = &provider.aws;
        self.caches.snapshots.invalidate(region);
        let rules = ingress::grant_rules(aws, region, &[id.to_owned()])
            .await
            .map_err(|e| Diagnostics::from(aws_error("Unable to Update Ingress Grant", &e)))?;
        let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        let (old_tags, new_tags) = (old.known_tags(), new.known_tags());
        let retag = |e| Diagnostics::from(grant_error("Unable to Re-tag Ingress Rules", &e, None));
        if let (true, Some(expires_at)) = (new.expires_at != old.expires_at, new.expires_at()) {
            let hold = Hold {
                created_at: new.created_at(),
                expires_at,
                granted_by: new.granted_by.as_known().cloned(),
                ephemeral: false,
            };
            ingress::set_expiry(aws, region, id, &rules, &hold, self.clock.now())
                .await
                .map_err(retag)?;
        }
        let tag_changes: Vec<(String, String)> = new_tags
            .iter()
            .filter(|(k, v)| old_tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !tag_changes.is_empty() {
            ingress::retag(aws, region, &ids, &tag_changes)
                .await
                .map_err(retag)?;
        }
        ingress::remove_tags(aws, region, &rules, &new_tags)
            .await
            .map_err(retag)?;
        let groups = new.group_ids().unwrap_or_default();
        let groups_path = AttributePath::of(attr::SECURITY_GROUP_IDS);
        let description = new.description.as_known().map(String::as_str);
        ingress::set_description(aws, region, &rules, description)
            .await
            .map_err(|e| {
                let groups_attr = Some((&groups_path, groups.as_slice()));
                let summary = "Unable to Update Rule Descriptions";
                Diagnostics::from(grant_error(summary, &e, groups_attr))
            })?;
        Ok(new)
    }
}

/// Makes the grant `state` describes (its region, protocol and ttl known): detects the caller's
/// IP when `cidr_blocks` is unset, authorizes through core, and fills in what the grant made
/// (id, times, caller, rule ids). Shared by the resource's create and the ephemeral open.
pub(super) async fn make_grant(
    provider: &ProviderData,
    caches: &Caches,
    clock: &dyn Clock,
    state: &mut Model,
    ephemeral: bool,
) -> Result<Grant, Diagnostics> {
    let mut request = state.grant_request()?;
    if request.cidrs.is_empty() {
        let cidr = caches
            .detected_cidr(&provider.ip_lookup_url)
            .await
            .map_err(|e| {
                Diagnostics::from(Diagnostic::error(
                    "Unable to Detect Your IP Address",
                    format!("{e}.\n\nSet cidr_blocks explicitly, or point the provider's ip_lookup_url at a service that answers with your IP. Nothing was granted."),
                )
                .at(AttributePath::of(attr::CIDR_BLOCKS)))
            })?;
        state.cidr_blocks = Tri::Known(vec![Tri::Known(cidr.to_string())]);
        request.cidrs = vec![cidr];
    }
    let granted_by = caches
        .caller_arn(&provider.aws, &request.region)
        .await
        .map_err(|e| Diagnostics::from(aws_error("Unable to Identify the Caller", &e)))?;
    let now = clock.now();
    let grant = Grant {
        id: ingress::new_grant_id(),
        region: request.region,
        group_ids: request.group_ids,
        protocol: request.protocol,
        ports: request.ports,
        cidrs: request.cidrs,
        description: request.description,
        user_tags: request.tags,
        created_at: now,
        expires_at: now + request.ttl,
        granted_by,
        ephemeral,
    };
    caches.snapshots.invalidate(&grant.region);
    let rules = ingress::authorize(&provider.aws, &grant, now)
        .await
        .map_err(|e| {
            let groups = AttributePath::of(attr::SECURITY_GROUP_IDS);
            let groups_attr = Some((&groups, grant.group_ids.as_slice()));
            Diagnostics::from(authorize_error(
                "Unable to Authorize Ingress",
                &e,
                groups_attr,
            ))
        })?;
    tracing::info!(grant = %grant.id, region = %grant.region, rules = rules.len(), expires_at = %format_instant(grant.expires_at), ephemeral, "grant created");
    state.id = Tri::Known(grant.id.clone());
    state.created_at = Tri::Known(format_instant(grant.created_at));
    state.expires_at = Tri::Known(format_instant(grant.expires_at));
    state.granted_by = Tri::Known(grant.granted_by.clone());
    state.rule_ids = Tri::Known(rules.iter().map(|r| Tri::Known(r.id.clone())).collect());
    state.expired = Tri::Known(false);
    Ok(grant)
}

/// The warning of an update whose new expiry has already passed.
fn expired_on_update(grant: &Model) -> Diagnostic {
    Diagnostic::warning(
        "Ingress Grant Expired",
        format!(
            "With ttl = {}, the grant {} expires at {}, which has already passed: its rules now carry that expiry and the sweep will revoke them. The next apply replaces the grant (knock again).",
            grant.ttl.as_known().map_or("?", String::as_str),
            grant.id.as_known().map_or("", String::as_str),
            grant.expires_at.as_known().map_or("?", String::as_str),
        ),
    )
}

/// The region and grant id of a stored grant.
fn region_and_id(state: &Model) -> Result<(&str, &str), Diagnostics> {
    match (&state.region, &state.id) {
        (Tri::Known(region), Tri::Known(id)) => Ok((region, id)),
        _ => Err(Diagnostic::error(
            "Invalid State",
            "region or id is missing or unknown; this is a bug in the provider.",
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allowlist_core::clock::FixedClock;
    use allowlist_core::{Aws, AwsSettings};
    use std::time::{Duration, SystemTime};

    /// The resource at `now`, configured (AWS pointed at a port nothing listens on: an update
    /// plan makes no call).
    async fn resource_at(now: SystemTime) -> TemporaryIngress {
        let settings = AwsSettings {
            region: Some("us-west-2".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..AwsSettings::default()
        };
        let provider = ProviderDataCell::default();
        provider.set(ProviderData {
            aws: Aws::load(&settings).await,
            egress_regions: Vec::new(),
            max_ttl: Duration::from_secs(86_400),
            ip_lookup_url: "http://127.0.0.1:9".into(),
        });
        TemporaryIngress::new(provider, Arc::new(FixedClock(now)))
    }

    fn object(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        let schema = TemporaryIngress::new(
            ProviderDataCell::default(),
            Arc::new(FixedClock(SystemTime::UNIX_EPOCH)),
        )
        .schema();
        schema.block.conform(&mut v).expect("conforms");
        v
    }

    /// Plans `config` over `prior` as the server would, returning the planned value, the paths
    /// that force replacement and the diagnostics' summaries.
    async fn plan_at(
        now: SystemTime,
        prior: &Value,
        config: &Value,
    ) -> (Value, Vec<String>, Vec<String>) {
        let resource = resource_at(now).await;
        let block = resource.schema().block;
        let proposed = {
            let mut p = prior.clone();
            for (name, value) in [
                (attr::TTL, config.attr(attr::TTL)),
                (attr::DESCRIPTION, config.attr(attr::DESCRIPTION)),
            ] {
                p.set(name, value.clone());
            }
            p
        };
        let mut change = PlanChange {
            prior,
            config,
            planned: crate::tfplugin::plan::plan_change(&block, prior, &proposed, config),
            requires_replace: Vec::new(),
            diagnostics: Diagnostics::new(),
        };
        resource.modify_plan(&mut change).await;
        let replace = change
            .requires_replace
            .iter()
            .map(ToString::to_string)
            .collect();
        let summaries = change
            .diagnostics
            .iter()
            .map(|d| d.summary.clone())
            .collect();
        (change.planned, replace, summaries)
    }

    #[tokio::test]
    async fn two_plans_of_the_same_inputs_at_different_times_agree() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let base = [
            (attr::SECURITY_GROUP_IDS, Value::strings(["sg-0123abcd"])),
            (
                attr::PORTS,
                Value::List(vec![Value::Number(crate::tfplugin::value::Number::Int(22))]),
            ),
            (attr::CIDR_BLOCKS, Value::strings(["203.0.113.7/32"])),
            (attr::TTL, Value::string("1h")),
            (attr::REGION, Value::string("us-west-2")),
            (attr::PROTOCOL, Value::string("tcp")),
            (attr::ALLOW_WORLD, Value::Bool(false)),
        ];
        let mut stored = base.to_vec();
        stored.extend([
            (attr::ID, Value::string("grant-00000000000000aa")),
            (attr::CREATED_AT, Value::string("2025-11-21T12:00:00Z")),
            (attr::EXPIRES_AT, Value::string("2025-11-21T13:00:00Z")),
            (attr::RULE_IDS, Value::strings(["sgr-1"])),
            (attr::GRANTED_BY, Value::string("arn:aws:iam::1:user/a")),
            (attr::EXPIRED, Value::Bool(false)),
        ]);
        let prior = object(&stored);
        // An in-place change (description), and a new ttl.
        for (name, value) in [
            (attr::DESCRIPTION, Value::string("two")),
            (attr::TTL, Value::string("2h")),
        ] {
            let mut config_pairs = base.to_vec();
            config_pairs.retain(|(n, _)| *n != name);
            config_pairs.push((name, value));
            let config = object(&config_pairs);
            // Planned a minute after the grant was made, then again two hours later (after
            // its expiry) as Terraform does when it applies a saved plan.
            let early = plan_at(created + Duration::from_secs(60), &prior, &config).await;
            let late = plan_at(created + Duration::from_secs(7200), &prior, &config).await;
            assert_eq!(early, late, "{name}");
            assert!(
                early.1.is_empty(),
                "{name}: in place, not replaced: {:?}",
                early.1
            );
        }
    }
}
