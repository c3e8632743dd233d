//! Rule sharing, pure: how several grants hold one security-group rule, and the two decisions
//! that keep it safe without a lock — what releasing grant must revoke ([`plan_release`]) and
//! whether a grant that joined a rule really holds it ([`check_join`]).
//!
//! AWS allows one rule per (group, protocol, ports, CIDR), so two grants that open the same
//! permission (a `create_before_destroy` replacement, two CI runs from one NAT) must share it.
//! Each grant holding a rule tags it `allowlist:holder:<grant-id>` = [`Hold`]; the rule's
//! `allowlist:expires-at` mirrors the latest holder's expiry, and the sweep revokes it only once
//! every holder has expired ([`Rule::expires_at`](super::Rule::expires_at)). Rules from before
//! sharing carry no holder tag: their one holder is `allowlist:grant-id`.
//!
//! EC2 has no conditional write on tags, so joining and leaving follow a flag protocol (Dekker's):
//! - a grant **joining** writes its holder tag, then reads the rule again; if another grant is
//!   releasing it (an `allowlist:releasing:<grant-id>` marker), it waits for the rule to be gone
//!   (and creates it anew) or for the marker to go;
//! - a grant **leaving** writes its releasing marker, then reads the rule again; if another grant
//!   still holds it (live, and not releasing too) it only removes its own tags, else it revokes.
//!
//! Each side writes before it reads, so at least one sees the other: a leaver never revokes a rule
//! that a joiner believes it holds. A marker older than [`RELEASE_STALE`] is left from a crash and
//! ignored (only a leaver stalled that long between its read and its revoke could still cut a
//! joiner off).

use super::model::{tags, Rule};
use crate::clock::{format_instant, parse_instant};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// A releasing marker this old was left by a process that died mid-release; joiners ignore it.
pub const RELEASE_STALE: Duration = Duration::from_secs(120);

/// The tag naming `grant_id` as a holder of a rule.
pub fn holder_key(grant_id: &str) -> String {
    format!("{}{grant_id}", tags::HOLDER_PREFIX)
}

/// The marker of `grant_id` releasing a rule.
pub fn releasing_key(grant_id: &str) -> String {
    format!("{}{grant_id}", tags::RELEASING_PREFIX)
}

/// One grant's hold on a rule: the value of its holder tag,
/// `<created-at>/<expires-at> <granted-by>` (an ISO 8601 interval, a space, the caller ARN), and
/// ` ephemeral` after it for a grant made for one Terraform run. (The rule-level
/// `allowlist:ephemeral` tag only says what its creator was; a shared rule's holders differ.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub created_at: Option<SystemTime>,
    pub expires_at: SystemTime,
    pub granted_by: Option<String>,
    pub ephemeral: bool,
}

/// The word after the caller ARN marking an ephemeral grant's hold.
const EPHEMERAL_MARK: &str = "ephemeral";

/// Longest tag value AWS accepts.
const MAX_TAG_VALUE: usize = 256;

impl Hold {
    /// The holder tag's value; a caller ARN too long for AWS's 256 characters is cut short (the
    /// creator's full ARN is also in `allowlist:granted-by`), never the ephemeral mark.
    pub fn value(&self) -> String {
        let created = self.created_at.map(format_instant).unwrap_or_default();
        let mut value = format!("{created}/{}", format_instant(self.expires_at));
        let mark = if self.ephemeral {
            format!(" {EPHEMERAL_MARK}")
        } else {
            String::new()
        };
        if self.granted_by.is_some() || self.ephemeral {
            value.push(' ');
            value.push_str(self.granted_by.as_deref().unwrap_or_default());
        }
        let room = MAX_TAG_VALUE - mark.len();
        if value.len() > room {
            let mut end = room;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
        }
        value.push_str(&mark);
        value
    }

    /// Reads a holder tag's value; None when the expiry cannot be read. Everything between the
    /// interval and a trailing ephemeral mark is the caller (an ARN has no spaces; other front
    /// doors' principals must not either, or one could read as another's).
    pub fn parse(value: &str) -> Option<Hold> {
        let (interval, rest) = value.split_once(' ').unwrap_or((value, ""));
        let (by, ephemeral) = match rest.strip_suffix(EPHEMERAL_MARK) {
            Some(by) if by.is_empty() || by.ends_with(' ') => (by.trim_end_matches(' '), true),
            _ => (rest, false),
        };
        let by = Some(by).filter(|b| !b.is_empty()).map(str::to_owned);
        let (created, expires) = interval.split_once('/')?;
        Some(Hold {
            created_at: parse_instant(created),
            expires_at: parse_instant(expires)?,
            granted_by: by,
            ephemeral,
        })
    }
}

impl Rule {
    /// The grants holding this rule. A rule from before sharing (no holder tag) is held by its
    /// `allowlist:grant-id` (or, without one, by no grant in particular) until its
    /// `allowlist:expires-at`. None when a holder's expiry cannot
    /// be read: nobody can tell when such a rule stops being wanted.
    pub fn holders(&self) -> Option<BTreeMap<String, Hold>> {
        let mut holders = BTreeMap::new();
        for (key, value) in &self.tags {
            if let Some(id) = key.strip_prefix(tags::HOLDER_PREFIX) {
                holders.insert(id.to_owned(), Hold::parse(value)?);
            }
        }
        if holders.is_empty() {
            let hold = Hold {
                created_at: self
                    .tags
                    .get(tags::CREATED_AT)
                    .and_then(|s| parse_instant(s)),
                expires_at: parse_instant(self.tags.get(tags::EXPIRES_AT)?)?,
                granted_by: self.tags.get(tags::GRANTED_BY).cloned(),
                ephemeral: self.tags.get(tags::EPHEMERAL).map(String::as_str) == Some("true"),
            };
            // A rule tagged by hand without a grant id still expires by its tag.
            holders.insert(self.grant_id().unwrap_or_default().to_owned(), hold);
        }
        Some(holders)
    }

    /// `grant_id`'s hold on this rule, if it holds it.
    pub fn hold_of(&self, grant_id: &str) -> Option<Hold> {
        match self.tags.get(&holder_key(grant_id)) {
            Some(value) => Hold::parse(value),
            None => self.holders()?.remove(grant_id),
        }
    }

    /// Whether `grant_id` holds this rule.
    pub fn held_by(&self, grant_id: &str) -> bool {
        self.is_managed()
            && (self.tags.contains_key(&holder_key(grant_id))
                || (!self.has_holder_tags() && self.grant_id() == Some(grant_id)))
    }

    fn has_holder_tags(&self) -> bool {
        self.tags.keys().any(|k| k.starts_with(tags::HOLDER_PREFIX))
    }

    /// The grants releasing this rule, and since when (a marker that does not parse counts as
    /// stale: the Unix epoch).
    pub fn releasing(&self) -> BTreeMap<String, SystemTime> {
        self.tags
            .iter()
            .filter_map(|(k, v)| {
                let id = k.strip_prefix(tags::RELEASING_PREFIX)?;
                Some((
                    id.to_owned(),
                    parse_instant(v).unwrap_or(SystemTime::UNIX_EPOCH),
                ))
            })
            .collect()
    }

    /// The latest expiry among the holders other than `grant_id` that still want the rule at
    /// `now`: not expired, not releasing it. None when there is no such holder.
    pub fn wanted_by_others(&self, grant_id: &str, now: SystemTime) -> Option<SystemTime> {
        let releasing = self.releasing();
        self.holders()?
            .into_iter()
            .filter(|(id, hold)| {
                id != grant_id && hold.expires_at > now && !releasing.contains_key(id)
            })
            .map(|(_, hold)| hold.expires_at)
            .max()
    }
}

/// What a grant leaving its rules must do, decided from the rules as read back after it marked
/// them as releasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleasePlan {
    /// Rules nobody else wants: revoked.
    pub revoke: Vec<Rule>,
    /// Rules another grant still holds: the leaver removes only its own tags and sets the rule's
    /// `expires-at` to the latest remaining holder's.
    pub leave: Vec<(Rule, SystemTime)>,
}

/// Decides, for `grant_id` leaving `rules` at `now`, which rules to revoke and which to leave to
/// their other holders. A rule whose holders cannot be read is left alone only if it is not the
/// leaver's own legacy rule: we never revoke what we cannot tell is unwanted... except our own.
pub fn plan_release(grant_id: &str, rules: &[Rule], now: SystemTime) -> ReleasePlan {
    let mut plan = ReleasePlan::default();
    for rule in rules {
        match rule.wanted_by_others(grant_id, now) {
            Some(until) => plan.leave.push((rule.clone(), until)),
            None if rule.holders().is_none() && !unreadable_is_ours(rule, grant_id) => {
                // Another holder's tag cannot be read: leave the rule to that holder and the
                // sweep's report of malformed rules, only removing our own tags.
                let until = rule.expires_at_tag().unwrap_or(now);
                plan.leave.push((rule.clone(), until));
            }
            None => plan.revoke.push(rule.clone()),
        }
    }
    plan
}

/// Whether every unreadable holder tag of `rule` is `grant_id`'s own.
fn unreadable_is_ours(rule: &Rule, grant_id: &str) -> bool {
    rule.tags
        .iter()
        .filter(|(k, _)| k.starts_with(tags::HOLDER_PREFIX))
        .filter(|(_, v)| Hold::parse(v).is_none())
        .all(|(k, _)| *k == holder_key(grant_id))
}

/// Whether a grant that joined a rule holds it, as read back after its holder tag was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinCheck {
    /// The rule is there with our holder tag and nobody is releasing it.
    Held,
    /// The rule is gone (revoked by its last holder or the sweep), or our tag is: join again.
    Lost,
    /// Another grant is releasing the rule and may revoke it any moment: wait and read again.
    Releasing { grant_id: String },
}

/// Checks `grant_id`'s hold on a joined rule, `after` being the rule as read back (None: gone).
pub fn check_join(grant_id: &str, after: Option<&Rule>, now: SystemTime) -> JoinCheck {
    let Some(rule) = after else {
        return JoinCheck::Lost;
    };
    if !rule.held_by(grant_id) {
        return JoinCheck::Lost;
    }
    let fresh = |since: &SystemTime| now.duration_since(*since).unwrap_or_default() < RELEASE_STALE;
    match rule
        .releasing()
        .into_iter()
        .find(|(id, since)| id != grant_id && fresh(since))
    {
        Some((other, _)) => JoinCheck::Releasing { grant_id: other },
        None => JoinCheck::Held,
    }
}

/// The tags that record `grant_id`'s `hold` on `rule`: its holder tag, and the rule's
/// `expires-at` moved to the latest of the hold and the other holders that still want it.
pub fn hold_tags(
    rule: &Rule,
    grant_id: &str,
    hold: &Hold,
    now: SystemTime,
) -> Vec<(String, String)> {
    let mirror = rule
        .wanted_by_others(grant_id, now)
        .map_or(hold.expires_at, |other| other.max(hold.expires_at));
    vec![
        (holder_key(grant_id), hold.value()),
        (tags::EXPIRES_AT.to_owned(), format_instant(mirror)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::PortRange;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400 + secs)
    }

    fn hold(expires: u64) -> Hold {
        Hold {
            created_at: Some(at(0)),
            expires_at: at(expires),
            granted_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            ephemeral: false,
        }
    }

    /// A rule created by grant `a`, then held by `holders` (id, expiry) and released by
    /// `releasing` (id, since).
    fn rule(holders: &[(&str, u64)], releasing: &[(&str, u64)]) -> Rule {
        let mut tags = BTreeMap::from([
            (
                tags::MANAGED_BY.to_owned(),
                tags::MANAGED_BY_VALUE.to_owned(),
            ),
            (tags::GRANT_ID.to_owned(), "a".to_owned()),
            (tags::EXPIRES_AT.to_owned(), format_instant(at(100))),
        ]);
        for (id, expires) in holders {
            tags.insert(holder_key(id), hold(*expires).value());
        }
        for (id, since) in releasing {
            tags.insert(releasing_key(id), format_instant(at(*since)));
        }
        Rule {
            group_id: "sg-0123abcd".into(),
            id: "sgr-1".into(),
            protocol: "tcp".into(),
            ports: PortRange::single(22),
            cidr: Some("203.0.113.7/32".parse().expect("cidr")),
            description: None,
            tags,
        }
    }

    #[test]
    fn holds_round_trip_and_cut_long_arns() {
        let h = hold(60);
        assert_eq!(
            h.value(),
            "2025-11-21T12:00:00Z/2025-11-21T12:01:00Z arn:aws:iam::123456789012:user/alice"
        );
        assert_eq!(Hold::parse(&h.value()), Some(h));
        let long = Hold {
            granted_by: Some(format!(
                "arn:aws:iam::123456789012:user/{}",
                "x".repeat(300)
            )),
            ..hold(60)
        };
        assert_eq!(long.value().len(), 256);
        assert_eq!(
            Hold::parse(&long.value()).map(|h| h.expires_at),
            Some(at(60))
        );
        assert_eq!(
            Hold::parse("/2025-11-21T12:01:00Z").map(|h| h.created_at),
            Some(None)
        );
        assert_eq!(Hold::parse("2025-11-21T12:01:00Z"), None);
        assert_eq!(Hold::parse("x/y z"), None);
    }

    #[test]
    fn an_ephemeral_hold_keeps_its_mark_whatever_the_arn() {
        let e = Hold {
            ephemeral: true,
            ..hold(60)
        };
        assert_eq!(
            e.value(),
            "2025-11-21T12:00:00Z/2025-11-21T12:01:00Z arn:aws:iam::123456789012:user/alice ephemeral"
        );
        assert_eq!(Hold::parse(&e.value()), Some(e.clone()));
        let long = Hold {
            granted_by: Some(format!("arn:aws:iam::1:user/{}", "x".repeat(300))),
            ..e
        };
        assert_eq!(long.value().len(), 256);
        assert!(long.value().ends_with("x ephemeral"));
        assert!(Hold::parse(&long.value()).is_some_and(|h| h.ephemeral));
        let anonymous = Hold {
            granted_by: None,
            ..hold(60)
        };
        assert_eq!(Hold::parse(&anonymous.value()), Some(anonymous.clone()));
        let anonymous = Hold {
            ephemeral: true,
            ..anonymous
        };
        assert_eq!(Hold::parse(&anonymous.value()), Some(anonymous));
        // A caller named like the mark is a caller, not a mark.
        let odd = Hold::parse("/2025-11-21T12:01:00Z xephemeral");
        assert_eq!(
            odd.map(|h| (h.granted_by, h.ephemeral)),
            Some((Some("xephemeral".into()), false))
        );
    }

    #[test]
    fn a_rule_from_before_sharing_is_held_by_its_grant() {
        let legacy = rule(&[], &[]);
        assert!(legacy.held_by("a"));
        assert!(!legacy.held_by("b"));
        assert_eq!(legacy.hold_of("a").map(|h| h.expires_at), Some(at(100)));
        assert_eq!(legacy.expires_at(), Some(at(100)));
        // Once it has holder tags, grant-id alone no longer holds it.
        let shared = rule(&[("b", 50)], &[]);
        assert!(!shared.held_by("a") && shared.held_by("b"));
    }

    #[test]
    fn a_shared_rule_expires_with_its_last_holder() {
        let r = rule(&[("a", 100), ("b", 300)], &[]);
        assert_eq!(r.expires_at(), Some(at(300)));
        assert_eq!(r.wanted_by_others("a", at(0)), Some(at(300)));
        assert_eq!(r.wanted_by_others("b", at(0)), Some(at(100)));
        assert_eq!(r.wanted_by_others("b", at(100)), None, "a expired at 100");
        let mut broken = r.clone();
        broken.tags.insert(holder_key("c"), "soon".into());
        assert_eq!(
            broken.expires_at(),
            None,
            "never swept: one holder's expiry is unreadable"
        );
    }

    #[test]
    fn the_last_live_holder_revokes_the_others_leave() {
        // b leaves while a still wants the rule: only b's tags go, expires-at becomes a's.
        let plan = plan_release("b", &[rule(&[("a", 100), ("b", 300)], &[("b", 1)])], at(1));
        assert!(plan.revoke.is_empty());
        assert_eq!(plan.leave.len(), 1);
        assert_eq!(plan.leave[0].1, at(100));
        // a expired: b is the last one who wanted it.
        let plan = plan_release(
            "b",
            &[rule(&[("a", 100), ("b", 300)], &[("b", 1)])],
            at(100),
        );
        assert_eq!(plan.revoke.len(), 1);
        // a is releasing too: whoever reads second sees both markers and revokes.
        let both = rule(&[("a", 100), ("b", 300)], &[("a", 1), ("b", 1)]);
        assert_eq!(
            plan_release("b", std::slice::from_ref(&both), at(1))
                .revoke
                .len(),
            1
        );
        assert_eq!(plan_release("a", &[both], at(1)).revoke.len(), 1);
        // Someone else's unreadable hold: left alone; our own: revoked.
        let mut theirs = rule(&[("b", 300)], &[("b", 1)]);
        theirs.tags.insert(holder_key("c"), "soon".into());
        assert!(plan_release("b", &[theirs], at(1)).revoke.is_empty());
        let mut ours = rule(&[("b", 300)], &[("b", 1)]);
        ours.tags.insert(holder_key("b"), "soon".into());
        assert_eq!(plan_release("b", &[ours], at(1)).revoke.len(), 1);
    }

    #[test]
    fn a_joiner_waits_for_a_fresh_release_and_ignores_a_stale_one() {
        let held = rule(&[("a", 100), ("b", 300)], &[]);
        assert_eq!(check_join("b", Some(&held), at(1)), JoinCheck::Held);
        assert_eq!(check_join("b", None, at(1)), JoinCheck::Lost);
        assert_eq!(check_join("c", Some(&held), at(1)), JoinCheck::Lost);
        let releasing = rule(&[("a", 100), ("b", 300)], &[("a", 1)]);
        assert_eq!(
            check_join("b", Some(&releasing), at(2)),
            JoinCheck::Releasing {
                grant_id: "a".into()
            }
        );
        let stale = at(1) + RELEASE_STALE;
        assert_eq!(check_join("b", Some(&releasing), stale), JoinCheck::Held);
        // Our own marker (we are leaving it ourselves) is not a reason to wait.
        let own = rule(&[("b", 300)], &[("b", 1)]);
        assert_eq!(check_join("b", Some(&own), at(2)), JoinCheck::Held);
    }

    /// The protocol's promise, over every interleaving of one joiner's (write, read) and one
    /// leaver's (write, read): never both "the joiner holds it" and "the leaver revokes it".
    #[test]
    fn no_interleaving_lets_a_leaver_revoke_a_held_rule() {
        // Steps: 0 = joiner writes its holder tag, 1 = joiner reads, 2 = leaver writes its
        // marker, 3 = leaver reads. Each side's write comes before its read.
        let orders: Vec<[usize; 4]> = vec![
            [0, 1, 2, 3],
            [0, 2, 1, 3],
            [0, 2, 3, 1],
            [2, 0, 1, 3],
            [2, 0, 3, 1],
            [2, 3, 0, 1],
        ];
        for order in orders {
            let mut tags_now = rule(&[("a", 100)], &[]);
            let (mut joiner_saw, mut leaver_saw) = (None, None);
            for step in order {
                match step {
                    0 => {
                        for (k, v) in hold_tags(&tags_now.clone(), "b", &hold(300), at(1)) {
                            tags_now.tags.insert(k, v);
                        }
                    }
                    1 => joiner_saw = Some(tags_now.clone()),
                    2 => {
                        tags_now
                            .tags
                            .insert(releasing_key("a"), format_instant(at(1)));
                    }
                    _ => leaver_saw = Some(tags_now.clone()),
                }
            }
            let joined = check_join("b", joiner_saw.as_ref(), at(1)) == JoinCheck::Held;
            let revoked = !plan_release("a", &leaver_saw.into_iter().collect::<Vec<_>>(), at(1))
                .revoke
                .is_empty();
            assert!(!(joined && revoked), "order {order:?}");
        }
    }
}
