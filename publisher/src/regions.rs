//! Telling a region that does not exist (a usage error: fix the flag) from one that failed
//! (an outage or a permission: the guard refuses), asked only after something failed.

use allowlist_core::region::describe_regions;
use allowlist_core::Aws;

/// What the failed regions turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionFailure {
    /// Some do not exist; the message names them.
    Unknown(String),
    /// They exist (or we could not tell): a real failure.
    Failed,
}

/// Asks AWS for every region of the partition (one DescribeRegions call) and checks `failed`
/// against it. When that call fails too, the failures are taken as real.
pub async fn explain(aws: &Aws, failed: &[&str]) -> RegionFailure {
    let known = match describe_regions(aws, true).await {
        Ok(known) => known,
        Err(err) => {
            tracing::debug!(error = %err, "could not list the regions to check the failed ones");
            return RegionFailure::Failed;
        }
    };
    classify(&known, failed)
}

/// The pure part of [`explain`].
pub fn classify(known: &[String], failed: &[&str]) -> RegionFailure {
    let unknown: Vec<&str> = failed
        .iter()
        .copied()
        .filter(|r| !known.iter().any(|k| k == r))
        .collect();
    if unknown.is_empty() || known.is_empty() {
        return RegionFailure::Failed;
    }
    let names: Vec<String> = unknown.iter().map(|r| format!("{r:?}")).collect();
    RegionFailure::Unknown(format!(
        "no such region: {} (this account's partition has {})",
        names.join(", "),
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_regions_are_named_and_real_ones_are_failures() {
        let known = vec!["eu-west-1".to_owned(), "us-east-1".to_owned()];
        assert_eq!(classify(&known, &["eu-west-1"]), RegionFailure::Failed);
        let RegionFailure::Unknown(message) = classify(&known, &["eu-west-1", "us-nowhere-1"])
        else {
            panic!("us-nowhere-1 is not a region");
        };
        assert!(message.contains("\"us-nowhere-1\""), "{message}");
        assert!(!message.contains("\"eu-west-1\""), "{message}");
        // An empty answer proves nothing.
        assert_eq!(classify(&[], &["us-nowhere-1"]), RegionFailure::Failed);
    }
}
