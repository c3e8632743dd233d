//! Refresh in bulk: one snapshot per region of every rule we manage, shared by all the
//! `ReadResource` calls of one provider process, so refreshing N grants costs one
//! DescribeSecurityGroupRules per region (plus pagination) instead of one per grant.
//!
//! Terraform runs each walk (plan/refresh, apply, import) in a provider process of its own, and a
//! refresh walk only reads. To stay correct even if that ever changes, a snapshot is dropped by
//! any write the process makes in its region, and lives at most [`MAX_AGE`].

use allowlist_core::ingress::{self, Rule};
use allowlist_core::{Aws, AwsError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long a snapshot may serve reads.
const MAX_AGE: Duration = Duration::from_secs(30);

type Snapshot = Arc<OnceCell<(Instant, Arc<Vec<Rule>>)>>;

/// Per-region snapshots of our rules.
#[derive(Debug, Default)]
pub struct RuleSnapshots {
    regions: Mutex<HashMap<String, Snapshot>>,
}

impl RuleSnapshots {
    /// The rules of `grant_id` in `region`, from the region's snapshot (taken on first use by
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
                    .filter(|r| r.grant_id() == Some(grant_id))
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Snapshot>> {
        match self.regions.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
