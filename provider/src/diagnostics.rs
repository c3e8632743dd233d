//! The one place where errors from `allowlist-core` become Terraform diagnostics: a summary that
//! reads as a title, a detail naming the region, operation and AWS error code, and the next step.

use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics};
use allowlist_core::egress::{Failure, LookupError};
use allowlist_core::ingress::GrantError;
use allowlist_core::{AwsError, AwsErrorKind};

/// What a user can do about a failed AWS call, judged from its error code and kind.
fn next_step(err: &AwsError) -> &'static str {
    match (err.operation, err.code.as_deref()) {
        ("AssumeRole", _) => {
            return "Check that the role exists, that its trust policy lets the provider's principal assume it \
                    (with this external id, if it requires one), and that the principal may sts:AssumeRole it.";
        }
        ("ListAccounts", Some("AWSOrganizationsNotInUseException")) => {
            return "The provider's account is not in an organization: list the accounts with account blocks instead.";
        }
        ("ListAccounts", Some(code)) if code.starts_with("AccessDenied") => {
            return "Listing an organization's accounts needs the organization's management account or a delegated \
                    administrator, with organizations:ListAccounts; or list the accounts with account blocks.";
        }
        _ => {}
    }
    match (err.code.as_deref(), err.kind) {
        (Some("AuthFailure" | "UnrecognizedClientException" | "InvalidClientTokenId"), _) => {
            "Check that the region exists and is enabled for the account, and that the credentials are valid there."
        }
        (Some(code), _) if code.starts_with("Unauthorized") || code == "AccessDenied" => {
            "Grant the caller permission for this operation (see the provider docs for the IAM policy)."
        }
        (Some(code), _) if code.contains("Throttl") || code == "RequestLimitExceeded" => {
            "AWS kept throttling after retries; try again later or look up fewer regions at once."
        }
        (_, AwsErrorKind::Timeout) => "AWS did not answer in time; check connectivity and try again.",
        (_, AwsErrorKind::Network) => {
            "Check network access to the AWS endpoint (or endpoint_url) and that the region name is right."
        }
        _ => "Try again; if it keeps failing, run with TF_LOG_PROVIDER=debug for details.",
    }
}

/// A failed AWS call as a diagnostic.
pub fn aws_error(summary: &str, err: &AwsError) -> Diagnostic {
    Diagnostic::error(summary, format!("{err}\n\n{}", next_step(err)))
}

/// What failed, as a diagnostic's title: the operation, the region and the account.
fn failure_summary(failure: &Failure) -> String {
    let err = &failure.error;
    let account = failure.account.id.as_deref();
    let of = account
        .map(|id| format!(" (account {id})"))
        .unwrap_or_default();
    match err.operation {
        "DescribeNatGateways" => format!("Unable to Look Up NAT Gateways in {}{of}", err.region),
        "DescribeAddresses" => format!("Unable to Look Up Elastic IPs in {}{of}", err.region),
        "DescribeRegions" => format!("Unable to List Enabled Regions{of}"),
        "AssumeRole" => match account {
            Some(id) => format!("Unable to Assume Role in Account {id}"),
            None => "Unable to Assume Role".to_owned(),
        },
        "ListAccounts" => "Unable to List the Organization's Accounts".to_owned(),
        "GetCallerIdentity" => "Unable to Identify the Current Account".to_owned(),
        _ => format!("Unable to Look Up Egress IPs in {}{of}", err.region),
    }
}

/// A failed egress lookup: one diagnostic per failure (account, region, call), pointing at the
/// region in `regions_attr` when the region came from the configuration, and at the role in
/// `roles_attr` (the blocks' path, their role ARNs, and the ARN's attribute name in a block) when
/// AssumeRole failed.
pub fn lookup_error(
    err: &LookupError,
    regions_attr: Option<(&AttributePath, &[String])>,
    roles_attr: Option<(&AttributePath, &[String], &str)>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let region_path = |region: &str| element_path(regions_attr, |n| n == region);
    match err {
        LookupError::Regions { asked, failures } => {
            for failure in failures {
                let error = &failure.error;
                let mut d = Diagnostic::error(
                    failure_summary(failure),
                    format!("{failure}\n\n{}", next_step(error)),
                );
                d.detail.push_str(&format!(
                    "\n\n{} of {asked} lookups failed. No list is produced unless every account and region \
                     answers, so nothing downstream receives a partial allowlist.",
                    failures.len()
                ));
                let path = match (error.operation, &failure.account.role_arn) {
                    ("AssumeRole", Some(role)) => roles_attr.and_then(|(path, arns, name)| {
                        element_path(Some((path, arns)), |r| r == role).map(|p| p.attr(name))
                    }),
                    ("DescribeNatGateways" | "DescribeAddresses", _) => region_path(&error.region),
                    _ => None,
                };
                if let Some(path) = path {
                    d = d.at(path);
                }
                diags.push(d);
            }
        }
        LookupError::ListRegions(failure) => {
            diags.push(aws_error("Unable to List Enabled Regions", failure));
        }
        LookupError::NoRegions | LookupError::BadRegion(_) => {
            let mut d = Diagnostic::error("No Usable Region", err.to_string());
            if let Some((path, _)) = regions_attr {
                d = d.at(path.clone());
            }
            diags.push(d);
        }
    }
    diags
}

/// Regions that do not exist or are not enabled (what [`allowlist_core::region::explain`] found
/// after a failure): a configuration error, not something to retry. `summary` names what failed;
/// the detail says why and then what AWS answered. It points at the first such region in
/// `regions_attr` when the regions came from the configuration.
pub fn unknown_regions(
    summary: &str,
    message: &str,
    failed: &[&str],
    aws_said: &str,
    regions_attr: Option<(&AttributePath, &[String])>,
) -> Diagnostic {
    let d = Diagnostic::error(
        summary,
        format!("{message}.\n\nNothing was looked up: fix the region list (or the provider's region). AWS answered: {aws_said}"),
    );
    match element_path(regions_attr, |n| failed.contains(&n)) {
        Some(path) => d.at(path),
        None => d,
    }
}

/// A failed change to a grant's rules, pointing at the security group to blame when there is one
/// and `groups_attr` (the attribute's path and its values) names it.
pub fn grant_error(
    summary: &str,
    err: &GrantError,
    groups_attr: Option<(&AttributePath, &[String])>,
) -> Diagnostic {
    let group_path = |group: &str| element_path(groups_attr, |g| g == group);
    let (detail, group) = match err {
        GrantError::Aws { source, group_id } => {
            let mut detail = format!("{source}\n\n{}", next_step(source));
            if source.has_code("RulesPerSecurityGroupLimitExceeded") {
                detail.push_str(" The security group has reached its rule limit; remove rules or use fewer ports and CIDRs.");
            }
            (detail, group_id.clone())
        }
        GrantError::GroupsNotFound {
            group_ids: missing, ..
        } => (err.to_string(), missing.first().cloned()),
        GrantError::ForeignRule { group_id, .. }
        | GrantError::Undated { group_id, .. }
        | GrantError::Contended { group_id, .. } => (err.to_string(), Some(group_id.clone())),
        GrantError::RollbackFailed { .. } => (err.to_string(), None),
    };
    let diagnostic = Diagnostic::error(summary, detail);
    match group.as_deref().and_then(group_path) {
        Some(path) => diagnostic.at(path),
        None => diagnostic,
    }
}

/// A failed authorize: as [`grant_error`], and it says that nothing was left behind unless the
/// rollback failed too (that error lists what was).
pub fn authorize_error(
    summary: &str,
    err: &GrantError,
    groups_attr: Option<(&AttributePath, &[String])>,
) -> Diagnostic {
    let mut diagnostic = grant_error(summary, err, groups_attr);
    if !matches!(err, GrantError::RollbackFailed { .. }) {
        diagnostic
            .detail
            .push_str("\n\nNo rule of this grant was left behind.");
    }
    diagnostic
}

/// The path of the first element of a list attribute (its path and values) that `wanted`
/// picks; None when there is no such attribute or element.
fn element_path(
    attr: Option<(&AttributePath, &[String])>,
    wanted: impl Fn(&str) -> bool,
) -> Option<AttributePath> {
    let (path, values) = attr?;
    values.iter().position(|v| wanted(v)).map(|i| path.index(i))
}
