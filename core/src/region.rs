//! AWS region names: syntax checks done before any call is made.

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

#[cfg(test)]
mod tests {
    use super::check_name;

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
