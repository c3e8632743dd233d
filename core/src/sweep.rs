//! The sweep: revokes our ingress rules whose `allowlist:expires-at` has passed, so expired access
//! closes even if nobody runs Terraform again.
//!
//! Only rules carrying `allowlist:managed-by=allowlist` are candidates (checked on our side, not
//! trusted to the server's tag filter), and rules are revoked by id, one call per security group.

use crate::accounts::AccountRef;
use crate::aws::Aws;
use crate::error::AwsError;
use crate::ingress::{by_group, managed_rules, revoke_in_group, rule_ids, Rule};
use futures::StreamExt;
use std::time::SystemTime;

/// Security groups revoked from at the same time, per region.
const GROUP_CONCURRENCY: usize = 4;

/// What sweeping one region found and did.
#[derive(Debug, Clone, Default)]
pub struct RegionSweep {
    /// The account swept (set by a caller that sweeps several).
    pub account: AccountRef,
    pub region: String,
    /// Our rules whose expiry is at or before the cutoff, sorted by group and id.
    pub expired: Vec<Rule>,
    /// The expired rules now gone (revoked by us, or already gone). Empty on a dry run.
    pub revoked: Vec<Rule>,
    /// Our rules whose `allowlist:expires-at` is missing or does not parse: never revoked (we
    /// cannot tell they expired), reported so someone looks at them.
    pub malformed: Vec<Rule>,
    /// Groups whose revoke call failed; their rules stay in `expired` only.
    pub failures: Vec<GroupFailure>,
    /// The earliest expiry among our rules still live at the cutoff: when this region next has
    /// something to revoke (None when no rule of ours is waiting to expire).
    pub next_expiry: Option<SystemTime>,
}

/// A security group whose expired rules could not be revoked.
#[derive(Debug, Clone)]
pub struct GroupFailure {
    pub group_id: String,
    pub error: AwsError,
}

impl RegionSweep {
    /// The security groups that had expired rules.
    pub fn groups(&self) -> usize {
        let mut groups: Vec<&str> = self.expired.iter().map(|r| r.group_id.as_str()).collect();
        groups.dedup();
        groups.len()
    }
}

/// The earliest `allowlist:expires-at` among `rules` (those without one are ignored).
pub fn next_expiry(rules: &[Rule]) -> Option<SystemTime> {
    rules.iter().filter_map(Rule::expires_at).min()
}

/// Finds our rules in `region` that expired at or before `cutoff` and, unless `dry_run`, revokes
/// them: one RevokeSecurityGroupIngress per group, a few groups at a time. A failing group does
/// not stop the others; listing the rules failing fails the region.
pub async fn sweep_region(
    aws: &Aws,
    region: &str,
    cutoff: SystemTime,
    dry_run: bool,
) -> Result<RegionSweep, AwsError> {
    let (dated, malformed): (Vec<Rule>, Vec<Rule>) = managed_rules(aws, region)
        .await?
        .into_iter()
        .partition(|r| r.expires_at().is_some());
    let (expired, live): (Vec<Rule>, Vec<Rule>) = dated
        .into_iter()
        .partition(|r| r.expires_at().is_some_and(|t| t <= cutoff));
    let mut sweep = RegionSweep {
        region: region.to_owned(),
        expired,
        malformed,
        next_expiry: next_expiry(&live),
        ..RegionSweep::default()
    };
    tracing::debug!(
        region,
        expired = sweep.expired.len(),
        malformed = sweep.malformed.len(),
        next_expiry = sweep
            .next_expiry
            .map(crate::clock::format_instant)
            .as_deref(),
        "listed our rules"
    );
    if dry_run || sweep.expired.is_empty() {
        return Ok(sweep);
    }
    let groups = by_group(&sweep.expired);
    let mut results = futures::stream::iter(groups)
        .map(|(group, rules)| async move {
            let result = revoke_in_group(aws, region, group, rule_ids(&rules)).await;
            (group, rules, result)
        })
        .buffer_unordered(GROUP_CONCURRENCY);
    while let Some((group_id, rules, result)) = results.next().await {
        match result {
            Ok(()) => sweep.revoked.extend(rules.into_iter().cloned()),
            Err(error) => sweep.failures.push(GroupFailure {
                group_id: group_id.to_owned(),
                error,
            }),
        }
    }
    // The stream borrows `sweep.expired`; end it before `sweep` moves out.
    drop(results);
    sweep.revoked.sort();
    sweep.failures.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::next_expiry;
    use crate::clock::{format_instant, parse_instant};
    use crate::ingress::{tags, PortRange, Rule};
    use std::collections::BTreeMap;

    fn rule(id: &str, expires_at: Option<&str>) -> Rule {
        let mut tags = BTreeMap::from([(
            tags::MANAGED_BY.to_owned(),
            tags::MANAGED_BY_VALUE.to_owned(),
        )]);
        if let Some(t) = expires_at {
            tags.insert(tags::EXPIRES_AT.to_owned(), t.to_owned());
        }
        Rule {
            group_id: "sg-1".into(),
            id: id.into(),
            protocol: "tcp".into(),
            ports: PortRange::single(22),
            cidr: None,
            description: None,
            tags,
        }
    }

    #[test]
    fn next_expiry_is_the_earliest_readable_one() {
        let rules = [
            rule("sgr-1", Some("2026-12-02T12:00:30Z")),
            rule("sgr-2", Some("2026-12-02T12:00:20Z")),
            rule("sgr-3", Some("not a time")),
            rule("sgr-4", None),
            rule("sgr-5", Some("2026-12-02T13:00:00Z")),
        ];
        let next = next_expiry(&rules).expect("an expiry");
        assert_eq!(format_instant(next), "2026-12-02T12:00:20Z");
        assert_eq!(next_expiry(&rules[2..4]), None);
        assert_eq!(next_expiry(&[]), None);
        assert_eq!(
            next_expiry(&rules[4..]),
            parse_instant("2026-12-02T13:00:00Z")
        );
    }
}
