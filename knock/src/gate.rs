//! What a knock does on AWS, through core's grant code only: find the caller's grant on a door
//! from its holder tags (`allowlist:granted-by = knock:<principal>` on a rule for the caller's
//! /32 or /128), then open one ([`authorize`], which shares an identical rule of another live
//! grant), extend it ([`set_expiry`]) or close it ([`release`], which leaves a shared rule to its
//! other holders). [`Gate`] is the narrow capability the HTTP handler needs, so the handler can be
//! exercised (and measured) without AWS.

use crate::doors::Door;
use allowlist_core::clock::format_instant;
use allowlist_core::ingress::{
    authorize, grants_of, group_rules, new_grant_id, release, set_expiry, GrantError, HeldGrant,
    Hold, Rule,
};
use allowlist_core::Aws;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A knock to make.
#[derive(Debug, Clone)]
pub struct KnockRequest<'a> {
    pub door: &'a Door,
    /// Every door, to count the principal's live grants.
    pub all_doors: &'a [&'a Door],
    pub granted_by: &'a str,
    pub cidr: IpNet,
    pub ttl: Duration,
    pub now: SystemTime,
    pub max_live: usize,
}

/// A grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrantView {
    pub grant_id: String,
    pub cidr: String,
    pub expires_at: String,
    pub rule_ids: Vec<String>,
}

/// What a knock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knocked {
    pub grant: GrantView,
    /// A new grant (201), rather than an existing one extended (200).
    pub created: bool,
}

/// Why a knock did not open the door.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// An identical rule that is not ours is in the way.
    #[error("{group_id} already has an identical rule {rule_id} that allowlist does not manage")]
    Foreign { group_id: String, rule_id: String },
    #[error("{live} live grants already, the most a caller may hold; close one first")]
    TooMany { live: usize },
    /// Another grant is changing the same rule right now.
    #[error("a shared rule is changing; try again")]
    Busy,
    #[error("AWS: {0}")]
    Aws(String),
}

impl From<GrantError> for GateError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::ForeignRule { group_id, rule_id } => {
                GateError::Foreign { group_id, rule_id }
            }
            GrantError::Contended { .. } => GateError::Busy,
            other => GateError::Aws(other.to_string()),
        }
    }
}

impl From<allowlist_core::AwsError> for GateError {
    fn from(e: allowlist_core::AwsError) -> Self {
        GateError::Aws(e.to_string())
    }
}

/// The AWS side of knocking.
pub trait Gate: Send + Sync + 'static {
    /// Opens the door for `cidr`, or extends the principal's grant from there.
    fn knock(
        &self,
        request: KnockRequest<'_>,
    ) -> impl Future<Output = Result<Knocked, GateError>> + Send;
    /// Closes the principal's grant on `door` from `cidr`; false when there was none.
    fn close(
        &self,
        door: &Door,
        granted_by: &str,
        cidr: IpNet,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, GateError>> + Send;
    /// The principal's live grants on each of `doors`, by door name.
    fn list(
        &self,
        doors: &[&Door],
        granted_by: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<GrantView>>, GateError>> + Send;
}

/// [`Gate`] over AWS.
#[derive(Debug, Clone)]
pub struct AwsGate {
    pub aws: Arc<Aws>,
}

/// The principal's grants on `door` from `cidr` (its rules limited to the door's), latest expiry
/// first.
fn door_grants(
    door: &Door,
    rules: &[Rule],
    granted_by: &str,
    cidr: Option<IpNet>,
) -> Vec<HeldGrant> {
    let on_door: Vec<Rule> = rules
        .iter()
        .filter(|r| door.opens_ports(r) && cidr.is_none_or(|c| r.cidr == Some(c)))
        .cloned()
        .collect();
    let mut grants = grants_of(&door.region, &on_door, granted_by);
    grants.sort_by_key(|g| std::cmp::Reverse(g.expires_at));
    grants
}

fn view(grant: &HeldGrant, expires_at: SystemTime) -> GrantView {
    GrantView {
        grant_id: grant.id.clone(),
        cidr: grant
            .rules
            .iter()
            .find_map(|r| r.cidr)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        expires_at: format_instant(expires_at),
        rule_ids: grant.rules.iter().map(|r| r.id.clone()).collect(),
    }
}

/// The union of the groups of `doors` in `region`.
fn region_groups(doors: &[&Door], region: &str) -> Vec<String> {
    let mut groups: Vec<String> = doors
        .iter()
        .filter(|d| d.region == region)
        .flat_map(|d| d.group_ids.iter().cloned())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

impl AwsGate {
    /// Every rule of the groups of `doors`, one read per region.
    async fn rules_by_region(
        &self,
        doors: &[&Door],
    ) -> Result<BTreeMap<String, Vec<Rule>>, GateError> {
        let mut regions: Vec<&str> = doors.iter().map(|d| d.region.as_str()).collect();
        regions.sort();
        regions.dedup();
        let mut out = BTreeMap::new();
        for region in regions {
            let rules = group_rules(&self.aws, region, &region_groups(doors, region)).await?;
            out.insert(region.to_owned(), rules);
        }
        Ok(out)
    }
}

impl Gate for AwsGate {
    async fn knock(&self, r: KnockRequest<'_>) -> Result<Knocked, GateError> {
        let door = r.door;
        let region = door.region.as_str();
        let rules = group_rules(&self.aws, region, &door.group_ids).await?;
        let existing = door_grants(door, &rules, r.granted_by, Some(r.cidr))
            .into_iter()
            .find(|g| g.is_live(r.now));
        if let Some(grant) = existing {
            // Live, so its expiry is known (and ahead of now).
            let expires_at = grant.expires_at.unwrap_or(r.now).max(r.now + r.ttl);
            let created_at = grant.created_at.unwrap_or(r.now);
            let mut held = grant.rules.clone();
            let missing = door.group_ids.iter().any(|g| {
                door.permissions(r.cidr)
                    .iter()
                    .any(|p| !held.iter().any(|h| &h.group_id == g && h.opens(p)))
            });
            if missing {
                // The door gained a port or a group since: the same grant takes it too.
                let full = door.grant(
                    grant.id.clone(),
                    r.cidr,
                    r.granted_by.to_owned(),
                    created_at,
                    expires_at,
                );
                held = authorize(&self.aws, &full, r.now).await?;
            }
            let hold = Hold {
                created_at: Some(created_at),
                expires_at,
                granted_by: Some(r.granted_by.to_owned()),
                ephemeral: false,
            };
            set_expiry(&self.aws, region, &grant.id, &held, &hold, r.now).await?;
            let grant = HeldGrant {
                rules: held,
                ..grant
            };
            return Ok(Knocked {
                grant: view(&grant, expires_at),
                created: false,
            });
        }
        // Every door's groups (this door's included), one read per region.
        let everywhere = self.rules_by_region(r.all_doors).await?;
        let live = everywhere
            .iter()
            .flat_map(|(region, rules)| grants_of(region, rules, r.granted_by))
            .filter(|g| g.is_live(r.now))
            .map(|g| g.id)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if live >= r.max_live {
            return Err(GateError::TooMany { live });
        }
        let expires_at = r.now + r.ttl;
        let grant = door.grant(
            new_grant_id(),
            r.cidr,
            r.granted_by.to_owned(),
            r.now,
            expires_at,
        );
        let rules = authorize(&self.aws, &grant, r.now).await?;
        Ok(Knocked {
            grant: GrantView {
                grant_id: grant.id.clone(),
                cidr: r.cidr.to_string(),
                expires_at: format_instant(expires_at),
                rule_ids: rules.iter().map(|rule| rule.id.clone()).collect(),
            },
            created: true,
        })
    }

    fn close(
        &self,
        door: &Door,
        granted_by: &str,
        cidr: IpNet,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, GateError>> + Send {
        let door = door.clone();
        let granted_by = granted_by.to_owned();
        async move {
            let rules = group_rules(&self.aws, &door.region, &door.group_ids).await?;
            let grants = door_grants(&door, &rules, &granted_by, Some(cidr));
            for grant in &grants {
                release(&self.aws, &door.region, &grant.id, &grant.rules, now).await?;
            }
            Ok(!grants.is_empty())
        }
    }

    fn list(
        &self,
        doors: &[&Door],
        granted_by: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<GrantView>>, GateError>> + Send {
        let doors: Vec<Door> = doors.iter().map(|d| (*d).clone()).collect();
        let granted_by = granted_by.to_owned();
        async move {
            let refs: Vec<&Door> = doors.iter().collect();
            let by_region = self.rules_by_region(&refs).await?;
            let mut out = BTreeMap::new();
            for door in &doors {
                let rules = by_region
                    .get(&door.region)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let views = door_grants(door, rules, &granted_by, None)
                    .iter()
                    .filter(|g| g.is_live(now))
                    .map(|g| view(g, g.expires_at.unwrap_or(now)))
                    .collect();
                out.insert(door.name.clone(), views);
            }
            Ok(out)
        }
    }
}
