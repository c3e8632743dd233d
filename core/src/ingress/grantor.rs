//! Pure: the grants one grantor holds among a set of rules, read from the holder tags, for a front
//! door that knows its callers by their `granted_by` (knock's `knock:<principal>`) rather than by
//! a grant id it stored somewhere.

use super::holders::Hold;
use super::model::Rule;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One grant of a grantor, as its rules' holder tags describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantorGrant {
    pub grant_id: String,
    /// The grant's hold as read from the first of its rules (every rule of a grant carries the
    /// same holder tag value, unless a change was interrupted: the latest expiry is kept).
    pub hold: Hold,
    /// The rules the grant holds, sorted.
    pub rules: Vec<Rule>,
}

impl GrantorGrant {
    /// Whether the grant still wants its rules at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.hold.expires_at > now
    }
}

/// The grants among `rules` whose holder tag names `granted_by` exactly, sorted by grant id.
/// Rules not ours, and rules whose holders cannot be read, are skipped.
pub fn grants_of(rules: &[Rule], granted_by: &str) -> Vec<GrantorGrant> {
    let mut grants: BTreeMap<String, GrantorGrant> = BTreeMap::new();
    for rule in rules.iter().filter(|r| r.is_managed()) {
        let Some(holders) = rule.holders() else {
            continue;
        };
        for (grant_id, hold) in holders {
            if grant_id.is_empty() || hold.granted_by.as_deref() != Some(granted_by) {
                continue;
            }
            let entry = grants
                .entry(grant_id.clone())
                .or_insert_with(|| GrantorGrant {
                    grant_id,
                    hold: hold.clone(),
                    rules: Vec::new(),
                });
            if hold.expires_at > entry.hold.expires_at {
                entry.hold = hold;
            }
            entry.rules.push(rule.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::holders::holder_key;
    use crate::ingress::{tags, PortRange};
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400 + secs)
    }

    fn rule(id: &str, holders: &[(&str, u64, &str)]) -> Rule {
        let mut tags = BTreeMap::from([(
            tags::MANAGED_BY.to_owned(),
            tags::MANAGED_BY_VALUE.to_owned(),
        )]);
        for (grant, expires, by) in holders {
            let hold = Hold {
                created_at: Some(at(0)),
                expires_at: at(*expires),
                granted_by: Some((*by).to_owned()),
            };
            tags.insert(holder_key(grant), hold.value());
        }
        Rule {
            group_id: "sg-0123abcd".into(),
            id: id.into(),
            protocol: "tcp".into(),
            ports: PortRange::single(22),
            cidr: Some("203.0.113.7/32".parse().expect("cidr")),
            description: None,
            tags,
        }
    }

    #[test]
    fn finds_a_grantors_grants_on_shared_rules() {
        let rules = [
            rule(
                "sgr-1",
                &[("g1", 100, "knock:alice"), ("g2", 50, "knock:bob")],
            ),
            rule("sgr-2", &[("g1", 100, "knock:alice")]),
            rule("sgr-3", &[("g3", 10, "knock:alice x")]),
        ];
        let alice = grants_of(&rules, "knock:alice");
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0].grant_id, "g1");
        assert_eq!(alice[0].rules.len(), 2);
        assert!(alice[0].is_live(at(99)) && !alice[0].is_live(at(100)));
        let bob = grants_of(&rules, "knock:bob");
        assert_eq!(bob[0].rules[0].id, "sgr-1");
        assert!(grants_of(&rules, "knock:carol").is_empty());
        let mut foreign = rule("sgr-4", &[("g4", 100, "knock:alice")]);
        foreign.tags.remove(tags::MANAGED_BY);
        assert!(grants_of(&[foreign], "knock:alice").is_empty());
    }
}
