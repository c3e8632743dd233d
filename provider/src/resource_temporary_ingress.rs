//! `allowlist_temporary_ingress`: "knock for access". Adds the caller's IP (or given CIDRs) to
//! one or more security groups for a TTL. Every rule carries the grant's tags (managed-by,
//! grant-id, expires-at, created-at, granted-by, user tags), so the publisher's sweep removes
//! expired rules even if Terraform never runs again.
//!
//! The resource id is the grant id (`grant-` + 16 hex digits), also the value of the
//! `allowlist:grant-id` tag on each rule. Import with `<region>/<grant-id>`.

use crate::diagnostics::{aws_error, grant_error};
use crate::provider::{configured, parse_positive_duration, Configured, Shared};
use crate::rule_snapshot::RuleSnapshots;
use crate::tfplugin::{
    Attribute, AttributePath, Block, Diagnostic, Diagnostics, Mode, PlanChange, ReadOutcome,
    Resource, Schema, Tri, Type, Value,
};
use allowlist_core::caller;
use allowlist_core::clock::{self, format_duration, format_instant, parse_instant, Clock};
use allowlist_core::ingress::{self, tags, Grant, PortRange, Protocol, Rule};
use allowlist_core::AwsError;
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

pub struct TemporaryIngress {
    shared: Shared,
    clock: Arc<dyn Clock>,
    snapshots: RuleSnapshots,
    /// Per provider process: the caller's IP, detected once for all grants of an apply.
    detected: OnceCell<IpNet>,
    /// Per provider process: the caller's ARN, asked once.
    caller: OnceCell<String>,
    /// Per provider process: security groups already seen to exist, as (region, group id).
    known_groups: Mutex<HashSet<(String, String)>>,
}

impl TemporaryIngress {
    pub fn new(shared: Shared, clock: Arc<dyn Clock>) -> Self {
        TemporaryIngress {
            shared,
            clock,
            snapshots: RuleSnapshots::default(),
            detected: OnceCell::new(),
            caller: OnceCell::new(),
            known_groups: Mutex::new(HashSet::new()),
        }
    }

    /// The caller's public IP as a /32 or /128, from `url` (once per process).
    async fn detected_cidr(&self, url: &str) -> Result<IpNet, Diagnostic> {
        let ip = self
            .detected
            .get_or_try_init(|| async {
                let ip = caller::public_ip(url).await?;
                tracing::info!(%ip, "detected caller IP");
                Ok::<_, caller::IpLookupError>(IpNet::from(ip))
            })
            .await
            .map_err(|e| {
                Diagnostic::error(
                    "Unable to Detect Your IP Address",
                    format!("{e}.\n\nSet cidr_blocks explicitly, or point the provider's ip_lookup_url at a service that answers with your IP. Nothing was granted."),
                )
                .at(root().attr("cidr_blocks"))
            })?;
        Ok(*ip)
    }

    /// The caller's ARN (once per process).
    async fn caller_arn(&self, provider: &Configured, region: &str) -> Result<String, AwsError> {
        self.caller
            .get_or_try_init(|| caller::caller_arn(&provider.aws, region))
            .await
            .cloned()
    }

    /// Which of `groups` do not exist, asking AWS only about groups not yet seen in this process.
    async fn missing_groups(
        &self,
        provider: &Configured,
        region: &str,
        groups: &[String],
    ) -> Result<Vec<String>, AwsError> {
        let unseen: Vec<String> = {
            let known = self.known_groups.lock().unwrap_or_else(|p| p.into_inner());
            groups
                .iter()
                .filter(|g| !known.contains(&(region.to_owned(), (*g).clone())))
                .cloned()
                .collect()
        };
        if unseen.is_empty() {
            return Ok(Vec::new());
        }
        let missing = ingress::missing_groups(&provider.aws, region, &unseen).await?;
        let mut known = self.known_groups.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(
            unseen
                .into_iter()
                .filter(|g| !missing.contains(g))
                .map(|g| (region.to_owned(), g)),
        );
        Ok(missing)
    }
}

/// Longest rule description AWS accepts.
const MAX_DESCRIPTION: usize = 255;

#[async_trait]
impl Resource for TemporaryIngress {
    fn type_name(&self) -> &'static str {
        "allowlist_temporary_ingress"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "Temporary ingress (\"knock for access\"): adds your current public IP, or the given CIDRs, to one \
                 or more security groups for a `ttl`. Every rule is tagged with its expiry and who granted it. \
                 Once the TTL has passed, the next `terraform plan` proposes to replace the grant (\"knock again\"); \
                 if nobody runs Terraform, `allowlist-publisher sweep` revokes the expired rules by their tags.",
            )
            .attribute(
                Attribute::new(
                    "security_group_ids",
                    Type::list(Type::String),
                    Mode::Required,
                    "Security groups to open, all in `region`, e.g. `[\"sg-0123456789abcdef0\"]`. Changing this \
                     replaces the grant.",
                )
                .force_new(),
            )
            .attribute(
                Attribute::new(
                    "region",
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
                    "ports",
                    Type::list(Type::Number),
                    Mode::Optional,
                    "Single ports to open (0-65535), e.g. `[22, 443]`. For `tcp` and `udp`, at least one of \
                     `ports` and `port_ranges` is required; `icmp` and `icmpv6` take neither and open all types. \
                     Changing this replaces the grant.",
                )
                .force_new(),
            )
            .attribute(
                Attribute::new(
                    "port_ranges",
                    Type::list(Type::String),
                    Mode::Optional,
                    "Inclusive port ranges to open, written `\"FROM-TO\"`, e.g. `[\"8000-8100\"]`. Changing this \
                     replaces the grant.",
                )
                .force_new(),
            )
            .attribute(
                Attribute::new(
                    "protocol",
                    Type::String,
                    Mode::OptionalComputed,
                    "`tcp` (default), `udp`, `icmp` or `icmpv6`. Changing this replaces the grant.",
                )
                .force_new()
                .stable(),
            )
            .attribute(
                Attribute::new(
                    "cidr_blocks",
                    Type::list(Type::String),
                    Mode::OptionalComputed,
                    "IPv4 and/or IPv6 CIDR blocks to let in, in canonical form (e.g. `203.0.113.7/32`). Defaults \
                     to your current public IP as a /32 (or /128), detected from the provider's `ip_lookup_url` \
                     when the grant is applied (the plan shows it as known after apply). `0.0.0.0/0`, `::/0` and blocks broader than /16 (IPv4) or /48 \
                     (IPv6) are refused unless `allow_world` is true. Changing this replaces the grant.",
                )
                .force_new()
                .stable(),
            )
            .attribute(Attribute::new(
                "ttl",
                Type::String,
                Mode::Required,
                "How long the grant lasts from its creation, as a duration such as `24h`, `90m` or `1h30m`. Must \
                 be greater than zero and at most the provider's `max_ttl`. Changing it moves `expires_at` in \
                 place (the rules are re-tagged, no access gap); if the new expiry has already passed, the grant \
                 is replaced.",
            ))
            .attribute(Attribute::new(
                "description",
                Type::String,
                Mode::Optional,
                "Description of each rule (up to 255 characters of `a-z A-Z 0-9 . _ - : / ( ) # , @ [ ] + = & ; { } ! $ *` \
                 and spaces), e.g. `on-call access`. Updated in place.",
            ))
            .attribute(Attribute::new(
                "tags",
                Type::map(Type::String),
                Mode::Optional,
                "Extra tags on each rule. Keys starting with `allowlist:` or `aws:` are reserved. Updated in place.",
            ))
            .attribute(
                Attribute::new(
                    "allow_world",
                    Type::Bool,
                    Mode::OptionalComputed,
                    "Allow `0.0.0.0/0`, `::/0` and other blocks broader than /16 (IPv4) or /48 (IPv6). Defaults \
                     to `false`.",
                )
                .stable(),
            )
            .attribute(
                Attribute::new(
                    "id",
                    Type::String,
                    Mode::Computed,
                    "The grant id, also the `allowlist:grant-id` tag of each rule.",
                )
                .stable(),
            )
            .attribute(
                Attribute::new(
                    "created_at",
                    Type::String,
                    Mode::Computed,
                    "When the grant was made (RFC 3339, UTC).",
                )
                .stable(),
            )
            .attribute(Attribute::new(
                "expires_at",
                Type::String,
                Mode::Computed,
                "When the grant expires: `created_at` + `ttl` (RFC 3339, UTC), also the `allowlist:expires-at` \
                 tag of each rule.",
            ))
            .attribute(
                Attribute::new(
                    "rule_ids",
                    Type::list(Type::String),
                    Mode::Computed,
                    "The security group rule ids (`sgr-...`) of the grant, one per group, port range and CIDR.",
                )
                .stable(),
            )
            .attribute(
                Attribute::new(
                    "granted_by",
                    Type::String,
                    Mode::Computed,
                    "The ARN of the AWS identity that made the grant (from STS), also the `allowlist:granted-by` tag.",
                )
                .stable(),
            ),
        )
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        Args::read(config).1
    }

    async fn modify_plan(&self, plan: &mut PlanChange<'_>) {
        let (args, diags) = Args::read(plan.config);
        plan.diagnostics.extend(diags);
        if plan.diagnostics.has_errors() {
            return;
        }
        let provider = match configured(&self.shared) {
            Ok(p) => p,
            Err(d) => return plan.diagnostics.extend(d),
        };
        if let Some(ttl) = args.ttl {
            if ttl > provider.max_ttl {
                plan.diagnostics.push(
                    Diagnostic::error(
                        "TTL Too Long",
                        format!(
                            "ttl is {}, longer than the provider's max_ttl of {}. Ask for less, or raise max_ttl in the provider block.",
                            format_duration(ttl),
                            format_duration(provider.max_ttl)
                        ),
                    )
                    .at(root().attr("ttl")),
                );
                return;
            }
        }
        if plan.prior.is_null() {
            self.plan_create(plan, &args, &provider).await;
        } else {
            self.plan_update(plan, &args);
        }
    }

    async fn create(&self, planned: &Value) -> (Value, Diagnostics) {
        let provider = match configured(&self.shared) {
            Ok(p) => p,
            Err(d) => return (Value::Null, d),
        };
        let state = match State::read(planned) {
            Ok(s) => s,
            Err(d) => return (Value::Null, d),
        };
        let Some(ttl) = state.ttl else {
            return (
                Value::Null,
                Diagnostic::error("Invalid Plan", "ttl is not known at apply.").into(),
            );
        };
        let mut state = state;
        let mut planned = planned.clone();
        if state.cidrs.is_empty() {
            match self.detected_cidr(&provider.ip_lookup_url).await {
                Ok(cidr) => {
                    set(
                        &mut planned,
                        "cidr_blocks",
                        Value::strings([cidr.to_string()]),
                    );
                    state.cidrs = vec![cidr];
                }
                Err(d) => return (Value::Null, d.into()),
            }
        }
        let granted_by = match self.caller_arn(&provider, &state.region).await {
            Ok(arn) => arn,
            Err(e) => {
                return (
                    Value::Null,
                    aws_error("Unable to Identify the Caller", &e).into(),
                )
            }
        };
        let now = self.clock.now();
        let grant = Grant {
            id: ingress::new_grant_id(),
            region: state.region.clone(),
            group_ids: state.group_ids.clone(),
            protocol: state.protocol,
            ports: state.ports(),
            cidrs: state.cidrs.clone(),
            description: state.description.clone(),
            user_tags: state.tags.clone(),
            created_at: now,
            expires_at: now + ttl,
            granted_by,
        };
        self.snapshots.invalidate(&grant.region);
        match ingress::authorize(&provider.aws, &grant, now).await {
            Ok(rules) => {
                tracing::info!(grant = %grant.id, region = %grant.region, rules = rules.len(), expires_at = %format_instant(grant.expires_at), "grant created");
                (with_grant(&planned, &grant, &rules), Diagnostics::new())
            }
            // authorize revoked whatever it had added; nothing to keep in state.
            Err(e) => (
                Value::Null,
                grant_error("Unable to Authorize Ingress", &e, &state.group_ids).into(),
            ),
        }
    }

    async fn read(&self, state: &Value) -> Result<(ReadOutcome, Diagnostics), Diagnostics> {
        let provider = configured(&self.shared)?;
        let current = State::read(state)?;
        let rules = self
            .snapshots
            .grant_rules(&provider.aws, &current.region, &current.id)
            .await
            .map_err(|e| Diagnostics::from(aws_error("Unable to Read Ingress Grant", &e)))?;
        if rules.is_empty() {
            tracing::info!(grant = %current.id, "all rules of the grant are gone");
            return Ok((ReadOutcome::Gone, Diagnostics::new()));
        }
        let mut refreshed = state.clone();
        if let Some(map) = refreshed.as_map_mut() {
            map.insert(
                "rule_ids".into(),
                Value::strings(rules.iter().map(|r| r.id.clone())),
            );
            // The earliest expiry on any rule is when access starts to end.
            if let Some(expires) = rules.iter().filter_map(Rule::expires_at).min() {
                map.insert("expires_at".into(), Value::string(format_instant(expires)));
            }
        }
        Ok((ReadOutcome::Found(refreshed), Diagnostics::new()))
    }

    async fn update(&self, prior: &Value, planned: &Value) -> (Value, Diagnostics) {
        let provider = match configured(&self.shared) {
            Ok(p) => p,
            Err(d) => return (prior.clone(), d),
        };
        let (old, new) = match (State::read(prior), State::read(planned)) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(d), _) | (_, Err(d)) => return (prior.clone(), d),
        };
        let aws = &provider.aws;
        self.snapshots.invalidate(&new.region);
        let rules =
            match ingress::grant_rules(aws, &new.region, std::slice::from_ref(&new.id)).await {
                Ok(r) => r,
                Err(e) => {
                    return (
                        prior.clone(),
                        aws_error("Unable to Update Ingress Grant", &e).into(),
                    )
                }
            };
        let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        let mut tag_changes: Vec<(String, String)> = Vec::new();
        if new.expires_at != old.expires_at {
            if let Some(expires) = &new.expires_at {
                tag_changes.push((tags::EXPIRES_AT.to_owned(), expires.clone()));
            }
        }
        tag_changes.extend(
            new.tags
                .iter()
                .filter(|(k, v)| old.tags.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if !tag_changes.is_empty() {
            if let Err(e) = ingress::retag(aws, &new.region, &ids, &tag_changes).await {
                return (
                    prior.clone(),
                    aws_error("Unable to Re-tag Ingress Rules", &e).into(),
                );
            }
        }
        if let Err(e) = ingress::remove_tags(aws, &new.region, &rules, &new.tags).await {
            return (
                prior.clone(),
                aws_error("Unable to Re-tag Ingress Rules", &e).into(),
            );
        }
        if let Err(e) =
            ingress::set_description(aws, &new.region, &rules, new.description.as_deref()).await
        {
            return (
                prior.clone(),
                grant_error("Unable to Update Rule Descriptions", &e, &new.group_ids).into(),
            );
        }
        (planned.clone(), Diagnostics::new())
    }

    async fn delete(&self, prior: &Value) -> Diagnostics {
        let provider = match configured(&self.shared) {
            Ok(p) => p,
            Err(d) => return d,
        };
        let state = match State::read(prior) {
            Ok(s) => s,
            Err(d) => return d,
        };
        self.snapshots.invalidate(&state.region);
        // Found by the grant's tag: only rules of this grant are ever revoked.
        let result = async {
            let rules = ingress::grant_rules(
                &provider.aws,
                &state.region,
                std::slice::from_ref(&state.id),
            )
            .await?;
            ingress::revoke(&provider.aws, &state.region, &rules).await
        }
        .await;
        match result {
            Ok(()) => Diagnostics::new(),
            Err(e) => aws_error("Unable to Revoke Ingress", &e).into(),
        }
    }

    async fn import(&self, id: &str) -> Result<Value, Diagnostics> {
        let (region, grant_id) = id.split_once('/').ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Invalid Import ID",
                format!(
                    "{id:?} is not <region>/<grant-id>, e.g. us-west-2/grant-0123456789abcdef."
                ),
            ))
        })?;
        if allowlist_core::region::check_name(region).is_err() || !grant_id.starts_with("grant-") {
            return Err(Diagnostic::error(
                "Invalid Import ID",
                format!(
                    "{id:?} is not <region>/<grant-id>, e.g. us-west-2/grant-0123456789abcdef."
                ),
            )
            .into());
        }
        let provider = configured(&self.shared)?;
        let rules = ingress::grant_rules(&provider.aws, region, &[grant_id.to_owned()])
            .await
            .map_err(|e| Diagnostics::from(aws_error("Unable to Import Ingress Grant", &e)))?;
        state_from_rules(region, grant_id, &rules).ok_or_else(|| {
            Diagnostic::error(
                "Cannot Import Non-existent Grant",
                format!("No security group rule in {region} carries {}={grant_id}. It may have expired and been swept.", tags::GRANT_ID),
            )
            .into()
        })
    }
}

impl TemporaryIngress {
    /// Create: fill region, protocol, allow_world and (if unset) the detected caller IP, and check
    /// that the groups exist, so mistakes surface at plan time.
    async fn plan_create(&self, plan: &mut PlanChange<'_>, args: &Args, provider: &Configured) {
        let region = match &args.region {
            Tri::Known(r) => Some(r.clone()),
            Tri::Unknown => None,
            Tri::Null => match provider.aws.home_region() {
                Some(r) => {
                    set(&mut plan.planned, "region", Value::string(r));
                    Some(r.to_owned())
                }
                None => {
                    plan.diagnostics.push(
                        Diagnostic::error(
                            "No Region",
                            "Set region here or in the provider block (or AWS_REGION).",
                        )
                        .at(root().attr("region")),
                    );
                    return;
                }
            },
        };
        if plan.config.attr("protocol").is_null() {
            set(&mut plan.planned, "protocol", Value::string("tcp"));
        }
        if plan.config.attr("allow_world").is_null() {
            set(&mut plan.planned, "allow_world", Value::Bool(false));
        }
        // An unset cidr_blocks stays unknown in the plan: the caller's IP is detected at apply, so
        // a plan saved and applied later (or re-planned by Terraform at apply) cannot disagree
        // with the address actually granted.
        if let (Some(region), Some(groups)) = (region, args.group_ids.as_ref()) {
            match self.missing_groups(provider, &region, groups).await {
                Ok(missing) => {
                    for group in missing {
                        let i = groups.iter().position(|g| *g == group).unwrap_or(0);
                        plan.diagnostics.push(
                            Diagnostic::error(
                                "Security Group Not Found",
                                format!("{group} does not exist in {region} (or is not visible to these credentials)."),
                            )
                            .at(root().attr("security_group_ids").index(i)),
                        );
                    }
                }
                Err(e) => plan
                    .diagnostics
                    .push(aws_error("Unable to Check Security Groups", &e)),
            }
        }
    }

    /// Update: keep equivalent prior values, move expires_at with ttl, and replace a grant that has
    /// expired or lost rules outside Terraform.
    fn plan_update(&self, plan: &mut PlanChange<'_>, args: &Args) {
        keep_equivalent_prior(plan);
        let prior = plan.prior;
        let now = self.clock.now();
        let created = prior.attr("created_at");
        let prior_expiry = match prior.attr("expires_at") {
            Value::String(s) => parse_instant(s),
            _ => None,
        };

        // Rules deleted by hand (or swept): some gone means the grant must be made again.
        let expected = expected_rule_count(prior);
        let present = match prior.attr("rule_ids") {
            Value::List(ids) => ids.len(),
            _ => 0,
        };
        if expected.is_some_and(|n| present < n) {
            plan.diagnostics.push(Diagnostic::warning(
                "Ingress Rules Missing",
                format!(
                    "{} of the grant's {} rules no longer exist (removed outside Terraform). Applying replaces the grant.",
                    expected.unwrap_or(0) - present,
                    expected.unwrap_or(0)
                ),
            ));
            mark_replaced(plan, "rule_ids");
            return;
        }

        // Expired: "knock again".
        if let Some(expiry) = prior_expiry {
            if expiry <= now {
                let until = args
                    .ttl
                    .map(|t| format!(" until about {}", format_instant(now + t)))
                    .unwrap_or_default();
                plan.diagnostics.push(Diagnostic::warning(
                    "Ingress Grant Expired",
                    format!(
                        "The grant {} expired at {}. Applying replaces it with a new grant{until}.",
                        prior.attr("id").as_str_or(""),
                        format_instant(expiry)
                    ),
                ));
                mark_replaced(plan, "expires_at");
                return;
            }
        }

        // A changed ttl moves expires_at in place.
        let created_at = match created {
            Value::String(s) => parse_instant(s),
            _ => None,
        };
        match (
            created_at,
            args.ttl,
            plan.planned.attr("ttl") == prior.attr("ttl"),
        ) {
            (_, _, true) => {
                let keep = prior.attr("expires_at").clone();
                set(&mut plan.planned, "expires_at", keep);
            }
            (Some(created), Some(ttl), false) => {
                let Some(expiry) = clock::checked_add(created, ttl) else {
                    plan.diagnostics.push(
                        Diagnostic::error(
                            "Invalid Stored State",
                            format!(
                                "created_at {} plus ttl {} is past the year 9999; the stored created_at is wrong. Remove the grant from the state and import it again.",
                                format_instant(created),
                                format_duration(ttl)
                            ),
                        )
                        .at(root().attr("created_at")),
                    );
                    return;
                };
                if expiry <= now {
                    plan.diagnostics.push(Diagnostic::warning(
                        "Ingress Grant Expired",
                        format!(
                            "With ttl = {}, the grant would have expired at {}. Applying replaces it with a new grant until about {}.",
                            format_duration(ttl),
                            format_instant(expiry),
                            format_instant(now + ttl)
                        ),
                    ));
                    mark_replaced(plan, "expires_at");
                } else {
                    set(
                        &mut plan.planned,
                        "expires_at",
                        Value::string(format_instant(expiry)),
                    );
                }
            }
            _ => set(&mut plan.planned, "expires_at", Value::unknown()),
        }
    }
}

/// Marks the grant for replacement through `attr` (which must then differ from the prior value):
/// everything the new grant computes becomes unknown.
fn mark_replaced(plan: &mut PlanChange<'_>, attr: &str) {
    for name in ["id", "created_at", "expires_at", "rule_ids", "granted_by"] {
        set(&mut plan.planned, name, Value::unknown());
    }
    plan.requires_replace.push(root().attr(attr));
}

/// Turns one list element into a canonical string, or None when it is not comparable.
type Normalise = fn(&Value) -> Option<String>;

/// Where the configuration says the same as the prior state in other words (the same set of
/// groups in another order, `24h` vs `1day`), keeps the prior value so the plan shows no change.
fn keep_equivalent_prior(plan: &mut PlanChange<'_>) {
    let prior = plan.prior;
    let config = plan.config;
    let same_set = |a: &Value, b: &Value, norm: fn(&Value) -> Option<String>| match (a, b) {
        (Value::List(x), Value::List(y)) => {
            let x: Option<BTreeSet<String>> = x.iter().map(norm).collect();
            let y: Option<BTreeSet<String>> = y.iter().map(norm).collect();
            x.is_some() && x == y
        }
        _ => false,
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_i64().map(|i| i.to_string()),
        _ => None,
    };
    let cidr = |v: &Value| match v {
        Value::String(s) => s.parse::<IpNet>().ok().map(|n| n.to_string()),
        _ => None,
    };
    let ranges = |v: &Value| match v {
        Value::String(s) => PortRange::parse(s)
            .ok()
            .map(|r| format!("{}-{}", r.from, r.to)),
        _ => None,
    };
    let checks: [(&str, Normalise); 4] = [
        ("security_group_ids", text),
        ("ports", number),
        ("cidr_blocks", cidr),
        ("port_ranges", ranges),
    ];
    for (attr, norm) in checks {
        let (p, c) = (prior.attr(attr), config.attr(attr));
        if p != c && same_set(p, c, norm) {
            let keep = p.clone();
            set(&mut plan.planned, attr, keep);
        }
    }
    if let (Value::String(p), Value::String(c)) = (prior.attr("ttl"), config.attr("ttl")) {
        if p != c && humantime::parse_duration(p).ok() == humantime::parse_duration(c).ok() {
            let keep = Value::string(p.clone());
            set(&mut plan.planned, "ttl", keep);
        }
    }
}

/// Groups × port ranges × CIDRs of a stored grant, if its state can say.
fn expected_rule_count(state: &Value) -> Option<usize> {
    let len = |name: &str| match state.attr(name) {
        Value::List(l) => l.len(),
        _ => 0,
    };
    let protocol = match state.attr("protocol") {
        Value::String(p) => Protocol::parse(p)?,
        _ => Protocol::Tcp,
    };
    let ports = if protocol.has_ports() {
        let mut distinct = BTreeSet::new();
        if let Value::List(ps) = state.attr("ports") {
            distinct.extend(
                ps.iter()
                    .filter_map(|p| match p {
                        Value::Number(n) => n.as_i64(),
                        _ => None,
                    })
                    .map(|p| (p, p)),
            );
        }
        if let Value::List(rs) = state.attr("port_ranges") {
            distinct.extend(rs.iter().filter_map(|r| {
                match r {
                    Value::String(s) => PortRange::parse(s)
                        .ok()
                        .map(|r| (i64::from(r.from), i64::from(r.to))),
                    _ => None,
                }
            }));
        }
        distinct.len()
    } else {
        1
    };
    let cidrs: BTreeSet<String> = match state.attr("cidr_blocks") {
        Value::List(l) => l
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => BTreeSet::new(),
    };
    let groups = len("security_group_ids");
    (groups > 0 && !cidrs.is_empty()).then_some(groups * ports * cidrs.len())
}

fn root() -> AttributePath {
    AttributePath::root()
}

fn set(value: &mut Value, attr: &str, to: Value) {
    if let Some(map) = value.as_map_mut() {
        map.insert(attr.to_owned(), to);
    }
}

trait StrOr {
    fn as_str_or<'a>(&'a self, default: &'a str) -> &'a str;
}

impl StrOr for Value {
    fn as_str_or<'a>(&'a self, default: &'a str) -> &'a str {
        match self {
            Value::String(s) => s,
            _ => default,
        }
    }
}

/// The configuration, checked; known values only (validation sees unknowns).
struct Args {
    region: Tri<String>,
    group_ids: Option<Vec<String>>,
    ttl: Option<Duration>,
}

impl Args {
    fn read(config: &Value) -> (Args, Diagnostics) {
        let mut d = Diagnostics::new();
        let path = root();

        let region = d
            .take(config.get::<String>(&path, "region"))
            .unwrap_or(Tri::Unknown);
        if let Tri::Known(r) = &region {
            if let Err(msg) = allowlist_core::region::check_name(r) {
                d.push(Diagnostic::error("Invalid Region", msg).at(path.attr("region")));
            }
        }

        let mut group_ids = None;
        if let Some(Tri::Known(groups)) =
            d.take(config.get::<Vec<Tri<String>>>(&path, "security_group_ids"))
        {
            if groups.is_empty() {
                d.push(
                    Diagnostic::error("No Security Groups", "Name at least one security group.")
                        .at(path.attr("security_group_ids")),
                );
            }
            let mut seen = BTreeSet::new();
            for (i, g) in groups.iter().enumerate() {
                if let Tri::Known(g) = g {
                    if let Err(msg) = ingress::check_group_id(g) {
                        d.push(
                            Diagnostic::error("Invalid Security Group ID", msg)
                                .at(path.attr("security_group_ids").index(i)),
                        );
                    } else if !seen.insert(g.clone()) {
                        d.push(
                            Diagnostic::error(
                                "Duplicate Security Group",
                                format!("{g} is listed twice."),
                            )
                            .at(path.attr("security_group_ids").index(i)),
                        );
                    }
                }
            }
            if groups.iter().all(|g| !g.is_unknown()) {
                group_ids = Some(groups.into_iter().filter_map(Tri::known).collect());
            }
        }

        let protocol = match d.take(config.get::<String>(&path, "protocol")) {
            Some(Tri::Known(p)) => match Protocol::parse(&p) {
                Some(p) => Some(p),
                None => {
                    d.push(
                        Diagnostic::error(
                            "Invalid Protocol",
                            format!("{p:?} is not one of {}.", Protocol::NAMES.join(", ")),
                        )
                        .at(path.attr("protocol")),
                    );
                    None
                }
            },
            Some(Tri::Null) => Some(Protocol::Tcp),
            _ => None,
        };

        let ports = d.take(config.get::<Vec<Tri<i64>>>(&path, "ports"));
        if let Some(Tri::Known(ports)) = &ports {
            for (i, p) in ports.iter().enumerate() {
                if let Tri::Known(p) = p {
                    if !(0..=65535).contains(p) {
                        d.push(
                            Diagnostic::error(
                                "Invalid Port",
                                format!("Port {p} is out of range; ports are 0-65535."),
                            )
                            .at(path.attr("ports").index(i)),
                        );
                    }
                }
            }
        }
        let ranges = d.take(config.get::<Vec<Tri<String>>>(&path, "port_ranges"));
        if let Some(Tri::Known(ranges)) = &ranges {
            for (i, r) in ranges.iter().enumerate() {
                if let Tri::Known(r) = r {
                    if let Err(msg) = PortRange::parse(r) {
                        d.push(
                            Diagnostic::error("Invalid Port Range", msg)
                                .at(path.attr("port_ranges").index(i)),
                        );
                    }
                }
            }
        }
        let has_ports =
            |t: &Option<Tri<Vec<Tri<i64>>>>| matches!(t, Some(Tri::Known(v)) if !v.is_empty());
        let has_ranges = matches!(&ranges, Some(Tri::Known(v)) if !v.is_empty());
        let ports_unknown =
            matches!(ports, Some(Tri::Unknown)) || matches!(ranges, Some(Tri::Unknown));
        match protocol {
            Some(p) if p.has_ports() && !has_ports(&ports) && !has_ranges && !ports_unknown => d.push(
                Diagnostic::error("No Ports", format!("A {p} grant needs ports and/or port_ranges, e.g. ports = [22].")).at(path.attr("ports")),
            ),
            Some(p) if !p.has_ports() && (has_ports(&ports) || has_ranges) => d.push(
                Diagnostic::error("Ports Not Allowed", format!("{p} has no ports; remove ports and port_ranges (all {p} types are opened).")).at(path.attr("ports")),
            ),
            _ => {}
        }

        let allow_world = d.take(config.get::<bool>(&path, "allow_world"));
        if let Some(Tri::Known(cidrs)) =
            d.take(config.get::<Vec<Tri<String>>>(&path, "cidr_blocks"))
        {
            if cidrs.is_empty() {
                d.push(
                    Diagnostic::error(
                        "No CIDR Blocks",
                        "cidr_blocks is empty; omit it to use your detected IP.",
                    )
                    .at(path.attr("cidr_blocks")),
                );
            }
            let world_ok = match allow_world {
                Some(Tri::Known(b)) => Some(b),
                Some(Tri::Null) | None => Some(false),
                Some(Tri::Unknown) => None,
            };
            let mut seen = BTreeSet::new();
            for (i, c) in cidrs.iter().enumerate() {
                let Tri::Known(c) = c else { continue };
                match ingress::check_cidr(c, world_ok.unwrap_or(true)) {
                    Ok(net) if !seen.insert(net) => d.push(
                        Diagnostic::error("Duplicate CIDR Block", format!("{c} is listed twice."))
                            .at(path.attr("cidr_blocks").index(i)),
                    ),
                    Ok(_) => {}
                    Err(msg) => d.push(
                        Diagnostic::error("Invalid CIDR Block", msg)
                            .at(path.attr("cidr_blocks").index(i)),
                    ),
                }
            }
        }

        let ttl = match d.take(config.get::<String>(&path, "ttl")) {
            Some(Tri::Known(t)) => d.take(parse_positive_duration(&t, &path.attr("ttl"))),
            _ => None,
        };

        if let Some(Tri::Known(desc)) = d.take(config.get::<String>(&path, "description")) {
            if let Err(msg) = check_description(&desc) {
                d.push(Diagnostic::error("Invalid Description", msg).at(path.attr("description")));
            }
        }
        if let Some(Tri::Known(map)) =
            d.take(config.get::<BTreeMap<String, Tri<String>>>(&path, "tags"))
        {
            for key in map.keys() {
                if let Err(msg) = ingress::check_user_tag_key(key) {
                    d.push(
                        Diagnostic::error("Invalid Tag Key", msg).at(path.attr("tags").key(key)),
                    );
                }
            }
        }

        (
            Args {
                region,
                group_ids,
                ttl,
            },
            d,
        )
    }
}

/// AWS's rule-description alphabet and length.
fn check_description(s: &str) -> Result<(), String> {
    if s.len() > MAX_DESCRIPTION {
        return Err(format!(
            "The description is {} characters; AWS allows {MAX_DESCRIPTION}.",
            s.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c);
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("{c:?} is not allowed in a rule description; AWS accepts letters, digits, spaces and . _ - : / ( ) # , @ [ ] + = & ; {{ }} ! $ *")),
        None => Ok(()),
    }
}

/// A planned or stored grant, with every value the apply needs known.
struct State {
    id: String,
    region: String,
    group_ids: Vec<String>,
    protocol: Protocol,
    single_ports: Vec<i64>,
    port_ranges: Vec<PortRange>,
    cidrs: Vec<IpNet>,
    ttl: Option<Duration>,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    expires_at: Option<String>,
}

impl State {
    fn read(v: &Value) -> Result<State, Diagnostics> {
        let path = root();
        let bad = |what: &str| {
            Diagnostics::from(Diagnostic::error(
                "Invalid State",
                format!("{what} is missing or unknown; this is a bug in the provider."),
            ))
        };
        let string = |name: &str| {
            v.get::<String>(&path, name)
                .map_err(Diagnostics::from)
                .map(Tri::known)
        };
        let list = |name: &str| -> Result<Vec<String>, Diagnostics> {
            Ok(v.get::<Vec<Tri<String>>>(&path, name)?
                .known()
                .unwrap_or_default()
                .into_iter()
                .filter_map(Tri::known)
                .collect())
        };
        let ports: Vec<i64> = v
            .get::<Vec<Tri<i64>>>(&path, "ports")?
            .known()
            .unwrap_or_default()
            .into_iter()
            .filter_map(Tri::known)
            .collect();
        Ok(State {
            id: string("id")?.unwrap_or_default(),
            region: string("region")?.ok_or_else(|| bad("region"))?,
            group_ids: list("security_group_ids")?,
            protocol: string("protocol")?
                .as_deref()
                .and_then(Protocol::parse)
                .unwrap_or(Protocol::Tcp),
            single_ports: ports,
            port_ranges: list("port_ranges")?
                .iter()
                .filter_map(|r| PortRange::parse(r).ok())
                .collect(),
            cidrs: list("cidr_blocks")?
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            ttl: string("ttl")?.and_then(|t| parse_positive_duration(&t, &path.attr("ttl")).ok()),
            description: string("description")?,
            tags: v
                .get::<BTreeMap<String, Tri<String>>>(&path, "tags")?
                .known()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, t)| t.known().map(|v| (k, v)))
                .collect(),
            expires_at: string("expires_at")?,
        })
    }

    fn ports(&self) -> Vec<PortRange> {
        let mut all: BTreeSet<PortRange> = self.port_ranges.iter().copied().collect();
        all.extend(
            self.single_ports
                .iter()
                .filter_map(|p| u16::try_from(*p).ok())
                .map(PortRange::single),
        );
        all.into_iter().collect()
    }
}

/// The planned state with everything the grant computed filled in.
fn with_grant(planned: &Value, grant: &Grant, rules: &[Rule]) -> Value {
    let mut state = planned.clone();
    set(&mut state, "id", Value::string(&grant.id));
    set(
        &mut state,
        "created_at",
        Value::string(format_instant(grant.created_at)),
    );
    set(
        &mut state,
        "expires_at",
        Value::string(format_instant(grant.expires_at)),
    );
    set(&mut state, "granted_by", Value::string(&grant.granted_by));
    set(
        &mut state,
        "rule_ids",
        Value::strings(rules.iter().map(|r| r.id.clone())),
    );
    state
}

/// Rebuilds a grant's state from its rules (import).
fn state_from_rules(region: &str, grant_id: &str, rules: &[Rule]) -> Option<Value> {
    let first = rules.first()?;
    let groups: BTreeSet<&str> = rules.iter().map(|r| r.group_id.as_str()).collect();
    let perms: Vec<_> = rules.iter().filter_map(Rule::permission).collect();
    let protocol = perms.first().map(|p| p.protocol).unwrap_or(Protocol::Tcp);
    let port_set: BTreeSet<PortRange> = perms.iter().map(|p| p.ports).collect();
    let cidrs: BTreeSet<IpNet> = perms.iter().map(|p| p.cidr).collect();
    let single: Vec<Value> = port_set
        .iter()
        .filter(|r| protocol.has_ports() && r.from == r.to)
        .map(|r| Value::Number(crate::tfplugin::value::Number::Int(i64::from(r.from))))
        .collect();
    let ranges: Vec<String> = port_set
        .iter()
        .filter(|r| protocol.has_ports() && r.from != r.to)
        .map(|r| format!("{}-{}", r.from, r.to))
        .collect();
    let created = first
        .tags
        .get(tags::CREATED_AT)
        .and_then(|s| parse_instant(s));
    let expires = rules.iter().filter_map(Rule::expires_at).min();
    let ttl = match (created, expires) {
        (Some(c), Some(e)) => e.duration_since(c).ok().map(format_duration),
        _ => None,
    };
    let user_tags = first.user_tags();
    let allow_world = cidrs
        .iter()
        .any(|c| ingress::check_cidr(&c.to_string(), false).is_err());
    Some(Value::object([
        ("security_group_ids", Value::strings(groups)),
        ("region", Value::string(region)),
        (
            "ports",
            if single.is_empty() {
                Value::Null
            } else {
                Value::List(single)
            },
        ),
        (
            "port_ranges",
            if ranges.is_empty() {
                Value::Null
            } else {
                Value::strings(ranges)
            },
        ),
        ("protocol", Value::string(protocol.as_str())),
        (
            "cidr_blocks",
            Value::strings(cidrs.iter().map(ToString::to_string)),
        ),
        ("ttl", ttl.map_or(Value::Null, Value::string)),
        (
            "description",
            first.description.clone().map_or(Value::Null, Value::string),
        ),
        (
            "tags",
            if user_tags.is_empty() {
                Value::Null
            } else {
                Value::object(user_tags.into_iter().map(|(k, v)| (k, Value::string(v))))
            },
        ),
        ("allow_world", Value::Bool(allow_world)),
        ("id", Value::string(grant_id)),
        (
            "created_at",
            created.map_or(Value::Null, |t| Value::string(format_instant(t))),
        ),
        (
            "expires_at",
            expires.map_or(Value::Null, |t| Value::string(format_instant(t))),
        ),
        (
            "rule_ids",
            Value::strings(rules.iter().map(|r| r.id.clone())),
        ),
        (
            "granted_by",
            first
                .tags
                .get(tags::GRANTED_BY)
                .map_or(Value::Null, Value::string),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::value::Number;
    use allowlist_core::clock::SystemClock;
    use std::sync::OnceLock;
    use std::time::SystemTime;

    fn resource() -> TemporaryIngress {
        TemporaryIngress::new(Arc::new(OnceLock::new()), Arc::new(SystemClock::new()))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        resource().schema().block.conform(&mut v).expect("conforms");
        v
    }

    fn num(n: i64) -> Value {
        Value::Number(Number::Int(n))
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        let r = resource();
        assert_eq!(r.schema().block.check(r.type_name()), Ok(()));
    }

    #[test]
    fn good_arguments_pass() {
        let (args, diags) = Args::read(&obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "sg-0123456789abcdef0"]),
            ),
            ("ports", Value::List(vec![num(22), num(443)])),
            ("port_ranges", Value::strings(["8000-8100"])),
            (
                "cidr_blocks",
                Value::strings(["203.0.113.7/32", "2001:db8::/64"]),
            ),
            ("ttl", Value::string("90m")),
            ("description", Value::string("on-call (OPS-1)")),
            ("tags", Value::object([("team", Value::string("sre"))])),
        ]));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(args.ttl, Some(Duration::from_secs(5400)));
        assert_eq!(args.group_ids.map(|g| g.len()), Some(2));
    }

    #[test]
    fn each_bad_argument_points_at_itself() {
        let (_, diags) = Args::read(&obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "nope", "sg-0123abcd"]),
            ),
            ("region", Value::string("moon-1")),
            ("ports", Value::List(vec![num(22), num(70000)])),
            ("port_ranges", Value::strings(["9-1"])),
            ("cidr_blocks", Value::strings(["0.0.0.0/0", "10.0.0.1/8"])),
            ("ttl", Value::string("0s")),
            ("description", Value::string("tab\there")),
            ("tags", Value::object([("allowlist:x", Value::string("y"))])),
        ]));
        assert_eq!(
            diags.paths(),
            vec![
                "region",
                "security_group_ids[1]",
                "security_group_ids[2]",
                "ports[1]",
                "port_ranges[0]",
                "cidr_blocks[0]",
                "cidr_blocks[1]",
                "ttl",
                "description",
                "tags[\"allowlist:x\"]",
            ]
        );
    }

    #[test]
    fn ports_are_required_for_tcp_and_refused_for_icmp() {
        let (_, diags) = Args::read(&obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("ttl", Value::string("1h")),
        ]));
        assert_eq!(diags.paths(), vec!["ports"]);
        let (_, diags) = Args::read(&obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("protocol", Value::string("icmp")),
            ("ports", Value::List(vec![num(22)])),
            ("ttl", Value::string("1h")),
        ]));
        assert_eq!(diags.paths(), vec!["ports"]);
    }

    #[test]
    fn world_cidrs_need_allow_world_and_unknown_allow_world_defers() {
        let base = [
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("ports", Value::List(vec![num(22)])),
            ("ttl", Value::string("1h")),
            ("cidr_blocks", Value::strings(["0.0.0.0/0"])),
        ];
        let with = |allow: Value| {
            let mut pairs = base.to_vec();
            pairs.push(("allow_world", allow));
            Args::read(&obj(&pairs)).1
        };
        assert!(with(Value::Bool(true)).is_empty());
        assert!(with(Value::unknown()).is_empty());
        assert_eq!(with(Value::Bool(false)).paths(), vec!["cidr_blocks[0]"]);
    }

    #[test]
    fn expected_rules_are_groups_times_ports_times_cidrs() {
        let state = obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "sg-0123abce"]),
            ),
            ("ports", Value::List(vec![num(22), num(443)])),
            ("port_ranges", Value::strings(["22-22", "8000-8100"])),
            ("cidr_blocks", Value::strings(["203.0.113.7/32"])),
            ("protocol", Value::string("tcp")),
        ]);
        // 22, 443 and 8000-8100 (22-22 is the same rule as port 22).
        assert_eq!(expected_rule_count(&state), Some(6));
        let icmp = obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            (
                "cidr_blocks",
                Value::strings(["203.0.113.7/32", "2001:db8::/64"]),
            ),
            ("protocol", Value::string("icmp")),
        ]);
        assert_eq!(expected_rule_count(&icmp), Some(2));
    }

    fn rule(id: &str, group: &str, port: i32, cidr: &str, grant: &Grant) -> Rule {
        Rule {
            group_id: group.into(),
            id: id.into(),
            protocol: "tcp".into(),
            ports: PortRange {
                from: port,
                to: port,
            },
            cidr: cidr.parse().ok(),
            description: grant.description.clone(),
            tags: grant.tags().into_iter().collect(),
        }
    }

    #[test]
    fn import_rebuilds_the_state_from_rules() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let grant = Grant {
            id: "grant-00000000000000aa".into(),
            region: "us-west-2".into(),
            group_ids: vec![],
            protocol: Protocol::Tcp,
            ports: vec![],
            cidrs: vec![],
            description: Some("on-call".into()),
            user_tags: BTreeMap::from([("team".into(), "sre".into())]),
            created_at: created,
            expires_at: created + Duration::from_secs(86_400),
            granted_by: "arn:aws:iam::1:user/a".into(),
        };
        let rules = [
            rule("sgr-1", "sg-0123abcd", 22, "203.0.113.7/32", &grant),
            rule("sgr-2", "sg-0123abcd", 443, "203.0.113.7/32", &grant),
        ];
        let state = state_from_rules("us-west-2", &grant.id, &rules).expect("state");
        assert_eq!(state.attr("ports"), &Value::List(vec![num(22), num(443)]));
        assert_eq!(state.attr("ttl"), &Value::string("1day"));
        assert_eq!(
            state.attr("expires_at"),
            &Value::string("2025-11-22T12:00:00Z")
        );
        assert_eq!(state.attr("tags").attr("team"), &Value::string("sre"));
        assert_eq!(state.attr("allow_world"), &Value::Bool(false));
        assert_eq!(state.attr("rule_ids"), &Value::strings(["sgr-1", "sgr-2"]));
        assert!(state_from_rules("us-west-2", &grant.id, &[]).is_none());
    }

    #[test]
    fn equivalent_config_keeps_the_prior_value() {
        let prior = obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0000000a", "sg-0000000b"]),
            ),
            ("ttl", Value::string("1day")),
            ("ports", Value::List(vec![num(443), num(22)])),
        ]);
        let config = obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0000000b", "sg-0000000a"]),
            ),
            ("ttl", Value::string("24h")),
            ("ports", Value::List(vec![num(22), num(443)])),
        ]);
        let mut change = PlanChange {
            prior: &prior,
            config: &config,
            planned: config.clone(),
            requires_replace: Vec::new(),
            diagnostics: Diagnostics::new(),
        };
        keep_equivalent_prior(&mut change);
        assert_eq!(
            change.planned.attr("security_group_ids"),
            prior.attr("security_group_ids")
        );
        assert_eq!(change.planned.attr("ttl"), &Value::string("1day"));
        assert_eq!(change.planned.attr("ports"), prior.attr("ports"));

        let different = obj(&[
            ("ttl", Value::string("12h")),
            ("security_group_ids", Value::strings(["sg-0000000a"])),
        ]);
        let mut change = PlanChange {
            prior: &prior,
            config: &different,
            planned: different.clone(),
            requires_replace: Vec::new(),
            diagnostics: Diagnostics::new(),
        };
        keep_equivalent_prior(&mut change);
        assert_eq!(change.planned.attr("ttl"), &Value::string("12h"));
        assert_eq!(
            change.planned.attr("security_group_ids"),
            &Value::strings(["sg-0000000a"])
        );
    }
}
