//! `sweep`: revoke our expired temporary-ingress rules in every region asked, concurrently.
//!
//! Unlike `publish`, a failing region does not stop the others: closing expired access wherever
//! we can is always better than closing it nowhere. The run still ends in an error naming the
//! regions and groups that failed.

use allowlist_core::clock::Clock;
use allowlist_core::egress::{resolve_regions, LookupError};
use allowlist_core::error::AwsError;
use allowlist_core::ingress::Rule;
use allowlist_core::region::{self as regions, RegionFailure};
use allowlist_core::sweep::{sweep_region, RegionSweep};
use allowlist_core::Aws;
use std::time::{Duration, SystemTime};

/// What to sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// Region names, or `["all"]`.
    pub regions: Vec<String>,
    /// Only rules expired for longer than this are revoked (a margin for clock skew).
    pub grace: Duration,
    /// List only; revoke nothing.
    pub dry_run: bool,
}

/// What a sweep found and did.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// Rules expiring at or before this instant were candidates.
    pub cutoff: SystemTime,
    pub dry_run: bool,
    /// Every region that could be listed, sorted.
    pub regions: Vec<RegionSweep>,
    /// Regions whose rules could not be listed.
    pub failed_regions: Vec<AwsError>,
    /// Set when some failed regions do not exist at all (a usage error).
    pub unknown_regions: Option<String>,
}

impl SweepReport {
    /// Regions asked, failed ones included.
    pub fn region_count(&self) -> usize {
        self.regions.len() + self.failed_regions.len()
    }

    /// Every expired rule found, region by region.
    pub fn expired(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.regions
            .iter()
            .flat_map(|r| r.expired.iter().map(move |rule| (r.region.as_str(), rule)))
    }

    pub fn expired_count(&self) -> usize {
        self.regions.iter().map(|r| r.expired.len()).sum()
    }

    pub fn revoked_count(&self) -> usize {
        self.regions.iter().map(|r| r.revoked.len()).sum()
    }

    /// Security groups that had expired rules.
    pub fn group_count(&self) -> usize {
        self.regions.iter().map(RegionSweep::groups).sum()
    }

    /// The earliest expiry among our rules still live at the cutoff, over every region listed
    /// (regions that could not be listed are unknown: the next scheduled sweep retries them).
    pub fn next_expiry(&self) -> Option<SystemTime> {
        self.regions.iter().filter_map(|r| r.next_expiry).min()
    }

    /// Failed regions plus failed groups.
    pub fn failure_count(&self) -> usize {
        self.failed_regions.len() + self.regions.iter().map(|r| r.failures.len()).sum::<usize>()
    }

    /// One line per failure, for the error message.
    pub fn failures(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .failed_regions
            .iter()
            .map(ToString::to_string)
            .collect();
        for region in &self.regions {
            for failure in &region.failures {
                lines.push(format!("{}: {}", failure.group_id, failure.error));
            }
        }
        lines
    }
}

/// Why a sweep could not start.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{flag}: {message}")]
    Usage { flag: &'static str, message: String },
    #[error("listing the enabled regions failed: {0}")]
    ListRegions(#[source] AwsError),
}

impl SweepError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Usage { .. } => 2,
            SweepError::ListRegions(_) => 1,
        }
    }
}

/// Sweeps every region in `options` concurrently: the whole `sweep` command.
pub async fn sweep_once(
    aws: &Aws,
    clock: &dyn Clock,
    options: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    let names = resolve_regions(aws, &options.regions)
        .await
        .map_err(|err| match err {
            LookupError::ListRegions(e) => SweepError::ListRegions(e),
            other => SweepError::Usage {
                flag: "--regions",
                message: other.to_string(),
            },
        })?;
    let cutoff = clock
        .now()
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let results = futures::future::join_all(
        names
            .iter()
            .map(|region| sweep_region(aws, region, cutoff, options.dry_run)),
    )
    .await;
    let mut report = SweepReport {
        cutoff,
        dry_run: options.dry_run,
        regions: Vec::new(),
        failed_regions: Vec::new(),
        unknown_regions: None,
    };
    for result in results {
        match result {
            Ok(region) => {
                for rule in &region.malformed {
                    tracing::warn!(region = %region.region, group = %rule.group_id, rule = %rule.id, expires_at = rule.tags.get(allowlist_core::ingress::tags::EXPIRES_AT).map(String::as_str).unwrap_or("(missing)"), "a rule tagged allowlist:managed-by has no valid allowlist:expires-at; leaving it alone");
                }
                if !options.dry_run && !region.revoked.is_empty() {
                    tracing::info!(region = %region.region, rules = region.revoked.len(), groups = region.groups(), "revoked expired rules");
                }
                for rule in &region.revoked {
                    tracing::debug!(region = %region.region, group = %rule.group_id, rule = %rule.id, grant = rule.grant_id().unwrap_or("?"), "revoked");
                }
                report.regions.push(region);
            }
            // Logged with the summary (report::swept), once.
            Err(err) => report.failed_regions.push(err),
        }
    }
    report.regions.sort_by(|a, b| a.region.cmp(&b.region));
    report
        .failed_regions
        .sort_by(|a, b| a.region.cmp(&b.region));
    if !report.failed_regions.is_empty() {
        let failed: Vec<&str> = report
            .failed_regions
            .iter()
            .map(|e| e.region.as_str())
            .collect();
        if let RegionFailure::Unknown(message) = regions::explain(aws, &failed).await {
            report.unknown_regions = Some(message);
        }
    }
    Ok(report)
}
