//! The pure model of a temporary ingress grant: the tag contract every front door writes and the
//! sweep reads ([`tags`]), what a grant opens ([`Grant`], [`Permission`], [`Protocol`],
//! [`PortRange`]), a rule as AWS reports it ([`Rule`]), the checks of user input that AWS would
//! otherwise refuse late, and the decision of what authorizing a grant must do given the rules a
//! group already has ([`plan_authorize`]). No I/O here: [`super::ec2`] talks to AWS.

use super::holders::{holder_key, Hold};
use crate::clock::{format_instant, parse_instant};
use crate::error::AwsError;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::SystemTime;

/// The tag names every rule of a grant carries.
pub mod tags {
    /// Marks a rule as ours; the sweep only ever touches rules with this tag.
    pub const MANAGED_BY: &str = "allowlist:managed-by";
    pub const MANAGED_BY_VALUE: &str = "allowlist";
    /// The grant the rule belongs to (the Terraform resource id).
    pub const GRANT_ID: &str = "allowlist:grant-id";
    /// When the rule stops being wanted, RFC 3339 UTC.
    pub const EXPIRES_AT: &str = "allowlist:expires-at";
    /// `true` on rules made by an ephemeral grant (one Terraform run).
    pub const EPHEMERAL: &str = "allowlist:ephemeral";
    /// When the grant was made, RFC 3339 UTC.
    pub const CREATED_AT: &str = "allowlist:created-at";
    /// Who made the grant (caller ARN).
    pub const GRANTED_BY: &str = "allowlist:granted-by";
    /// One per grant holding the rule (see [`super::super::holders`]):
    /// `allowlist:holder:<grant-id>` = `<created-at>/<expires-at> <granted-by>`.
    pub const HOLDER_PREFIX: &str = "allowlist:holder:";
    /// Set for a moment by a grant releasing the rule: `allowlist:releasing:<grant-id>` = when.
    pub const RELEASING_PREFIX: &str = "allowlist:releasing:";
    /// Tag keys in our namespace, which user tags may not use.
    pub const PREFIX: &str = "allowlist:";
    /// AWS reserves this prefix.
    pub const AWS_PREFIX: &str = "aws:";
}

/// An IP protocol a grant may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["tcp", "udp", "icmp", "icmpv6"];

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" | "6" => Some(Protocol::Tcp),
            "udp" | "17" => Some(Protocol::Udp),
            "icmp" | "1" => Some(Protocol::Icmp),
            "icmpv6" | "58" => Some(Protocol::Icmpv6),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Icmpv6 => "icmpv6",
        }
    }

    /// Whether rules of this protocol have ports (ICMP has types and codes instead).
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive port range; for ICMP both ends are -1 (all types and codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub from: i32,
    pub to: i32,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { from: -1, to: -1 };

    pub fn single(port: u16) -> Self {
        PortRange {
            from: i32::from(port),
            to: i32::from(port),
        }
    }

    /// Parses `"8000-8100"` or `"443"`: ports 0-65535, from ≤ to.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (from, to) = s.split_once('-').unwrap_or((s, s));
        let port = |p: &str| -> Result<i32, String> {
            let n: u32 = p.trim().parse().map_err(|_| {
                format!("{s:?} is not a port range; write it as \"FROM-TO\", e.g. \"8000-8100\"")
            })?;
            if n > 65535 {
                return Err(format!("port {n} is out of range; ports are 0-65535"));
            }
            Ok(n as i32)
        };
        let (from, to) = (port(from)?, port(to)?);
        if from > to {
            return Err(format!(
                "{s:?} starts after it ends; write the lower port first"
            ));
        }
        Ok(PortRange { from, to })
    }
}

/// One permission: a protocol, a port range and one CIDR (one AWS rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub protocol: Protocol,
    pub ports: PortRange,
    pub cidr: IpNet,
}

/// Checks a CIDR for a grant: canonical (no host bits), and not broader than the limits unless
/// `allow_world`. Returns the parsed network or a message suggesting the fix.
pub fn check_cidr(s: &str, allow_world: bool) -> Result<IpNet, String> {
    let net: IpNet = match s.parse() {
        Ok(net) => net,
        Err(_) => {
            return Err(match s.parse::<std::net::IpAddr>() {
                Ok(ip) => format!(
                    "{s:?} has no prefix length; write \"{}\" for this address alone",
                    IpNet::from(ip)
                ),
                Err(_) => format!(
                    "{s:?} is not a CIDR block such as \"203.0.113.7/32\" or \"2001:db8::/64\""
                ),
            })
        }
    };
    if net != net.trunc() {
        return Err(format!(
            "{s:?} has host bits set; the network it names is \"{}\" (or use /{} for the single address)",
            net.trunc(),
            net.max_prefix_len()
        ));
    }
    if !allow_world && net.prefix_len() < min_prefix(&net) {
        return Err(format!(
            "{s:?} opens access to {}; grants are limited to /{} (IPv4) and /{} (IPv6) or narrower unless allow_world = true",
            if net.prefix_len() == 0 { "every address".to_owned() } else { format!("2^{} addresses", net.max_prefix_len() - net.prefix_len()) },
            MIN_PREFIX_V4,
            MIN_PREFIX_V6
        ));
    }
    Ok(net)
}

/// The broadest prefixes a grant may open without `allow_world`.
pub const MIN_PREFIX_V4: u8 = 16;
pub const MIN_PREFIX_V6: u8 = 48;

fn min_prefix(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => MIN_PREFIX_V4,
        IpNet::V6(_) => MIN_PREFIX_V6,
    }
}

/// Checks a security group id: `sg-` followed by 8 or 17 lower-case hex digits.
pub fn check_group_id(s: &str) -> Result<(), String> {
    let ok = s.strip_prefix("sg-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a security group id (sg- followed by 8 or 17 hex digits)"
        ))
    }
}

/// Checks a user tag key: not in our or AWS's namespace, not empty.
pub fn check_user_tag_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("tag keys cannot be empty".into());
    }
    if key.starts_with(tags::PREFIX) || key.starts_with(tags::AWS_PREFIX) {
        return Err(format!(
            "{key:?} is reserved: keys starting with \"{}\" or \"{}\" are not user tags",
            tags::PREFIX,
            tags::AWS_PREFIX
        ));
    }
    Ok(())
}

/// A new random grant id (`grant-` and 16 hex digits).
pub fn new_grant_id() -> String {
    let mut bytes = [0u8; 8];
    // getrandom only fails where the OS has no random source at all.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (nanos as u64 ^ u64::from(std::process::id())).to_be_bytes();
    }
    format!("grant-{}", hex::encode(bytes))
}

/// Everything that defines a grant on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub region: String,
    pub group_ids: Vec<String>,
    pub protocol: Protocol,
    pub ports: Vec<PortRange>,
    pub cidrs: Vec<IpNet>,
    pub description: Option<String>,
    pub user_tags: BTreeMap<String, String>,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    pub granted_by: String,
    /// Made for one Terraform run (the ephemeral resource): its rules say so in a tag.
    pub ephemeral: bool,
}

impl Grant {
    /// Every (protocol, ports, CIDR) the grant opens in each group, sorted.
    pub fn permissions(&self) -> Vec<Permission> {
        let ports = if self.protocol.has_ports() {
            self.ports.clone()
        } else {
            vec![PortRange::ALL]
        };
        let set: BTreeSet<Permission> = ports
            .iter()
            .flat_map(|p| self.cidrs.iter().map(move |c| (p, c)))
            .map(|(p, c)| Permission {
                protocol: self.protocol,
                ports: *p,
                cidr: *c,
            })
            .collect();
        set.into_iter().collect()
    }

    /// The grant's hold on each of its rules (the value of its holder tag).
    pub fn hold(&self) -> Hold {
        Hold {
            created_at: Some(self.created_at),
            expires_at: self.expires_at,
            granted_by: Some(self.granted_by.clone()),
            ephemeral: self.ephemeral,
        }
    }

    /// The tags every rule the grant creates carries: ours (its holder tag included), then the
    /// user's.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                tags::MANAGED_BY.to_owned(),
                tags::MANAGED_BY_VALUE.to_owned(),
            ),
            (tags::GRANT_ID.to_owned(), self.id.clone()),
            (tags::EXPIRES_AT.to_owned(), format_instant(self.expires_at)),
            (tags::CREATED_AT.to_owned(), format_instant(self.created_at)),
            (tags::GRANTED_BY.to_owned(), self.granted_by.clone()),
            (holder_key(&self.id), self.hold().value()),
        ];
        if self.ephemeral {
            out.push((tags::EPHEMERAL.to_owned(), "true".to_owned()));
        }
        out.extend(self.user_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// One ingress rule as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub group_id: String,
    pub id: String,
    pub protocol: String,
    pub ports: PortRange,
    /// None for rules that reference a prefix list or another group (never ours).
    pub cidr: Option<IpNet>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Rule {
    /// Whether the rule carries our managed-by tag.
    pub fn is_managed(&self) -> bool {
        self.tags.get(tags::MANAGED_BY).map(String::as_str) == Some(tags::MANAGED_BY_VALUE)
    }

    pub fn grant_id(&self) -> Option<&str> {
        self.tags.get(tags::GRANT_ID).map(String::as_str)
    }

    /// When the rule stops being wanted: the latest expiry of its holders (see
    /// [`Rule::holders`]). None when it is not ours or an expiry cannot be read.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.holders()?.values().map(|h| h.expires_at).max()
    }

    /// The rule's `allowlist:expires-at` tag as written (which mirrors [`Rule::expires_at`]).
    pub fn expires_at_tag(&self) -> Option<SystemTime> {
        self.tags
            .get(tags::EXPIRES_AT)
            .and_then(|s| parse_instant(s))
    }

    /// Whether the rule opens exactly `perm`.
    pub fn opens(&self, perm: &Permission) -> bool {
        Protocol::parse(&self.protocol) == Some(perm.protocol)
            && self.ports == perm.ports
            && self.cidr == Some(perm.cidr)
    }

    /// The permission this rule opens, if it is one a grant could hold.
    pub fn permission(&self) -> Option<Permission> {
        Some(Permission {
            protocol: Protocol::parse(&self.protocol)?,
            ports: self.ports,
            cidr: self.cidr?,
        })
    }

    /// The user tags: everything outside our namespace and AWS's.
    pub fn user_tags(&self) -> BTreeMap<String, String> {
        self.tags
            .iter()
            .filter(|(k, _)| !k.starts_with(tags::PREFIX) && !k.starts_with(tags::AWS_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Why a grant could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// An AWS call failed; for authorize, everything this call added was revoked again.
    #[error("{source}")]
    Aws {
        #[source]
        source: AwsError,
        /// The security group the failed call was about, if any.
        group_id: Option<String>,
    },
    /// The security groups do not exist in the region.
    #[error("security groups not found in {region}: {}", .group_ids.join(", "))]
    GroupsNotFound {
        region: String,
        group_ids: Vec<String>,
    },
    /// An identical rule exists that is not ours; we will not take it over.
    #[error("{group_id} already has an identical rule {rule_id} that allowlist does not manage; remove it or leave that permission out")]
    ForeignRule { group_id: String, rule_id: String },
    /// An identical rule of ours whose expiry cannot be read: nobody can tell when it stops
    /// being wanted, so we neither share it nor take it over.
    #[error("{group_id} already has this permission as rule {rule_id}, tagged by allowlist but with an expiry that cannot be read; fix its allowlist:expires-at / allowlist:holder:* tags or remove it")]
    Undated { group_id: String, rule_id: String },
    /// Another grant kept releasing a rule this grant joined, or the rules kept changing under
    /// this call; nothing of this call was left behind.
    #[error("{group_id} rule {rule_id} {reason}; try again")]
    Contended {
        group_id: String,
        rule_id: String,
        reason: String,
    },
    /// Authorize failed and rolling back also failed: these rules were left behind (they carry
    /// expiry tags, so the sweep removes them).
    #[error("{cause}; rolling back also failed, leaving rules {} (they expire by tag and will be swept): {rollback}", .left_behind.join(", "))]
    RollbackFailed {
        cause: Box<GrantError>,
        rollback: Box<GrantError>,
        left_behind: Vec<String>,
    },
}

impl GrantError {
    pub(crate) fn aws(source: AwsError, group_id: Option<&str>) -> Self {
        GrantError::Aws {
            source,
            group_id: group_id.map(str::to_owned),
        }
    }
}

/// Longest rule description AWS accepts.
pub const MAX_DESCRIPTION: usize = 255;

/// Checks a rule description against AWS's alphabet and length, so it fails at plan, not apply.
pub fn check_description(s: &str) -> Result<(), String> {
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

/// What authorizing a grant must do, decided before anything changes so that a refusal leaves
/// nothing behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizePlan {
    /// Rules this very grant already holds (a retried create).
    pub keep: Vec<Rule>,
    /// Identical rules another grant still wants: shared, by adding this grant's holder tag (see
    /// [`super::holders`]).
    pub join: Vec<Rule>,
    /// Identical rules of expired grants: revoked, then created again under this grant (never
    /// re-tagged in place: a sweep that already listed one would revoke the new grant's access).
    pub replace: Vec<Rule>,
    /// Per security group, in the grant's order, the permissions to create.
    pub create: Vec<(String, Vec<Permission>)>,
}

/// Decides what [`super::authorize`] does with the groups' `existing` rules at `now`: keep the
/// rules this grant holds, join identical rules of grants that have not expired, replace those of
/// expired grants, and refuse an identical rule that is not ours ([`GrantError::ForeignRule`]) or
/// whose expiry cannot be read ([`GrantError::Undated`]). A rule whose latest holder's expiry is
/// at or before `now` has expired.
pub fn plan_authorize(
    grant: &Grant,
    existing: &[Rule],
    now: SystemTime,
) -> Result<AuthorizePlan, GrantError> {
    let permissions = grant.permissions();
    let mut plan = AuthorizePlan::default();
    for group in &grant.group_ids {
        let mut create = Vec::new();
        for perm in &permissions {
            let same = existing
                .iter()
                .find(|r| &r.group_id == group && r.opens(perm));
            let Some(rule) = same else {
                create.push(perm.clone());
                continue;
            };
            if !rule.is_managed() {
                return Err(GrantError::ForeignRule {
                    group_id: group.clone(),
                    rule_id: rule.id.clone(),
                });
            }
            if rule.held_by(&grant.id) {
                plan.keep.push(rule.clone());
                continue;
            }
            match rule.expires_at() {
                None => {
                    return Err(GrantError::Undated {
                        group_id: group.clone(),
                        rule_id: rule.id.clone(),
                    })
                }
                Some(expiry) if expiry > now => plan.join.push(rule.clone()),
                Some(_) => {
                    plan.replace.push(rule.clone());
                    create.push(perm.clone());
                }
            }
        }
        plan.create.push((group.clone(), create));
    }
    Ok(plan)
}

/// `rules` by security group (one revoke call each), groups in order.
pub(crate) fn by_group(rules: &[Rule]) -> BTreeMap<&str, Vec<&Rule>> {
    let mut groups: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
    for rule in rules {
        groups.entry(&rule.group_id).or_default().push(rule);
    }
    groups
}

pub(crate) fn rule_ids(rules: &[&Rule]) -> Vec<String> {
    rules.iter().map(|r| r.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn port_ranges_parse_and_refuse() {
        assert_eq!(
            PortRange::parse("8000-8100"),
            Ok(PortRange {
                from: 8000,
                to: 8100
            })
        );
        assert_eq!(PortRange::parse("443"), Ok(PortRange::single(443)));
        assert!(PortRange::parse("0-65535").is_ok());
        assert!(PortRange::parse("70000").unwrap_err().contains("0-65535"));
        assert!(PortRange::parse("100-10")
            .unwrap_err()
            .contains("lower port first"));
        assert!(PortRange::parse("ssh").is_err());
        assert!(PortRange::parse("-1").is_err());
    }

    #[test]
    fn cidrs_must_be_canonical_and_narrow() {
        assert_eq!(
            check_cidr("203.0.113.7/32", false).map(|n| n.to_string()),
            Ok("203.0.113.7/32".into())
        );
        assert!(check_cidr("2001:db8::/64", false).is_ok());
        let err = check_cidr("10.0.0.1/8", false).unwrap_err();
        assert!(err.contains("\"10.0.0.0/8\""), "{err}");
        assert!(check_cidr("0.0.0.0/0", false)
            .unwrap_err()
            .contains("allow_world"));
        assert!(check_cidr("::/0", false)
            .unwrap_err()
            .contains("allow_world"));
        assert!(check_cidr("10.0.0.0/8", false)
            .unwrap_err()
            .contains("allow_world"));
        assert!(check_cidr("0.0.0.0/0", true).is_ok());
        assert!(check_cidr("0.0.0.0/0", false)
            .unwrap_err()
            .contains("opens access to every address;"));
        assert!(check_cidr("10.0.0.0/8", false)
            .unwrap_err()
            .contains("opens access to 2^24 addresses;"));
        assert!(check_cidr("203.0.113.7", false)
            .unwrap_err()
            .contains("\"203.0.113.7/32\""));
        assert!(check_cidr("banana", false).is_err());
    }

    #[test]
    fn group_ids_and_user_tags_are_checked() {
        assert!(check_group_id("sg-0123abcd").is_ok());
        assert!(check_group_id("sg-0123456789abcdef0").is_ok());
        assert!(check_group_id("sg-0123").is_err());
        assert!(check_group_id("vpc-0123abcd").is_err());
        assert!(check_group_id("sg-0123ABCD").is_err());
        assert!(check_user_tag_key("team").is_ok());
        assert!(check_user_tag_key("allowlist:expires-at").is_err());
        assert!(check_user_tag_key("aws:cloudformation").is_err());
    }

    fn grant() -> Grant {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        Grant {
            id: "grant-1".into(),
            region: "us-west-2".into(),
            group_ids: vec!["sg-0123abcd".into()],
            protocol: Protocol::Tcp,
            ports: vec![PortRange::single(443), PortRange::single(22)],
            cidrs: vec![
                "203.0.113.7/32".parse().unwrap(),
                "2001:db8::/64".parse().unwrap(),
            ],
            description: Some("on-call".into()),
            user_tags: BTreeMap::from([("team".into(), "sre".into())]),
            created_at: t,
            expires_at: t + Duration::from_secs(86_400),
            granted_by: "arn:aws:iam::123456789012:user/alice".into(),
            ephemeral: false,
        }
    }

    #[test]
    fn permissions_are_ports_times_cidrs() {
        let perms = grant().permissions();
        assert_eq!(perms.len(), 4);
        assert_eq!(perms[0].ports, PortRange::single(22));
        let icmp = Grant {
            protocol: Protocol::Icmp,
            ..grant()
        };
        assert!(icmp.permissions().iter().all(|p| p.ports == PortRange::ALL));
        assert_eq!(icmp.permissions().len(), 2);
    }

    #[test]
    fn tags_carry_the_contract() {
        let tags: BTreeMap<_, _> = grant().tags().into_iter().collect();
        assert_eq!(tags[tags::MANAGED_BY], "allowlist");
        assert_eq!(tags[tags::GRANT_ID], "grant-1");
        assert_eq!(tags[tags::EXPIRES_AT], "2025-11-22T12:00:00Z");
        assert_eq!(tags[tags::CREATED_AT], "2025-11-21T12:00:00Z");
        assert_eq!(
            tags[tags::GRANTED_BY],
            "arn:aws:iam::123456789012:user/alice"
        );
        assert_eq!(tags["team"], "sre");
        assert_eq!(
            tags["allowlist:holder:grant-1"],
            "2025-11-21T12:00:00Z/2025-11-22T12:00:00Z arn:aws:iam::123456789012:user/alice"
        );
    }

    #[test]
    fn rules_know_whether_they_are_ours() {
        let mut rule = Rule {
            group_id: "sg-0123abcd".into(),
            id: "sgr-1".into(),
            protocol: "tcp".into(),
            ports: PortRange::single(22),
            cidr: Some("203.0.113.7/32".parse().unwrap()),
            description: None,
            tags: grant().tags().into_iter().collect(),
        };
        assert!(rule.is_managed());
        assert_eq!(rule.grant_id(), Some("grant-1"));
        assert_eq!(rule.expires_at(), Some(grant().expires_at));
        assert!(rule.opens(&grant().permissions()[0]));
        assert_eq!(
            rule.user_tags(),
            BTreeMap::from([("team".into(), "sre".into())])
        );
        rule.tags.remove(tags::MANAGED_BY);
        assert!(!rule.is_managed());
    }

    #[test]
    fn grant_ids_are_random() {
        let (a, b) = (new_grant_id(), new_grant_id());
        assert_ne!(a, b);
        assert!(a.starts_with("grant-") && a.len() == 22);
    }

    fn rule_of(grant_id: Option<&str>, expires: &str, perm: &Permission) -> Rule {
        let mut tags = BTreeMap::new();
        if let Some(id) = grant_id {
            tags.insert(
                tags::MANAGED_BY.to_owned(),
                tags::MANAGED_BY_VALUE.to_owned(),
            );
            tags.insert(tags::GRANT_ID.to_owned(), id.to_owned());
            tags.insert(tags::EXPIRES_AT.to_owned(), expires.to_owned());
        }
        Rule {
            group_id: "sg-0123abcd".into(),
            id: format!("sgr-{}", grant_id.unwrap_or("foreign")),
            protocol: perm.protocol.as_str().into(),
            ports: perm.ports,
            cidr: Some(perm.cidr),
            description: None,
            tags,
        }
    }

    #[test]
    fn authorize_creates_what_is_missing_and_keeps_its_own() {
        let g = grant();
        let now = g.created_at;
        let plan = plan_authorize(&g, &[], now).expect("nothing in the way");
        assert_eq!(
            plan.create,
            vec![("sg-0123abcd".to_owned(), g.permissions())]
        );
        assert!(plan.keep.is_empty() && plan.replace.is_empty());

        let mine = rule_of(Some("grant-1"), "2025-11-22T12:00:00Z", &g.permissions()[0]);
        let plan = plan_authorize(&g, std::slice::from_ref(&mine), now).expect("a retry");
        assert_eq!(plan.keep, vec![mine]);
        assert_eq!(plan.create[0].1.len(), g.permissions().len() - 1);
    }

    #[test]
    fn authorize_joins_live_replaces_expired_and_refuses_foreign_rules() {
        let g = grant();
        let perm = &g.permissions()[0];
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let other = rule_of(Some("grant-2"), "2025-11-21T12:00:00Z", perm);
        // Expired at exactly now: replaced (revoked and created again under this grant).
        let plan = plan_authorize(&g, std::slice::from_ref(&other), expiry).expect("expired");
        assert_eq!(plan.replace, vec![other.clone()]);
        assert!(plan.create[0].1.contains(perm));
        assert!(plan.join.is_empty());
        // One second earlier grant-2 still wants it: shared, not created.
        let before = expiry - Duration::from_secs(1);
        let plan = plan_authorize(&g, std::slice::from_ref(&other), before).expect("live");
        assert_eq!(plan.join, vec![other.clone()]);
        assert!(plan.replace.is_empty() && !plan.create[0].1.contains(perm));
        // Ours but with no readable expiry: never shared, never taken over.
        let undated = rule_of(Some("grant-2"), "someday", perm);
        assert!(matches!(
            plan_authorize(&g, &[undated], expiry),
            Err(GrantError::Undated { .. })
        ));
        let foreign = rule_of(None, "", perm);
        assert!(matches!(
            plan_authorize(&g, &[foreign], expiry),
            Err(GrantError::ForeignRule { .. })
        ));
    }

    #[test]
    fn descriptions_follow_aws_rules() {
        assert!(check_description("on-call (OPS-1)").is_ok());
        assert!(check_description("tab\there").is_err());
        assert!(check_description(&"x".repeat(MAX_DESCRIPTION)).is_ok());
        assert!(check_description(&"x".repeat(MAX_DESCRIPTION + 1)).is_err());
    }
}
