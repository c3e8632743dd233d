//! What one provider process asks AWS once and remembers: the caller's public IP and ARN (the
//! same for every grant of an apply), the security groups already seen to exist, and the
//! snapshots that let a refresh read every grant of a region in one call.
//!
//! Refresh in bulk: one snapshot per region of every rule we manage, shared by all the
//! `ReadResource` calls of one provider process, so refreshing N grants costs one
//! DescribeSecurityGroupRules per region (plus pagination) instead of one per grant.
//! Terraform runs each walk (plan/refresh, apply, import) in a provider process of its own, and a
//! refresh walk only reads. To stay correct even if that ever changes, a snapshot is dropped by
//! any write the process makes in its region, and lives at most [`MAX_AGE`].

use allowlist_core::caller::{self, IpLookupError};
use allowlist_core::ingress::{self, Rule};
use allowlist_core::{Aws, AwsError};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Per provider process: what is asked once.
#[derive(Debug, Default)]
pub struct Caches {
    pub snapshots: RuleSnapshots,
    /// The caller's IP, detected once for all grants of an apply.
    detected: OnceCell<IpNet>,
    /// The caller's ARN, asked once.
    caller: OnceCell<String>,
    /// Security groups already seen to exist, as (region, group id).
    known_groups: Mutex<HashSet<(String, String)>>,
}

impl Caches {
    /// The caller's public IP as a /32 or /128, from `url` (once per process).
    pub async fn detected_cidr(&self, url: &str) -> Result<IpNet, IpLookupError> {
        let ip = self
            .detected
            .get_or_try_init(|| async {
                let ip = caller::public_ip(url).await?;
                tracing::info!(%ip, "detected caller IP");
                Ok::<_, IpLookupError>(IpNet::from(ip))
            })
            .await?;
        Ok(*ip)
    }

    /// The caller's ARN (once per process).
    pub async fn caller_arn(&self, aws: &Aws, region: &str) -> Result<String, AwsError> {
        self.caller
            .get_or_try_init(|| caller::caller_arn(aws, region))
            .await
            .cloned()
    }

    /// Which of `groups` do not exist, asking AWS only about groups not yet seen in this process.
    pub async fn missing_groups(
        &self,
        aws: &Aws,
        region: &str,
        groups: &[String],
    ) -> Result<Vec<String>, AwsError> {
        let unseen: Vec<String> = {
            let known = lock(&self.known_groups);
            groups
                .iter()
                .filter(|g| !known.contains(&(region.to_owned(), (*g).clone())))
                .cloned()
                .collect()
        };
        if unseen.is_empty() {
            return Ok(Vec::new());
        }
        let missing = ingress::missing_groups(aws, region, &unseen).await?;
        lock(&self.known_groups).extend(
            unseen
                .into_iter()
                .filter(|g| !missing.contains(g))
                .map(|g| (region.to_owned(), g)),
        );
        Ok(missing)
    }
}

/// A lock that survives a panic elsewhere (the data stays consistent: sets and maps only).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a snapshot may serve reads.
const MAX_AGE: Duration = Duration::from_secs(30);

type Snapshot = Arc<OnceCell<(Instant, Arc<Vec<Rule>>)>>;

/// Per-region snapshots of our rules.
#[derive(Debug, Default)]
pub struct RuleSnapshots {
    regions: Mutex<HashMap<String, Snapshot>>,
}

impl RuleSnapshots {
    /// The rules `grant_id` holds in `region`, from the region's snapshot (taken on first use by
    /// whichever read comes first; concurrent reads wait for that one call).
    pub async fn grant_rules(
        &self,
        aws: &Aws,
        region: &str,
        grant_id: &str,
    ) -> Result<Vec<Rule>, AwsError> {
        // A stale snapshot is replaced by a fresh one (shared again by concurrent reads).
        for _ in 0..2 {
            let cell = self.cell(region);
            let (taken, rules) = cell
                .get_or_try_init(|| async {
                    let rules = ingress::managed_rules(aws, region).await?;
                    Ok::<_, AwsError>((Instant::now(), Arc::new(rules)))
                })
                .await?
                .clone();
            if taken.elapsed() <= MAX_AGE {
                return Ok(rules
                    .iter()
                    .filter(|r| r.held_by(grant_id))
                    .cloned()
                    .collect());
            }
            self.invalidate_if_same(region, &cell);
        }
        ingress::grant_rules(aws, region, &[grant_id.to_owned()]).await
    }

    /// Drops `region`'s snapshot unless another read already replaced it.
    fn invalidate_if_same(&self, region: &str, cell: &Snapshot) {
        let mut regions = self.lock();
        if regions.get(region).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            regions.remove(region);
        }
    }

    /// Drops the snapshot of `region` (after a write there).
    pub fn invalidate(&self, region: &str) {
        self.lock().remove(region);
    }

    fn cell(&self, region: &str) -> Snapshot {
        self.lock().entry(region.to_owned()).or_default().clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Snapshot>> {
        lock(&self.regions)
    }
}
