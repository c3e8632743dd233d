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
    let mut sweep = RegionSweep {
        region: region.to_owned(),
        expired: dated
            .into_iter()
            .filter(|r| r.expires_at().is_some_and(|t| t <= cutoff))
            .collect(),
        malformed,
        ..RegionSweep::default()
    };
    tracing::debug!(
        region,
        expired = sweep.expired.len(),
        malformed = sweep.malformed.len(),
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
