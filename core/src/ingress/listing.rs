//! Who holds access right now: the grants behind our managed rules, read back from the rules'
//! tags alone, so that grants made by any front door (the resource, the ephemeral resource, the
//! knock service) show up alike. [`grants_in`] and [`grants_of`] (one grantor's, for a front door
//! that knows its callers by `granted_by` rather than by a stored grant id) are pure;
//! [`list_grants`] reads one region (one DescribeSecurityGroupRules per page, like the sweep).

use super::ec2::managed_rules_in;
use super::holders::Hold;
use super::model::{tags, PortRange, Rule};
use crate::aws::Aws;
use crate::error::AwsError;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// One grant as its rules record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    /// The grant id; empty for a rule tagged by hand without one.
    pub id: String,
    pub region: String,
    /// The rules' protocol as AWS names it (`tcp`, `udp`, `icmp`, `icmpv6`).
    pub protocol: String,
    pub created_at: Option<SystemTime>,
    /// None when the grant's hold cannot be read (a tag edited by hand): such a rule is kept by
    /// the sweep, so it is listed as live.
    pub expires_at: Option<SystemTime>,
    pub granted_by: Option<String>,
    /// Made for one Terraform run (the ephemeral resource).
    pub ephemeral: bool,
    /// The rules the grant holds, sorted.
    pub rules: Vec<Rule>,
}

impl HeldGrant {
    /// Whether the grant's expiry has passed at `now` (the sweep may revoke its rules).
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the grant still wants its rules at `now`: its expiry is known and ahead.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at > now)
    }

    /// The ids of its rules, sorted.
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.id.clone()).collect()
    }

    /// The security groups its rules are in, sorted, distinct.
    pub fn group_ids(&self) -> Vec<String> {
        distinct(self.rules.iter().map(|r| r.group_id.clone()))
    }

    /// The CIDRs its rules open to, sorted, distinct.
    pub fn cidrs(&self) -> Vec<IpNet> {
        distinct(self.rules.iter().filter_map(|r| r.cidr))
    }

    /// The port ranges its rules open, sorted, distinct (`PortRange::ALL` for ICMP).
    pub fn ports(&self) -> Vec<PortRange> {
        distinct(self.rules.iter().map(|r| r.ports))
    }
}

/// The grants holding `rules` (ours, of one region), sorted by id. A rule several grants share
/// appears in each of them; each grant's times and caller come from its own holder tag.
pub fn grants_in(region: &str, rules: &[Rule]) -> Vec<HeldGrant> {
    let mut grants: BTreeMap<String, HeldGrant> = BTreeMap::new();
    for rule in rules.iter().filter(|r| r.is_managed()) {
        for (id, hold) in holds(rule) {
            let grant = grants.entry(id.clone()).or_insert_with(|| HeldGrant {
                id: id.clone(),
                region: region.to_owned(),
                protocol: rule.protocol.clone(),
                created_at: hold.as_ref().and_then(|h| h.created_at),
                expires_at: hold.as_ref().map(|h| h.expires_at),
                granted_by: hold.as_ref().and_then(|h| h.granted_by.clone()),
                ephemeral: false,
                rules: Vec::new(),
            });
            // Every rule of a grant carries the same hold unless a change of it was cut short
            // (an extension that retagged some rules): the latest expiry is the grant's.
            if let Some(h) = &hold {
                if grant.expires_at.is_some_and(|at| h.expires_at > at) {
                    grant.expires_at = Some(h.expires_at);
                    grant.created_at = h.created_at.or(grant.created_at);
                }
            }
            // Before holds were marked, only the creator's rule-level tag said "ephemeral".
            let creator_ephemeral = rule.grant_id() == Some(id.as_str())
                && rule.tags.get(tags::EPHEMERAL).map(String::as_str) == Some("true");
            grant.ephemeral |= hold.as_ref().is_some_and(|h| h.ephemeral) || creator_ephemeral;
            grant.rules.push(rule.clone());
        }
    }
    grants
        .into_values()
        .map(|mut g| {
            g.rules.sort();
            g
        })
        .collect()
}

/// Each holder of `rule` with its hold, None where a holder tag cannot be read.
fn holds(rule: &Rule) -> Vec<(String, Option<Hold>)> {
    if let Some(holders) = rule.holders() {
        return holders.into_iter().map(|(id, h)| (id, Some(h))).collect();
    }
    let tagged: Vec<(String, Option<Hold>)> = rule
        .tags
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix(tags::HOLDER_PREFIX)?.to_owned(),
                Hold::parse(v),
            ))
        })
        .collect();
    if tagged.is_empty() {
        // A rule from before sharing whose expires-at cannot be read.
        vec![(rule.grant_id().unwrap_or_default().to_owned(), None)]
    } else {
        tagged
    }
}

/// The grants among `rules` (ours, of one region) that `granted_by` made, as its holder tags
/// name it exactly, sorted by id; grants whose hold cannot be read are left out.
pub fn grants_of(region: &str, rules: &[Rule], granted_by: &str) -> Vec<HeldGrant> {
    grants_in(region, rules)
        .into_iter()
        .filter(|g| {
            !g.id.is_empty()
                && g.expires_at.is_some()
                && g.granted_by.as_deref() == Some(granted_by)
        })
        .collect()
}

fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

/// The grants in `region`, from every managed rule there, or only those of `group_ids` when
/// any are given (a grant that also opens other groups then shows only these).
pub async fn list_grants(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<HeldGrant>, AwsError> {
    let rules = managed_rules_in(aws, region, group_ids).await?;
    Ok(grants_in(region, &rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::format_instant;
    use crate::ingress::holders::holder_key;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400 + secs)
    }

    fn hold(expires: u64, ephemeral: bool) -> Hold {
        Hold {
            created_at: Some(at(0)),
            expires_at: at(expires),
            granted_by: Some("arn:aws:iam::123456789012:user/ci".into()),
            ephemeral,
        }
    }

    /// A managed rule created by `creator`, held by `holders`.
    fn rule(id: &str, group: &str, port: i32, creator: &str, holders: &[(&str, Hold)]) -> Rule {
        let mut tags = BTreeMap::from([
            (
                tags::MANAGED_BY.to_owned(),
                tags::MANAGED_BY_VALUE.to_owned(),
            ),
            (tags::GRANT_ID.to_owned(), creator.to_owned()),
            (tags::EXPIRES_AT.to_owned(), format_instant(at(100))),
        ]);
        for (holder, h) in holders {
            tags.insert(holder_key(holder), h.value());
        }
        Rule {
            group_id: group.into(),
            id: id.into(),
            protocol: "tcp".into(),
            ports: PortRange {
                from: port,
                to: port,
            },
            cidr: Some("203.0.113.7/32".parse().expect("cidr")),
            description: None,
            tags,
        }
    }

    #[test]
    fn a_shared_rule_shows_in_each_holder_with_its_own_hold() {
        let rules = [
            rule("sgr-2", "sg-b", 22, "g1", &[("g1", hold(60, false))]),
            rule(
                "sgr-1",
                "sg-a",
                22,
                "g1",
                &[("g1", hold(60, false)), ("g2", hold(90, true))],
            ),
        ];
        let grants = grants_in("us-west-2", &rules);
        let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["g1", "g2"]);
        let (g1, g2) = (&grants[0], &grants[1]);
        assert_eq!(g1.rule_ids(), ["sgr-1", "sgr-2"]);
        assert_eq!(g1.group_ids(), ["sg-a", "sg-b"]);
        assert_eq!((g1.expires_at, g1.ephemeral), (Some(at(60)), false));
        assert_eq!(g2.rule_ids(), ["sgr-1"]);
        assert_eq!((g2.expires_at, g2.ephemeral), (Some(at(90)), true));
        assert!(g1.expired(at(60)) && !g1.expired(at(59)) && !g2.expired(at(60)));
        // An extension cut short: the grant's latest hold counts.
        let partly = [
            rule("sgr-1", "sg-a", 22, "g1", &[("g1", hold(60, false))]),
            rule("sgr-2", "sg-b", 22, "g1", &[("g1", hold(120, false))]),
        ];
        assert_eq!(grants_in("us-west-2", &partly)[0].expires_at, Some(at(120)));
        assert_eq!(g1.ports(), [PortRange { from: 22, to: 22 }]);
        assert_eq!(g1.region, "us-west-2");
    }

    #[test]
    fn older_rules_and_unreadable_holds_are_still_listed() {
        let mut legacy = rule("sgr-1", "sg-a", 22, "old", &[]);
        legacy.tags.insert(tags::EPHEMERAL.into(), "true".into());
        let mut broken = rule("sgr-2", "sg-a", 23, "g3", &[("g3", hold(60, false))]);
        broken.tags.insert(holder_key("g3"), "not a hold".into());
        let mut unmanaged = rule("sgr-3", "sg-a", 24, "x", &[]);
        unmanaged.tags.remove(tags::MANAGED_BY);
        let grants = grants_in("us-west-2", &[legacy, broken, unmanaged]);
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].id, "g3");
        assert_eq!(
            (grants[0].expires_at, grants[0].expired(at(1_000))),
            (None, false)
        );
        assert_eq!(grants[1].id, "old");
        assert_eq!(
            (grants[1].expires_at, grants[1].ephemeral),
            (Some(at(100)), true)
        );
    }

    #[test]
    fn a_grantor_finds_its_grants_on_shared_rules() {
        let by = |who: &str, expires: u64| Hold {
            granted_by: Some(who.to_owned()),
            ..hold(expires, false)
        };
        let rules = [
            rule(
                "sgr-1",
                "sg-a",
                22,
                "g1",
                &[("g1", by("knock:alice", 100)), ("g2", by("knock:bob", 50))],
            ),
            rule("sgr-2", "sg-b", 22, "g1", &[("g1", by("knock:alice", 100))]),
            rule(
                "sgr-3",
                "sg-a",
                23,
                "g3",
                &[("g3", by("knock:alice x", 10))],
            ),
        ];
        let alice = grants_of("us-west-2", &rules, "knock:alice");
        assert_eq!(alice.len(), 1);
        assert_eq!(
            (alice[0].id.as_str(), alice[0].rule_ids()),
            ("g1", vec!["sgr-1".to_owned(), "sgr-2".to_owned()])
        );
        assert!(alice[0].is_live(at(99)) && !alice[0].is_live(at(100)));
        let bob = grants_of("us-west-2", &rules, "knock:bob");
        assert_eq!(bob[0].rule_ids(), ["sgr-1"]);
        assert!(grants_of("us-west-2", &rules, "knock:carol").is_empty());
        let mut foreign = rule("sgr-4", "sg-a", 24, "g4", &[("g4", by("knock:alice", 100))]);
        foreign.tags.remove(tags::MANAGED_BY);
        assert!(grants_of("us-west-2", &[foreign], "knock:alice").is_empty());
    }
}
