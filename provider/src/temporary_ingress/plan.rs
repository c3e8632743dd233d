//! The plan rules of `allowlist_temporary_ingress`, as pure functions of their inputs (the prior
//! state, the configuration and the provider's limits), so each rule has a millisecond unit test.
//! They read no clock: Terraform plans again at apply, and a saved plan applied an hour later
//! must be planned exactly as it was. Time enters only through the state, where reading the
//! grant records whether it had `expired` (see [`super::model::Model::refreshed`]).
//!
//! - A new grant gets its defaults (region, protocol, allow_world, not expired) or an error.
//! - Where the configuration says what the state says in other words (the same groups in another
//!   order, `24h` for `1day`), the prior value stays: no spurious diff.
//! - Rules removed outside Terraform: replace the grant.
//! - Expired when last read: replace it, "knock again", with a warning.
//! - A changed `ttl` moves `expires_at` in place to `created_at + ttl` (whether that instant has
//!   passed is for the apply to find, and for the next read to act on).

use super::model::{attr, Model};
use crate::tfplugin::{AttributePath, Diagnostic, Tri};
use allowlist_core::clock::{self, format_instant};
use allowlist_core::duration;
use allowlist_core::ingress::{PortRange, Protocol};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// `ttl` (as the user wrote it, and as a duration) must not exceed the provider's `max_ttl`.
pub fn check_ttl_limit(written: &str, ttl: Duration, max_ttl: Duration) -> Result<(), Diagnostic> {
    if ttl <= max_ttl {
        return Ok(());
    }
    Err(Diagnostic::error(
        "TTL Too Long",
        format!(
            "ttl = {written:?} is longer than the provider's max_ttl of {}. Ask for less, or raise max_ttl in the provider block.",
            duration::format(max_ttl)
        ),
    )
    .at(AttributePath::of(attr::TTL)))
}

/// The values a new grant's plan fills in where the configuration leaves them null.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateDefaults {
    /// The provider's region; None when the configuration names one (or it is unknown).
    pub region: Option<String>,
    pub protocol: Option<&'static str>,
    pub allow_world: Option<bool>,
    /// A new grant has not expired (its ttl is above zero).
    pub expired: bool,
}

/// The defaults of a new grant, or an error when no region can be had. An unset `cidr_blocks`
/// stays unknown in the plan: the caller's IP is detected at apply, so a plan saved and applied
/// later cannot disagree with the address actually granted.
pub fn create_defaults(
    config: &Model,
    home_region: Option<&str>,
) -> Result<CreateDefaults, Diagnostic> {
    let region = match (&config.region, home_region) {
        (Tri::Null, Some(home)) => Some(home.to_owned()),
        (Tri::Null, None) => {
            return Err(Diagnostic::error(
                "No Region",
                "Set region here or in the provider block (or AWS_REGION).",
            )
            .at(AttributePath::of(attr::REGION)))
        }
        _ => None,
    };
    Ok(CreateDefaults {
        region,
        protocol: config.protocol.is_null().then_some(Protocol::Tcp.as_str()),
        allow_world: config.allow_world.is_null().then_some(false),
        expired: false,
    })
}

/// What the rules decided for a change to an existing grant.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePlan {
    /// Attributes whose prior value the plan keeps: the configuration says the same in other
    /// words.
    pub keep_prior: Vec<&'static str>,
    pub decision: Decision,
}

/// Update in place, replace, or refuse.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep the grant; `expires_at` becomes this.
    InPlace(Expiry),
    /// Replace the grant: `because` is the attribute whose change forces it (everything the grant
    /// computes becomes unknown), `warning` says why to the user.
    Replace {
        because: &'static str,
        warning: Diagnostic,
    },
    /// The stored state cannot be planned from.
    Invalid(Diagnostic),
}

/// The planned `expires_at` of a grant kept in place (and with it `expired`: as stored when the
/// expiry does not move, else found at apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// As stored: `ttl` did not change.
    Unchanged,
    /// Moved by a new `ttl` to `created_at + ttl`.
    Moved(SystemTime),
    /// Not known until apply (the new `ttl` is not known yet).
    Unknown,
}

/// The rules for a grant that exists (`prior`, as last read) under a new `config`.
pub fn plan_update(prior: &Model, config: &Model) -> UpdatePlan {
    let keep_prior = equivalent_prior(prior, config);
    let decision = decide(prior, config, &keep_prior);
    UpdatePlan {
        keep_prior,
        decision,
    }
}

fn decide(prior: &Model, config: &Model, keep_prior: &[&str]) -> Decision {
    // Rules deleted by hand (or swept): some gone means the grant must be made again.
    if let Some(expected) = prior.expected_rule_count() {
        let present = prior.present_rule_count();
        if present < expected {
            return Decision::Replace {
                because: attr::RULE_IDS,
                warning: Diagnostic::warning(
                    "Ingress Rules Missing",
                    format!(
                        "{} of the grant's {expected} rules no longer exist (removed outside Terraform). Applying replaces the grant.",
                        expected - present
                    ),
                ),
            };
        }
    }

    // Expired when last read: "knock again".
    let ttl = config.ttl();
    if prior.expired == Tri::Known(true) {
        let expiry = prior.expires_at.as_known().map_or("", String::as_str);
        let lasting = config
            .ttl
            .as_known()
            .map(|t| format!(" lasting {t}"))
            .unwrap_or_default();
        return Decision::Replace {
            because: attr::EXPIRED,
            warning: Diagnostic::warning(
                "Ingress Grant Expired",
                format!(
                    "The grant {} expired at {expiry}. Applying replaces it with a new grant{lasting}, from the moment it is applied.",
                    prior.id.as_known().map_or("", String::as_str),
                ),
            ),
        };
    }

    // A changed ttl moves expires_at in place.
    let ttl_unchanged = prior.ttl == config.ttl || keep_prior.contains(&attr::TTL);
    if ttl_unchanged {
        return Decision::InPlace(Expiry::Unchanged);
    }
    let (Some(created), Some(ttl)) = (prior.created_at(), ttl) else {
        return Decision::InPlace(Expiry::Unknown);
    };
    match clock::checked_add(created, ttl) {
        Some(expiry) => Decision::InPlace(Expiry::Moved(expiry)),
        None => Decision::Invalid(
            Diagnostic::error(
                "Invalid Stored State",
                format!(
                    "created_at {} plus ttl = {:?} is past the year 9999; the stored created_at is wrong. Remove the grant from the state and import it again.",
                    format_instant(created),
                    config.ttl.as_known().map_or("", String::as_str),
                ),
            )
            .at(AttributePath::of(attr::CREATED_AT)),
        ),
    }
}

/// The attributes where the configuration says the same as the prior state in other words: the
/// same set of groups, ports, CIDRs or port ranges in another order or spelling, or the same
/// duration written differently (`24h` vs `1day`, as import writes it).
pub fn equivalent_prior(prior: &Model, config: &Model) -> Vec<&'static str> {
    let mut keep = Vec::new();
    let mut same =
        |name: &'static str, p: Option<BTreeSet<String>>, c: Option<BTreeSet<String>>| {
            if p.is_some() && p == c {
                keep.push(name);
            }
        };
    if prior.security_group_ids != config.security_group_ids {
        same(
            attr::SECURITY_GROUP_IDS,
            canonical(&prior.security_group_ids, |s| Some(s.clone())),
            canonical(&config.security_group_ids, |s| Some(s.clone())),
        );
    }
    if prior.ports != config.ports {
        same(
            attr::PORTS,
            canonical(&prior.ports, |p| Some(p.to_string())),
            canonical(&config.ports, |p| Some(p.to_string())),
        );
    }
    let cidr = |s: &String| s.parse::<IpNet>().ok().map(|n| n.to_string());
    if prior.cidr_blocks != config.cidr_blocks {
        same(
            attr::CIDR_BLOCKS,
            canonical(&prior.cidr_blocks, cidr),
            canonical(&config.cidr_blocks, cidr),
        );
    }
    let range = |s: &String| {
        PortRange::parse(s)
            .ok()
            .map(|r| format!("{}-{}", r.from, r.to))
    };
    if prior.port_ranges != config.port_ranges {
        same(
            attr::PORT_RANGES,
            canonical(&prior.port_ranges, range),
            canonical(&config.port_ranges, range),
        );
    }
    if let (Tri::Known(p), Tri::Known(c)) = (&prior.ttl, &config.ttl) {
        if p != c && duration::same(p, c) {
            keep.push(attr::TTL);
        }
    }
    keep
}

/// A known list as a set of canonical texts; None when it or an element is not known or not
/// comparable.
fn canonical<T>(
    list: &Tri<Vec<Tri<T>>>,
    norm: impl Fn(&T) -> Option<String>,
) -> Option<BTreeSet<String>> {
    match list {
        Tri::Known(items) => items.iter().map(|i| i.as_known().and_then(&norm)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplugin::value::ToValue;
    use std::collections::BTreeMap;

    /// 2025-11-21T12:00:00Z, the fixed "now" of these tests.
    const NOW_SECS: u64 = 1_763_726_400;

    fn at(offset_secs: i64) -> SystemTime {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
        if offset_secs >= 0 {
            base + Duration::from_secs(offset_secs.unsigned_abs())
        } else {
            base - Duration::from_secs(offset_secs.unsigned_abs())
        }
    }

    fn known_list(items: &[&str]) -> Tri<Vec<Tri<String>>> {
        Tri::Known(items.iter().map(|s| Tri::Known((*s).to_owned())).collect())
    }

    fn text(s: &str) -> Tri<String> {
        Tri::Known(s.to_owned())
    }

    /// A configuration: two groups, ports 22 and 443, one CIDR, ttl 1h.
    fn config() -> Model {
        Model {
            security_group_ids: known_list(&["sg-0000000a", "sg-0000000b"]),
            region: Tri::Null,
            ports: Tri::Known(vec![Tri::Known(22), Tri::Known(443)]),
            port_ranges: Tri::Null,
            protocol: Tri::Null,
            cidr_blocks: known_list(&["203.0.113.7/32"]),
            ttl: text("1h"),
            description: Tri::Null,
            tags: Tri::Null,
            allow_world: Tri::Null,
            id: Tri::Null,
            created_at: Tri::Null,
            expires_at: Tri::Null,
            rule_ids: Tri::Null,
            granted_by: Tri::Null,
            expired: Tri::Null,
        }
    }

    /// The state of `config()` granted 30 minutes before now (so it expires in 30 minutes), with
    /// all of its 4 rules, read and found live.
    fn state() -> Model {
        Model {
            region: text("us-west-2"),
            protocol: text("tcp"),
            allow_world: Tri::Known(false),
            id: text("grant-00000000000000aa"),
            created_at: text(&format_instant(at(-1800))),
            expires_at: text(&format_instant(at(1800))),
            rule_ids: known_list(&["sgr-1", "sgr-2", "sgr-3", "sgr-4"]),
            granted_by: text("arn:aws:iam::123456789012:user/alice"),
            expired: Tri::Known(false),
            ..config()
        }
    }

    fn replaced_because(plan: &UpdatePlan) -> Option<(&'static str, &str)> {
        match &plan.decision {
            Decision::Replace { because, warning } => Some((*because, warning.summary.as_str())),
            _ => None,
        }
    }

    #[test]
    fn an_unchanged_live_grant_stays_as_it_is() {
        let plan = plan_update(&state(), &config());
        assert_eq!(plan.decision, Decision::InPlace(Expiry::Unchanged));
        assert!(plan.keep_prior.is_empty());
    }

    #[test]
    fn a_grant_read_as_expired_is_replaced_with_a_warning() {
        let expired = Model {
            expired: Tri::Known(true),
            ..state()
        };
        let plan = plan_update(&expired, &config());
        assert_eq!(
            replaced_because(&plan),
            Some((attr::EXPIRED, "Ingress Grant Expired"))
        );
        let Decision::Replace { warning, .. } = plan.decision else {
            unreachable!()
        };
        assert_eq!(
            warning.detail,
            "The grant grant-00000000000000aa expired at 2025-11-21T12:30:00Z. Applying replaces it \
             with a new grant lasting 1h, from the moment it is applied."
        );
        // Read as live (or never read since it was made): no replacement, whatever the time.
        for live in [Tri::Known(false), Tri::Null] {
            let state = Model {
                expired: live,
                ..state()
            };
            assert_eq!(
                plan_update(&state, &config()).decision,
                Decision::InPlace(Expiry::Unchanged)
            );
        }
    }

    #[test]
    fn a_new_ttl_moves_the_expiry_in_place() {
        let config = Model {
            ttl: text("2h"),
            ..config()
        };
        let plan = plan_update(&state(), &config);
        // created 30 min ago + 2h = 90 min from now.
        assert_eq!(plan.decision, Decision::InPlace(Expiry::Moved(at(5400))));
        assert!(plan.keep_prior.is_empty());
    }

    #[test]
    fn a_new_ttl_already_past_still_moves_in_place_and_the_apply_finds_it_expired() {
        // created 30 min ago + 10 min: in the past at plan time, but the plan does not read the
        // clock; the apply sets the tags and records expired, and the next plan replaces.
        let config = Model {
            ttl: text("10m"),
            ..config()
        };
        let plan = plan_update(&state(), &config);
        assert_eq!(plan.decision, Decision::InPlace(Expiry::Moved(at(-1200))));
    }

    #[test]
    fn an_unknown_ttl_leaves_the_expiry_unknown() {
        let config = Model {
            ttl: Tri::Unknown,
            ..config()
        };
        let plan = plan_update(&state(), &config);
        assert_eq!(plan.decision, Decision::InPlace(Expiry::Unknown));
    }

    #[test]
    fn a_stored_created_at_that_overflows_is_reported() {
        let state = Model {
            created_at: text("9999-12-31T00:00:00Z"),
            expires_at: text("9999-12-31T01:00:00Z"),
            ..state()
        };
        let config = Model {
            ttl: text("2days"),
            ..config()
        };
        let plan = plan_update(&state, &config);
        let Decision::Invalid(d) = plan.decision else {
            panic!("{:?}", plan.decision)
        };
        assert_eq!(d.summary, "Invalid Stored State");
        assert_eq!(d.path, Some(AttributePath::of(attr::CREATED_AT)));
    }

    #[test]
    fn missing_rules_replace_the_grant_even_before_expiry() {
        let state = Model {
            rule_ids: known_list(&["sgr-1", "sgr-2", "sgr-3"]),
            ..state()
        };
        let plan = plan_update(&state, &config());
        assert_eq!(
            replaced_because(&plan),
            Some((attr::RULE_IDS, "Ingress Rules Missing"))
        );
        let Decision::Replace { warning, .. } = plan.decision else {
            unreachable!()
        };
        assert!(
            warning.detail.starts_with("1 of the grant's 4 rules"),
            "{}",
            warning.detail
        );
        // All four present: no replacement.
        assert_eq!(
            plan_update(&self::state(), &config()).decision,
            Decision::InPlace(Expiry::Unchanged)
        );
    }

    #[test]
    fn an_imported_grant_keeps_its_equivalent_values() {
        // Import writes the ttl as humantime formats it and the lists sorted.
        let state = Model {
            ttl: text("1h 30m"),
            security_group_ids: known_list(&["sg-0000000b", "sg-0000000a"]),
            ports: Tri::Known(vec![Tri::Known(443), Tri::Known(22)]),
            cidr_blocks: known_list(&["203.0.113.7/32"]),
            ..state()
        };
        let config = Model {
            ttl: text("90m"),
            ..config()
        };
        let plan = plan_update(&state, &config);
        assert_eq!(
            plan.keep_prior,
            vec![attr::SECURITY_GROUP_IDS, attr::PORTS, attr::TTL]
        );
        assert_eq!(plan.decision, Decision::InPlace(Expiry::Unchanged));
    }

    #[test]
    fn different_values_are_not_kept() {
        let config = Model {
            ttl: text("12h"),
            security_group_ids: known_list(&["sg-0000000a"]),
            ports: Tri::Known(vec![Tri::Known(22), Tri::Unknown]),
            ..config()
        };
        assert!(equivalent_prior(&state(), &config).is_empty());
    }

    #[test]
    fn cidrs_and_port_ranges_compare_canonically() {
        let state = Model {
            port_ranges: known_list(&["8000-8100"]),
            cidr_blocks: known_list(&["2001:db8::/64", "203.0.113.7/32"]),
            ..state()
        };
        let config = Model {
            port_ranges: known_list(&["08000-8100"]),
            cidr_blocks: known_list(&["203.0.113.7/32", "2001:0db8::/64"]),
            ..config()
        };
        assert_eq!(
            equivalent_prior(&state, &config),
            vec![attr::CIDR_BLOCKS, attr::PORT_RANGES]
        );
    }

    #[test]
    fn ttl_limit_is_inclusive() {
        let day = Duration::from_secs(86_400);
        assert!(check_ttl_limit("1day", day, day).is_ok());
        let err = check_ttl_limit("2days", 2 * day, day).expect_err("over");
        assert_eq!(err.summary, "TTL Too Long");
        // The user's own words, and the limit in the compact form.
        assert!(
            err.detail
                .starts_with("ttl = \"2days\" is longer than the provider's max_ttl of 24h."),
            "{}",
            err.detail
        );
        assert!(check_ttl_limit("86401s", day + Duration::from_secs(1), day).is_err());
        assert_eq!(err.path, Some(AttributePath::of(attr::TTL)));
    }

    #[test]
    fn a_new_grant_gets_its_defaults_or_needs_a_region() {
        let defaults = create_defaults(&config(), Some("us-west-2")).expect("region");
        assert_eq!(
            defaults,
            CreateDefaults {
                region: Some("us-west-2".into()),
                protocol: Some("tcp"),
                allow_world: Some(false),
                expired: false,
            }
        );
        let set = Model {
            region: text("eu-central-1"),
            protocol: text("udp"),
            allow_world: Tri::Known(true),
            ..config()
        };
        let none = CreateDefaults {
            region: None,
            protocol: None,
            allow_world: None,
            expired: false,
        };
        assert_eq!(create_defaults(&set, None), Ok(none));
        let unknown = Model {
            region: Tri::Unknown,
            ..config()
        };
        assert_eq!(create_defaults(&unknown, None).map(|d| d.region), Ok(None));
        let err = create_defaults(&config(), None).expect_err("no region");
        assert_eq!(err.path, Some(AttributePath::of(attr::REGION)));
    }

    #[test]
    fn rule_count_is_groups_times_ports_times_cidrs() {
        let state = Model {
            port_ranges: known_list(&["22-22", "8000-8100"]),
            ..state()
        };
        // 22, 443 and 8000-8100 (22-22 is the same rule as port 22), in 2 groups, 1 CIDR.
        assert_eq!(state.expected_rule_count(), Some(6));
        let icmp = Model {
            protocol: text("icmp"),
            security_group_ids: known_list(&["sg-0000000a"]),
            cidr_blocks: known_list(&["203.0.113.7/32", "2001:db8::/64"]),
            ..state
        };
        assert_eq!(icmp.expected_rule_count(), Some(2));
    }

    #[test]
    fn models_round_trip_through_values() {
        let mut state = state();
        state.tags = Tri::Known(BTreeMap::from([("team".to_owned(), text("sre"))]));
        let value = state.to_value();
        assert_eq!(Model::read(&value), Ok(state));
        assert_eq!(
            value.attr(attr::TAGS),
            &Tri::Known(BTreeMap::from([("team".to_owned(), text("sre"))])).to_value()
        );
    }
}
