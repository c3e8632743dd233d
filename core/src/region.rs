//! AWS regions: the shape of a name and of a requested region list, checked before any call is
//! made (pure), and the one DescribeRegions call that lists what exists or is enabled.

use crate::aws::Aws;
use crate::error::AwsError;

/// The region list value that means "every region enabled for the account".
pub const ALL: &str = "all";

/// Checks that `name` has the shape of an AWS region name (`us-west-2`, `us-gov-east-1`,
/// `ap-southeast-2`): lower-case words separated by dashes, ending in a number.
/// Whether the region exists or is enabled is only known by asking AWS.
pub fn check_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('-').collect();
    let shaped = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[0].len() == 2
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    if shaped {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an AWS region name; expected something like \"us-west-2\" or \"eu-central-1\""
        ))
    }
}

/// Checks a requested region list element by element; unknown elements (`None`, a value
/// Terraform does not know yet) are skipped. Returns each problem with the index it is at.
/// [`ALL`] is accepted only when `allow_all` and then only as the one value.
pub fn list_problems(names: &[Option<&str>], allow_all: bool) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        if *name == ALL {
            if !allow_all || names.len() > 1 {
                problems.push((
                    i,
                    format!("\"{ALL}\" means every enabled region and must be the only value."),
                ));
            }
        } else if let Err(msg) = check_name(name) {
            problems.push((i, msg));
        }
    }
    problems
}

/// The regions of the partition, sorted: with `all`, every region whether enabled or not (tells a
/// region that does not exist from one that failed); without, only those enabled for the account.
/// One DescribeRegions call, in the home region.
pub async fn describe_regions(aws: &Aws, all: bool) -> Result<Vec<String>, AwsError> {
    Ok(list(aws, all)
        .await?
        .into_iter()
        // Without AllRegions AWS lists only enabled regions; the check is for emulators.
        .filter(|r| all || r.enabled)
        .map(|r| r.name)
        .collect())
}

/// A region of the partition and whether the account may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub name: String,
    /// False for an opt-in region the account has not enabled.
    pub enabled: bool,
}

async fn list(aws: &Aws, all: bool) -> Result<Vec<RegionInfo>, AwsError> {
    let home = aws.home_region().unwrap_or("us-east-1").to_owned();
    let out = aws
        .ec2(&home)
        .describe_regions()
        .set_all_regions(all.then_some(true))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&home, "DescribeRegions", e))?;
    let mut regions: Vec<RegionInfo> = out
        .regions()
        .iter()
        .filter_map(|r| {
            Some(RegionInfo {
                name: r.region_name()?.to_owned(),
                enabled: !matches!(r.opt_in_status(), Some("not-opted-in")),
            })
        })
        .collect();
    regions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(regions)
}

/// What failed regions turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionFailure {
    /// Some do not exist or are not enabled for the account; the message names them (fix the
    /// region list, don't retry).
    Unknown(String),
    /// They exist and are enabled (or we could not tell): a real failure.
    Failed,
}

/// Tells regions that do not exist or are not enabled from regions that failed, asked only
/// after something failed: one DescribeRegions(AllRegions) call. When that call fails too, the
/// failures are taken as real.
pub async fn explain(aws: &Aws, failed: &[&str]) -> RegionFailure {
    match list(aws, true).await {
        Ok(known) => classify(&known, failed),
        Err(err) => {
            tracing::debug!(error = %err, "could not list the regions to check the failed ones");
            RegionFailure::Failed
        }
    }
}

/// The pure part of [`explain`]: `known` is every region of the partition.
pub fn classify(known: &[RegionInfo], failed: &[&str]) -> RegionFailure {
    if known.is_empty() {
        // An empty answer proves nothing.
        return RegionFailure::Failed;
    }
    let quoted = |names: &[&str]| -> String {
        let names: Vec<String> = names.iter().map(|r| format!("{r:?}")).collect();
        names.join(", ")
    };
    let find = |name: &str| known.iter().find(|k| k.name == name);
    let unknown: Vec<&str> = failed
        .iter()
        .copied()
        .filter(|r| find(r).is_none())
        .collect();
    let disabled: Vec<&str> = failed
        .iter()
        .copied()
        .filter(|r| find(r).is_some_and(|k| !k.enabled))
        .collect();
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        let names: Vec<&str> = known.iter().map(|k| k.name.as_str()).collect();
        parts.push(format!(
            "no such region: {} (this account's partition has {})",
            quoted(&unknown),
            names.join(", ")
        ));
    }
    if !disabled.is_empty() {
        parts.push(format!(
            "not enabled for this account: {} (an opt-in region: enable it under AWS Regions in the account settings, or leave it out)",
            quoted(&disabled)
        ));
    }
    if parts.is_empty() {
        RegionFailure::Failed
    } else {
        RegionFailure::Unknown(parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, enabled: bool) -> RegionInfo {
        RegionInfo {
            name: name.to_owned(),
            enabled,
        }
    }

    #[test]
    fn unknown_and_disabled_regions_are_named_and_real_ones_are_failures() {
        let known = vec![
            info("ap-east-1", false),
            info("eu-west-1", true),
            info("us-east-1", true),
        ];
        assert_eq!(classify(&known, &["eu-west-1"]), RegionFailure::Failed);
        let RegionFailure::Unknown(message) = classify(&known, &["eu-west-1", "us-nowhere-1"])
        else {
            panic!("us-nowhere-1 is not a region");
        };
        assert!(
            message.starts_with("no such region: \"us-nowhere-1\""),
            "{message}"
        );
        assert!(!message.contains("\"eu-west-1\""), "{message}");
        let RegionFailure::Unknown(message) = classify(&known, &["ap-east-1"]) else {
            panic!("ap-east-1 is not enabled");
        };
        assert!(
            message.starts_with("not enabled for this account: \"ap-east-1\""),
            "{message}"
        );
        // An empty answer proves nothing.
        assert_eq!(classify(&[], &["us-nowhere-1"]), RegionFailure::Failed);
    }

    #[test]
    fn list_problems_point_at_their_index() {
        let problems = list_problems(&[Some("us-west-2"), Some("bogus"), None, Some(ALL)], true);
        let at: Vec<usize> = problems.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, vec![1, 3]);
        assert!(problems[1].1.contains("only value"), "{problems:?}");
        assert!(list_problems(&[Some(ALL)], true).is_empty());
        assert_eq!(list_problems(&[Some(ALL)], false).len(), 1);
    }

    #[test]
    fn accepts_real_region_names() {
        for name in [
            "us-west-2",
            "eu-central-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "il-central-1",
        ] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_malformed_names() {
        for name in [
            "",
            "all",
            "us-west",
            "US-WEST-2",
            "us_west_2",
            "us-west-2a",
            "usa-west-2",
            "-west-2",
            "us--2",
        ] {
            let err = check_name(name).expect_err(name);
            assert!(err.contains("is not an AWS region name"), "{err}");
        }
    }
}
