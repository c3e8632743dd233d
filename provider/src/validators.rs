//! Small per-attribute checks shared by the provider block and the types, over core's pure checks:
//! each takes a value and the path to blame, and returns a diagnostic at that path.

use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics, Tri};
use allowlist_core::{duration, region};
use std::time::Duration;

/// A region name (`us-west-2`).
pub fn region_name(value: &str, path: &AttributePath) -> Result<(), Diagnostic> {
    region::check_name(value)
        .map_err(|msg| Diagnostic::error("Invalid Region", msg).at(path.clone()))
}

/// A list of region names, allowing `["all"]` when `allow_all`; unknown elements are skipped.
pub fn region_list(regions: &[Tri<String>], path: &AttributePath, allow_all: bool) -> Diagnostics {
    let names: Vec<Option<&str>> = regions
        .iter()
        .map(|r| r.as_known().map(String::as_str))
        .collect();
    let mut diags = Diagnostics::new();
    for (i, problem) in region::list_problems(&names, allow_all) {
        let summary = if names[i] == Some(region::ALL) {
            "Invalid Region List"
        } else {
            "Invalid Region"
        };
        diags.push(Diagnostic::error(summary, problem).at(path.index(i)));
    }
    diags
}

/// A duration greater than zero and at most 100 years (`ttl`, `max_ttl`, `request_timeout`).
pub fn positive_duration(value: &str, path: &AttributePath) -> Result<Duration, Diagnostic> {
    duration::parse_positive(value)
        .map_err(|e| Diagnostic::error("Invalid Duration", e.to_string()).at(path.clone()))
}

/// An absolute http:// or https:// URL (named redacted in the message).
pub fn url(value: &str, path: &AttributePath) -> Result<(), Diagnostic> {
    allowlist_core::url::check_http(value)
        .map_err(|msg| Diagnostic::error("Invalid URL", msg).at(path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_lists_point_at_the_element() {
        let list = [
            Tri::Known("us-west-2".to_owned()),
            Tri::Unknown,
            Tri::Known("bogus".to_owned()),
            Tri::Known("all".to_owned()),
        ];
        let diags = region_list(&list, &AttributePath::of("regions"), true);
        assert_eq!(diags.paths(), vec!["regions[2]", "regions[3]"]);
        let summaries: Vec<&str> = diags.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(summaries, vec!["Invalid Region", "Invalid Region List"]);
    }

    #[test]
    fn durations_are_positive_and_capped() {
        let path = AttributePath::of("ttl");
        assert_eq!(
            positive_duration("90m", &path),
            Ok(Duration::from_secs(5400))
        );
        for bad in ["0s", "101years", "soon"] {
            let d = positive_duration(bad, &path).expect_err(bad);
            assert_eq!(
                (d.summary.as_str(), d.path),
                ("Invalid Duration", Some(path.clone()))
            );
        }
    }

    #[test]
    fn urls_must_be_absolute_http() {
        let path = AttributePath::of("ip_lookup_url");
        assert!(url("https://checkip.amazonaws.com", &path).is_ok());
        assert!(url("127.0.0.1:5000", &path).is_err());
    }
}
