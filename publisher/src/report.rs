//! What a run tells its operator: one summary line per publish and per sweep on stderr (fields a
//! log query can pick out), errors in words, and the `--dry-run` listing on stdout.

use crate::publish::{PublishError, PublishReport};
use crate::sweep::{SweepError, SweepReport};
use allowlist_core::clock::format_instant;
use allowlist_core::ingress::Rule;
use std::io::Write;

/// Logs the summary of a successful publish. `prefix_lists` counts the lists synced and
/// `prefix_lists_changed` those a modify changed; `announced` is the SNS message id;
/// `completed_pending` names work a previous run left owed that this one did.
pub fn published(report: &PublishReport, cycle: Option<u64>) {
    let changed_lists = report
        .prefix_lists
        .iter()
        .filter(|s| s.version.is_some())
        .count();
    let pending = report.completed_pending.join(",");
    tracing::info!(
        cycle,
        regions = report.regions.len(),
        prefixes = report.prefixes,
        previous = report.previous_prefixes,
        changed = report.changed,
        sync_token = report.sync_token,
        written = %report.written.join(","),
        invalidation = report.invalidation.as_deref(),
        announced = report.announcement.as_deref(),
        prefix_lists = report.prefix_lists.len(),
        prefix_lists_changed = changed_lists,
        completed_pending = (!pending.is_empty()).then_some(pending.as_str()),
        attempts = report.attempts,
        "publish summary"
    );
}

/// Logs a failed publish, with its exit code.
pub fn publish_failed(err: &PublishError, cycle: Option<u64>) {
    tracing::error!(cycle, exit_code = err.exit_code(), "publish failed: {err}");
}

/// Logs the summary of a sweep and every failure in it; returns the number of failures.
pub fn swept(report: &SweepReport, cycle: Option<u64>) -> usize {
    for failure in report.failures() {
        tracing::error!(cycle, "sweep failure: {failure}");
    }
    if let Some(unknown) = &report.unknown_regions {
        tracing::error!(cycle, "--regions: {unknown}");
    }
    tracing::info!(
        cycle,
        regions = report.region_count(),
        expired = report.expired_count(),
        revoked = report.revoked_count(),
        groups = report.group_count(),
        failed = report.failure_count(),
        dry_run = report.dry_run,
        cutoff = %format_instant(report.cutoff),
        "sweep summary"
    );
    report.failure_count()
}

/// Logs a sweep that could not start, with its exit code.
pub fn sweep_failed(err: &SweepError, cycle: Option<u64>) {
    tracing::error!(cycle, exit_code = err.exit_code(), "sweep failed: {err}");
}

/// One line for a rule the sweep would revoke:
/// `region group rule cidr protocol ports expires-at grant-id`.
pub fn rule_line(region: &str, rule: &Rule) -> String {
    let ports = match (rule.ports.from, rule.ports.to) {
        (-1, _) => "all".to_owned(),
        (from, to) if from == to => from.to_string(),
        (from, to) => format!("{from}-{to}"),
    };
    format!(
        "{region} {} {} {} {} {} {} {}",
        rule.group_id,
        rule.id,
        rule.cidr
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        rule.protocol,
        ports,
        rule.expires_at()
            .map(format_instant)
            .unwrap_or_else(|| "-".to_owned()),
        rule.grant_id().unwrap_or("-"),
    )
}

/// Prints the `--dry-run` listing on stdout.
pub fn print_dry_run(report: &SweepReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (region, rule) in report.expired() {
        writeln!(out, "{}", rule_line(region, rule))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use allowlist_core::ingress::{tags, PortRange};
    use std::collections::BTreeMap;

    #[test]
    fn dry_run_line_has_every_column() {
        let rule = Rule {
            group_id: "sg-1".into(),
            id: "sgr-9".into(),
            protocol: "tcp".into(),
            ports: PortRange {
                from: 8000,
                to: 8100,
            },
            cidr: Some("203.0.113.7/32".parse().unwrap()),
            description: None,
            tags: BTreeMap::from([
                (
                    tags::MANAGED_BY.to_owned(),
                    tags::MANAGED_BY_VALUE.to_owned(),
                ),
                (tags::GRANT_ID.to_owned(), "g-1".to_owned()),
                (
                    tags::EXPIRES_AT.to_owned(),
                    "2026-11-20T10:00:00Z".to_owned(),
                ),
            ]),
        };
        assert_eq!(
            rule_line("us-east-1", &rule),
            "us-east-1 sg-1 sgr-9 203.0.113.7/32 tcp 8000-8100 2026-11-20T10:00:00Z g-1"
        );
        let all = Rule {
            ports: PortRange::ALL,
            protocol: "icmp".into(),
            ..rule
        };
        assert!(rule_line("r", &all).contains(" icmp all "));
    }
}
