//! `sweep`: revoke our expired temporary-ingress rules in every account and region asked,
//! concurrently.
//!
//! Unlike `publish`, a failing account or region does not stop the others: closing expired
//! access wherever we can is always better than closing it nowhere. The run still ends in an
//! error naming the accounts, regions and groups that failed.

use allowlist_core::accounts::Accounts;
use allowlist_core::clock::Clock;
use allowlist_core::egress::{resolve_regions, LookupError};
use allowlist_core::error::AwsError;
use allowlist_core::estate::{self, Failure};
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
    /// The accounts to sweep.
    pub accounts: Accounts,
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
    /// Every account × region that could be listed, sorted.
    pub regions: Vec<RegionSweep>,
    /// Accounts that could not be reached and regions whose rules could not be listed.
    pub failed_regions: Vec<Failure>,
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
                lines.push(format!(
                    "{}{}: {}",
                    region.account, failure.group_id, failure.error
                ));
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

/// Sweeps every account × region in `options` concurrently: the whole `sweep` command.
pub async fn sweep_once(
    aws: &Aws,
    clock: &dyn Clock,
    options: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    // Region names are checked before any account is reached.
    let requested =
        allowlist_core::egress::check_requested_regions(&options.regions).map_err(|err| {
            SweepError::Usage {
                flag: "--regions",
                message: err.to_string(),
            }
        })?;
    let (reached, mut failed) = estate::reach(aws, &options.accounts).await;
    let listed = futures::future::join_all(
        reached
            .iter()
            .map(|account| resolve_regions(account.aws.get(), &requested)),
    )
    .await;
    let mut work = Vec::new();
    for (n, (account, listed)) in reached.iter().zip(listed).enumerate() {
        match listed {
            Ok(names) => work.extend(names.into_iter().map(|r| (n, r))),
            // One account's region list failing is that account's failure; with one account it
            // is the sweep's, as before.
            Err(LookupError::ListRegions(e)) if reached.len() > 1 => failed.push(Failure {
                account: account.account.clone(),
                error: e,
            }),
            Err(LookupError::ListRegions(e)) => return Err(SweepError::ListRegions(e)),
            Err(other) => {
                return Err(SweepError::Usage {
                    flag: "--regions",
                    message: other.to_string(),
                })
            }
        }
    }
    let cutoff = clock
        .now()
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let reached = &reached;
    let results = futures::future::join_all(work.iter().map(|(n, region)| async move {
        let account = &reached[*n];
        let result = sweep_region(account.aws.get(), region, cutoff, options.dry_run).await;
        (account, result)
    }))
    .await;
    let mut report = SweepReport {
        cutoff,
        dry_run: options.dry_run,
        regions: Vec::new(),
        failed_regions: failed,
        unknown_regions: None,
    };
    for (account, result) in results {
        match result {
            Ok(mut region) => {
                region.account = account.account.clone();
                let who = region.account.id.as_deref().unwrap_or("-");
                for rule in &region.malformed {
                    tracing::warn!(account = who, region = %region.region, group = %rule.group_id, rule = %rule.id, expires_at = rule.tags.get(allowlist_core::ingress::tags::EXPIRES_AT).map(String::as_str).unwrap_or("(missing)"), "a rule tagged allowlist:managed-by has no valid allowlist:expires-at; leaving it alone");
                }
                if !options.dry_run && !region.revoked.is_empty() {
                    tracing::info!(account = who, region = %region.region, rules = region.revoked.len(), groups = region.groups(), "revoked expired rules");
                }
                for rule in &region.revoked {
                    tracing::debug!(account = who, region = %region.region, group = %rule.group_id, rule = %rule.id, grant = rule.grant_id().unwrap_or("?"), "revoked");
                }
                report.regions.push(region);
            }
            // Logged with the summary (report::swept), once.
            Err(error) => report.failed_regions.push(Failure {
                account: account.account.clone(),
                error,
            }),
        }
    }
    report
        .regions
        .sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    report
        .failed_regions
        .sort_by(|a, b| (&a.account, &a.error.region).cmp(&(&b.account, &b.error.region)));
    let region_failures: Vec<&str> = report
        .failed_regions
        .iter()
        .filter(|f| f.error.operation != "AssumeRole" && f.error.operation != "GetCallerIdentity")
        .map(|f| f.error.region.as_str())
        .collect();
    if !region_failures.is_empty() {
        if let RegionFailure::Unknown(message) = regions::explain(aws, &region_failures).await {
            report.unknown_regions = Some(message);
        }
    }
    Ok(report)
}
