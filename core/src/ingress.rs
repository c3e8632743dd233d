//! Temporary ingress grants: security-group rules that carry their own expiry as tags.
//!
//! This module owns the tag contract shared by the Terraform resource and the publisher's sweep
//! ([`tags`]), the expiry format (RFC 3339 UTC, see [`crate::clock`]), and the operations on AWS:
//! authorize a grant (atomically tagged, rolled back on a partial failure, adopting an expired
//! identical rule), find a grant's rules, re-tag, re-describe, revoke, and list expired rules.
//! Rules without our `managed-by` tag are never modified or revoked.

use crate::aws::Aws;
use crate::clock::{format_instant, parse_instant};
use crate::error::AwsError;
use crate::paging::Pages;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, Tag, TagSpecification,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    /// When the grant was made, RFC 3339 UTC.
    pub const CREATED_AT: &str = "allowlist:created-at";
    /// Who made the grant (caller ARN).
    pub const GRANTED_BY: &str = "allowlist:granted-by";
    /// Tag keys in our namespace, which user tags may not use.
    pub const PREFIX: &str = "allowlist:";
    /// AWS reserves this prefix.
    pub const AWS_PREFIX: &str = "aws:";
}

/// Rules of one security group per authorize/revoke call, and tags per CreateTags call.
const TAG_BATCH: usize = 500;
/// Page size for DescribeSecurityGroupRules (the API's maximum).
const RULE_PAGE: i32 = 1000;
/// Filter values per filter that AWS accepts in one request.
const FILTER_VALUES: usize = 200;

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
            "{s:?} opens access to {} addresses; grants are limited to /{} (IPv4) and /{} (IPv6) or narrower unless allow_world = true",
            if net.prefix_len() == 0 { "every".to_owned() } else { format!("2^{}", net.max_prefix_len() - net.prefix_len()) },
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

    /// The tags every rule of the grant carries: ours, then the user's.
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
        ];
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
    fn from_aws(rule: &SecurityGroupRule) -> Option<Rule> {
        if rule.is_egress() == Some(true) {
            return None;
        }
        let cidr = rule
            .cidr_ipv4()
            .or(rule.cidr_ipv6())
            .and_then(|c| c.parse().ok());
        Some(Rule {
            group_id: rule.group_id()?.to_owned(),
            id: rule.security_group_rule_id()?.to_owned(),
            protocol: rule.ip_protocol().unwrap_or_default().to_owned(),
            ports: PortRange {
                from: rule.from_port().unwrap_or(-1),
                to: rule.to_port().unwrap_or(-1),
            },
            cidr,
            description: rule
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            tags: rule
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        })
    }

    /// Whether the rule carries our managed-by tag.
    pub fn is_managed(&self) -> bool {
        self.tags.get(tags::MANAGED_BY).map(String::as_str) == Some(tags::MANAGED_BY_VALUE)
    }

    pub fn grant_id(&self) -> Option<&str> {
        self.tags.get(tags::GRANT_ID).map(String::as_str)
    }

    /// The rule's expiry, if it is ours and the tag parses.
    pub fn expires_at(&self) -> Option<SystemTime> {
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
    /// An identical rule belongs to another grant that has not expired.
    #[error("{group_id} already has this permission as rule {rule_id} of grant {grant_id}, valid until {expires_at}; reuse that grant or wait for it to expire")]
    LiveGrant {
        group_id: String,
        rule_id: String,
        grant_id: String,
        expires_at: String,
    },
    /// Authorize failed and rolling back also failed: these rules were left behind (they carry
    /// expiry tags, so the sweep removes them).
    #[error("{cause}; rolling back also failed, leaving rules {} (they expire by tag and will be swept): {rollback}", .left_behind.join(", "))]
    RollbackFailed {
        cause: Box<GrantError>,
        rollback: AwsError,
        left_behind: Vec<String>,
    },
}

impl GrantError {
    fn aws(source: AwsError, group_id: Option<&str>) -> Self {
        GrantError::Aws {
            source,
            group_id: group_id.map(str::to_owned),
        }
    }
}

/// Which of `group_ids` do not exist in `region` (one DescribeSecurityGroups call).
pub async fn missing_groups(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<String>, AwsError> {
    let mut found = HashSet::new();
    for chunk in group_ids.chunks(FILTER_VALUES) {
        let out = aws
            .ec2(region)
            .describe_security_groups()
            .filters(
                Filter::builder()
                    .name("group-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DescribeSecurityGroups", e))?;
        found.extend(
            out.security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned)),
        );
    }
    Ok(group_ids
        .iter()
        .filter(|g| !found.contains(*g))
        .cloned()
        .collect())
}

/// Ingress rules matching `filters` in `region`, following pagination.
async fn describe_rules(
    aws: &Aws,
    region: &str,
    filters: Vec<Filter>,
) -> Result<Vec<Rule>, AwsError> {
    let client = aws.ec2(region);
    let mut rules = Vec::new();
    let mut pages = Pages::new(region, "DescribeSecurityGroupRules");
    loop {
        let page = client
            .describe_security_group_rules()
            .set_filters(Some(filters.clone()))
            .max_results(RULE_PAGE)
            .set_next_token(pages.token())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DescribeSecurityGroupRules", e))?;
        rules.extend(
            page.security_group_rules()
                .iter()
                .filter_map(Rule::from_aws),
        );
        if !pages.advance(page.next_token())? {
            break;
        }
    }
    rules.sort();
    Ok(rules)
}

/// The rules of the grants `grant_ids` in `region`, found by tag (one call per 200 grants).
pub async fn grant_rules(
    aws: &Aws,
    region: &str,
    grant_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let mut rules = Vec::new();
    for chunk in grant_ids.chunks(FILTER_VALUES) {
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{}", tags::MANAGED_BY))
                .values(tags::MANAGED_BY_VALUE)
                .build(),
            Filter::builder()
                .name(format!("tag:{}", tags::GRANT_ID))
                .set_values(Some(chunk.to_vec()))
                .build(),
        ];
        rules.extend(describe_rules(aws, region, filters).await?);
    }
    // Checked again here: the result must not depend on the server honouring tag filters.
    rules.retain(|r| {
        r.is_managed()
            && r.grant_id()
                .is_some_and(|g| grant_ids.iter().any(|id| id == g))
    });
    Ok(rules)
}

/// Every ingress rule of the given groups.
pub async fn group_rules(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let filters = vec![Filter::builder()
        .name("group-id")
        .set_values(Some(group_ids.to_vec()))
        .build()];
    let mut rules = describe_rules(aws, region, filters).await?;
    rules.retain(|r| group_ids.contains(&r.group_id));
    Ok(rules)
}

/// Every rule in `region` that carries our managed-by tag, of any grant (one call per page).
pub async fn managed_rules(aws: &Aws, region: &str) -> Result<Vec<Rule>, AwsError> {
    let filters = vec![Filter::builder()
        .name(format!("tag:{}", tags::MANAGED_BY))
        .values(tags::MANAGED_BY_VALUE)
        .build()];
    let mut rules = describe_rules(aws, region, filters).await?;
    rules.retain(Rule::is_managed);
    Ok(rules)
}

fn aws_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Makes the grant on AWS: for each group, one AuthorizeSecurityGroupIngress whose rules carry the
/// grant's tags from the start. Identical rules left by expired grants are revoked first and
/// created again (never re-tagged in place, which would race with a sweep). If anything fails,
/// every rule this call created is revoked again before the error is returned. Returns the
/// grant's rules, sorted.
pub async fn authorize(aws: &Aws, grant: &Grant, now: SystemTime) -> Result<Vec<Rule>, GrantError> {
    let region = grant.region.as_str();
    let missing = missing_groups(aws, region, &grant.group_ids)
        .await
        .map_err(|e| GrantError::aws(e, None))?;
    if !missing.is_empty() {
        return Err(GrantError::GroupsNotFound {
            region: region.to_owned(),
            group_ids: missing,
        });
    }
    let existing = group_rules(aws, region, &grant.group_ids)
        .await
        .map_err(|e| GrantError::aws(e, None))?;
    let permissions = grant.permissions();

    // Decide everything before changing anything, so a refusal leaves nothing behind.
    // Rules of this grant that already exist are kept; identical rules of expired grants are
    // replaced (revoked, then created again with this grant's tags).
    let mut keep: Vec<Rule> = Vec::new();
    let mut replace: Vec<Rule> = Vec::new();
    let mut to_create: Vec<(&str, Vec<&Permission>)> = Vec::new();
    for group in &grant.group_ids {
        let mut create = Vec::new();
        for perm in &permissions {
            match existing
                .iter()
                .find(|r| &r.group_id == group && r.opens(perm))
            {
                None => create.push(perm),
                Some(rule) if !rule.is_managed() => {
                    return Err(GrantError::ForeignRule {
                        group_id: group.clone(),
                        rule_id: rule.id.clone(),
                    })
                }
                Some(rule) if rule.grant_id() == Some(grant.id.as_str()) => keep.push(rule.clone()),
                Some(rule) => {
                    if rule.expires_at().is_none_or(|t| t > now) {
                        return Err(GrantError::LiveGrant {
                            group_id: group.clone(),
                            rule_id: rule.id.clone(),
                            grant_id: rule.grant_id().unwrap_or("?").to_owned(),
                            expires_at: rule
                                .tags
                                .get(tags::EXPIRES_AT)
                                .cloned()
                                .unwrap_or_default(),
                        });
                    }
                    replace.push(rule.clone());
                    create.push(perm);
                }
            }
        }
        to_create.push((group, create));
    }

    let mut created: Vec<Rule> = Vec::new();
    let result = async {
        if !replace.is_empty() {
            // Not re-tagged in place: a sweep may already have listed the expired rule and be
            // about to revoke it by id, which would silently take this grant's access away. A
            // rule created anew has an id no sweep has seen. (The expired rules were due to go.)
            revoke(aws, region, &replace)
                .await
                .map_err(|e| GrantError::aws(e, None))?;
            tracing::info!(grant = %grant.id, rules = replace.len(), "replaced expired rules of earlier grants");
        }
        for (group, perms) in &to_create {
            if perms.is_empty() {
                continue;
            }
            let rules = authorize_group(aws, grant, group, perms).await?;
            created.extend(rules);
        }
        Ok::<(), GrantError>(())
    }
    .await;

    if let Err(cause) = result {
        if created.is_empty() {
            return Err(cause);
        }
        tracing::warn!(grant = %grant.id, rules = created.len(), "authorize failed part-way; revoking what it added");
        return match revoke(aws, region, &created).await {
            Ok(()) => Err(cause),
            Err(rollback) => Err(GrantError::RollbackFailed {
                cause: Box::new(cause),
                rollback,
                left_behind: created.iter().map(|r| r.id.clone()).collect(),
            }),
        };
    }

    let mut all: Vec<Rule> = created;
    all.extend(keep);
    all.sort();
    Ok(all)
}

/// One AuthorizeSecurityGroupIngress for `perms` in `group`, tagged at creation.
async fn authorize_group(
    aws: &Aws,
    grant: &Grant,
    group: &str,
    perms: &[&Permission],
) -> Result<Vec<Rule>, GrantError> {
    let region = grant.region.as_str();
    // One IpPermission per (protocol, ports), holding all its CIDRs.
    let mut by_ports: BTreeMap<(Protocol, PortRange), Vec<IpNet>> = BTreeMap::new();
    for perm in perms {
        by_ports
            .entry((perm.protocol, perm.ports))
            .or_default()
            .push(perm.cidr);
    }
    let ip_permissions: Vec<IpPermission> = by_ports
        .iter()
        .map(|((protocol, ports), cidrs)| {
            let mut p = IpPermission::builder()
                .ip_protocol(protocol.as_str())
                .from_port(ports.from)
                .to_port(ports.to);
            for cidr in cidrs {
                p = match cidr {
                    IpNet::V4(_) => p.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(cidr.to_string())
                            .set_description(grant.description.clone())
                            .build(),
                    ),
                    IpNet::V6(_) => p.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(cidr.to_string())
                            .set_description(grant.description.clone())
                            .build(),
                    ),
                };
            }
            p.build()
        })
        .collect();
    let out = aws
        .ec2(region)
        .authorize_security_group_ingress()
        .group_id(group)
        .set_ip_permissions(Some(ip_permissions))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroupRule)
                .set_tags(Some(aws_tags(&grant.tags())))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            GrantError::aws(
                AwsError::from_sdk(region, "AuthorizeSecurityGroupIngress", e),
                Some(group),
            )
        })?;
    let mut rules: Vec<Rule> = out
        .security_group_rules()
        .iter()
        .filter_map(Rule::from_aws)
        .collect();
    if rules.len() != perms.len() {
        // Some servers list fewer rules than they created; ask again by tag.
        rules = grant_rules(aws, region, std::slice::from_ref(&grant.id))
            .await
            .map_err(|e| GrantError::aws(e, Some(group)))?
            .into_iter()
            .filter(|r| r.group_id == group && perms.iter().any(|p| r.opens(p)))
            .collect();
    }
    Ok(rules)
}

/// Sets `tags` (overwriting values) on the rules `rule_ids`.
pub async fn retag(
    aws: &Aws,
    region: &str,
    rule_ids: &[String],
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    for chunk in rule_ids.chunks(TAG_BATCH) {
        aws.ec2(region)
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(aws_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "CreateTags", e))?;
    }
    Ok(())
}

/// Removes from `rules` every user tag that is not in `keep`.
pub async fn remove_tags(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    keep: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let stale: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| r.user_tags().into_keys())
        .filter(|k| !keep.contains_key(k))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
    for chunk in ids.chunks(TAG_BATCH) {
        aws.ec2(region)
            .delete_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(
                stale
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DeleteTags", e))?;
    }
    Ok(())
}

/// Sets the description of `rules` (one ModifySecurityGroupRules call per group), skipping rules
/// that already have it.
pub async fn set_description(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    description: Option<&str>,
) -> Result<(), GrantError> {
    let mut by_group: BTreeMap<&str, Vec<SecurityGroupRuleUpdate>> = BTreeMap::new();
    for rule in rules
        .iter()
        .filter(|r| r.description.as_deref() != description)
    {
        let Some(cidr) = rule.cidr else { continue };
        let mut request = SecurityGroupRuleRequest::builder()
            .ip_protocol(&rule.protocol)
            .from_port(rule.ports.from)
            .to_port(rule.ports.to)
            .description(description.unwrap_or(""));
        request = match cidr {
            IpNet::V4(_) => request.cidr_ipv4(cidr.to_string()),
            IpNet::V6(_) => request.cidr_ipv6(cidr.to_string()),
        };
        by_group.entry(&rule.group_id).or_default().push(
            SecurityGroupRuleUpdate::builder()
                .security_group_rule_id(&rule.id)
                .security_group_rule(request.build())
                .build(),
        );
    }
    for (group, updates) in by_group {
        aws.ec2(region)
            .modify_security_group_rules()
            .group_id(group)
            .set_security_group_rules(Some(updates))
            .send()
            .await
            .map_err(|e| {
                GrantError::aws(
                    AwsError::from_sdk(region, "ModifySecurityGroupRules", e),
                    Some(group),
                )
            })?;
    }
    Ok(())
}

/// Revokes `rules`, one call per security group. Rules that are already gone are success; rules
/// are only revoked by id, so nothing but these rules is touched.
pub async fn revoke(aws: &Aws, region: &str, rules: &[Rule]) -> Result<(), AwsError> {
    for (group, rules) in by_group(rules) {
        revoke_in_group(aws, region, group, rule_ids(&rules)).await?;
    }
    Ok(())
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

/// Revokes the rules `ids` of one security group in one call. Already gone (rule or group) is
/// success: the call is atomic, so on NotFound the ids that still exist are revoked again.
pub(crate) async fn revoke_in_group(
    aws: &Aws,
    region: &str,
    group: &str,
    ids: Vec<String>,
) -> Result<(), AwsError> {
    let client = aws.ec2(region);
    let call = |ids: Vec<String>| {
        client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_security_group_rule_ids(Some(ids))
            .send()
    };
    match call(ids.clone())
        .await
        .map_err(|e| AwsError::from_sdk(region, "RevokeSecurityGroupIngress", e))
    {
        Ok(_) => Ok(()),
        Err(e) if e.has_code("InvalidGroup.NotFound") => Ok(()),
        Err(e)
            if e.has_code("InvalidPermission.NotFound")
                || e.has_code("InvalidSecurityGroupRuleId.NotFound") =>
        {
            // The call is atomic: one missing id fails it all. Revoke whichever still exist.
            let still: Vec<String> = group_rules(aws, region, &[group.to_owned()])
                .await?
                .into_iter()
                .filter(|r| ids.contains(&r.id))
                .map(|r| r.id)
                .collect();
            if still.is_empty() {
                return Ok(());
            }
            match call(still)
                .await
                .map_err(|e| AwsError::from_sdk(region, "RevokeSecurityGroupIngress", e))
            {
                Ok(_) => Ok(()),
                // Someone else revoked them in between: gone is what we wanted.
                Err(e) if e.has_code("InvalidPermission.NotFound") => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
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
}
