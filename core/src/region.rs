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
    let home = aws.home_region().unwrap_or("us-east-1").to_owned();
    let out = aws
        .ec2(&home)
        .describe_regions()
        .set_all_regions(all.then_some(true))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&home, "DescribeRegions", e))?;
    let mut names: Vec<String> = out
        .regions()
        .iter()
        // Without AllRegions AWS lists only enabled regions; the check is for emulators.
        .filter(|r| all || !matches!(r.opt_in_status(), Some("not-opted-in")))
        .filter_map(|r| r.region_name().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

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
