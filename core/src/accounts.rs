//! Which AWS accounts a lookup reaches, and as whom: role ARNs, account ids and session names
//! checked before any call (pure), the account list with its defaults and de-duplication, and the
//! credentials of an assumed role (one AssumeRole per role per process, cached and refreshed
//! before expiry).

use aws_credential_types::provider::{self, future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use std::fmt;
use std::time::{Duration, SystemTime};

/// A role to assume: the provider's own base role, or the reader role of one account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssumeRole {
    /// `arn:aws:iam::<account id>:role/<name>`, checked with [`check_role_arn`].
    pub role_arn: String,
    pub external_id: Option<String>,
    /// The session name CloudTrail shows in the account; defaults to [`DEFAULT_SESSION_NAME`].
    pub session_name: Option<String>,
}

impl AssumeRole {
    /// A role with no external id and the default session name.
    pub fn new(role_arn: impl Into<String>) -> Self {
        AssumeRole {
            role_arn: role_arn.into(),
            external_id: None,
            session_name: None,
        }
    }

    /// The account the role lives in (the ARN's account field), when the ARN is well formed.
    pub fn account_id(&self) -> Option<&str> {
        check_role_arn(&self.role_arn).ok()
    }
}

/// The session name of every AssumeRole that sets none: what the role's account sees in CloudTrail.
pub const DEFAULT_SESSION_NAME: &str = "allowlist";

/// Every ACTIVE account of the organization, reached through the same role name in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// The role to assume in each member account, e.g. `allowlist-egress-reader`.
    pub role_name: String,
    /// Account ids to leave out.
    pub exclude: Vec<String>,
    pub external_id: Option<String>,
}

/// The accounts to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// The account of the caller's own credentials.
    pub current: bool,
    /// Accounts reached by assuming a role in each.
    pub roles: Vec<AssumeRole>,
    /// Every account of the organization (the caller must be its management account or a
    /// delegated administrator).
    pub organization: Option<Organization>,
}

impl Default for Accounts {
    /// The caller's own account only: what a lookup did before accounts existed.
    fn default() -> Self {
        Accounts {
            current: true,
            roles: Vec::new(),
            organization: None,
        }
    }
}

/// Whether the caller's own account is looked in: as set, else only when no other account is
/// named (no `account` blocks, no organization).
pub fn include_current_account(set: Option<bool>, others_named: bool) -> bool {
    set.unwrap_or(!others_named)
}

/// One account a lookup reached or tried to: its id (once known) and the role assumed to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountRef {
    /// The 12-digit account id; None when the caller's own identity could not be read.
    pub id: Option<String>,
    /// The role assumed to reach it; None for the caller's own account.
    pub role_arn: Option<String>,
}

impl fmt::Display for AccountRef {
    /// `account 222222222222 (role arn:…): `, `account 123456789012: `, or nothing when unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, &self.role_arn) {
            (Some(id), Some(role)) => write!(f, "account {id} (role {role}): "),
            (Some(id), None) => write!(f, "account {id}: "),
            (None, Some(role)) => write!(f, "role {role}: "),
            (None, None) => Ok(()),
        }
    }
}

/// Checks a 12-digit AWS account id.
pub fn check_account_id(id: &str) -> Result<(), String> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{id:?} is not an AWS account id (12 digits)"))
    }
}

/// Checks an IAM role name (the last part of a role ARN, or `role_name` of an organization):
/// 1 to 64 of letters, digits and `+=,.@_-`.
pub fn check_role_name(name: &str) -> Result<(), String> {
    if (1..=64).contains(&name.len()) && name.bytes().all(role_name_byte) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an IAM role name: 1 to 64 letters, digits or +=,.@_- characters"
        ))
    }
}

fn role_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// Checks an IAM role ARN, `arn:<partition>:iam::<account id>:role/[<path>/]<name>`, and returns
/// its account id.
pub fn check_role_arn(arn: &str) -> Result<&str, String> {
    let bad = |why: &str| {
        Err(format!(
            "{arn:?} is not an IAM role ARN ({why}); expected arn:aws:iam::123456789012:role/NAME"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return bad("too few ':'-separated fields");
    };
    if prefix != "arn" {
        return bad("it does not start with \"arn:\"");
    }
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    if !partition_ok {
        return bad("unknown partition");
    }
    if service != "iam" || !region.is_empty() {
        return bad("not an IAM ARN: the service must be iam and the region empty");
    }
    if check_account_id(account).is_err() {
        return bad("the account field is not a 12-digit account id");
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return bad("not a role");
    };
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let path_ok = path_and_name
        .bytes()
        .all(|b| role_name_byte(b) || b == b'/');
    if check_role_name(name).is_err() || !path_ok {
        return bad("bad role name");
    }
    Ok(account)
}

/// Checks an AssumeRole session name: 2 to 64 of letters, digits and `+=,.@_-`.
pub fn check_session_name(name: &str) -> Result<(), String> {
    if (2..=64).contains(&name.len()) && name.bytes().all(role_name_byte) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a session name: 2 to 64 letters, digits or +=,.@_- characters"
        ))
    }
}

/// Checks an external id: 2 to 1224 of letters, digits and `+=,.@:/_-` (what STS accepts).
pub fn check_external_id(id: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("an external id is 2 to 1224 letters, digits or +=,.@:/_- characters".to_owned())
    }
}

/// The role ARN in `account_id` named `role_name`, in the partition of `like` (another ARN of
/// the same estate, e.g. the caller's), else `aws`.
pub fn role_arn_in(account_id: &str, role_name: &str, like: Option<&str>) -> String {
    let partition = like
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws");
    format!("arn:{partition}:iam::{account_id}:role/{role_name}")
}

/// How long before expiry cached credentials are refreshed.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Credentials from `inner`, fetched once and kept until shortly before they expire: an
/// AssumeRole provider behind it runs once per role per process, whatever the number of regions,
/// clients or concurrent first calls. Never logs the credentials.
#[derive(Debug)]
pub struct CachedCredentials {
    inner: SharedCredentialsProvider,
    last: tokio::sync::Mutex<Option<Credentials>>,
}

impl CachedCredentials {
    pub fn new(inner: SharedCredentialsProvider) -> Self {
        CachedCredentials {
            inner,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached credentials, or fresh ones when there are none or they expire soon. Concurrent
    /// callers wait for the one fetch.
    pub async fn get(&self) -> provider::Result {
        let mut last = self.last.lock().await;
        if let Some(creds) = last.as_ref() {
            let fresh_enough = creds
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh_enough {
                return Ok(creds.clone());
            }
        }
        let creds = self.inner.provide_credentials().await?;
        *last = Some(creds.clone());
        Ok(creds)
    }
}

impl ProvideCredentials for CachedCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_and_give_their_account() {
        for (arn, account) in [
            (
                "arn:aws:iam::222222222222:role/allowlist-egress-reader",
                "222222222222",
            ),
            (
                "arn:aws:iam::123456789012:role/path/to/Reader+1",
                "123456789012",
            ),
            ("arn:aws-us-gov:iam::123456789012:role/r", "123456789012"),
            ("arn:aws-cn:iam::123456789012:role/r", "123456789012"),
        ] {
            assert_eq!(check_role_arn(arn), Ok(account), "{arn}");
        }
        for arn in [
            "",
            "222222222222",
            "arn:aws:iam::222222222222:user/alice",
            "arn:aws:iam::22222222222:role/r",
            "arn:aws:iam:us-east-1:222222222222:role/r",
            "arn:aws:sts::222222222222:assumed-role/r/s",
            "arn:gcp:iam::222222222222:role/r",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:iam::222222222222:role/has space",
            "arn:aws:iam::222222222222",
        ] {
            let err = check_role_arn(arn).expect_err(arn);
            assert!(err.contains("is not an IAM role ARN"), "{err}");
        }
    }

    #[test]
    fn account_ids_session_names_and_external_ids() {
        assert!(check_account_id("444444444444").is_ok());
        for bad in ["", "4444", "44444444444a", "4444444444444"] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
        assert!(check_session_name("allowlist").is_ok());
        assert!(check_session_name("a").is_err());
        assert!(check_session_name(&"a".repeat(65)).is_err());
        assert!(check_session_name("has space").is_err());
        assert!(check_external_id("x").is_err());
        assert!(check_external_id("tenant:42/a").is_ok());
        assert!(check_role_name("allowlist-egress-reader").is_ok());
        assert!(check_role_name("a/b").is_err());
    }

    #[test]
    fn current_account_is_included_by_default_only_when_alone() {
        assert!(include_current_account(None, false));
        assert!(!include_current_account(None, true));
        assert!(include_current_account(Some(true), true));
        assert!(!include_current_account(Some(false), false));
    }

    #[test]
    fn account_refs_name_the_account_and_role() {
        let both = AccountRef {
            id: Some("222222222222".into()),
            role_arn: Some("arn:aws:iam::222222222222:role/r".into()),
        };
        assert_eq!(
            both.to_string(),
            "account 222222222222 (role arn:aws:iam::222222222222:role/r): "
        );
        let own = AccountRef {
            id: Some("123456789012".into()),
            role_arn: None,
        };
        assert_eq!(own.to_string(), "account 123456789012: ");
        assert_eq!(AccountRef::default().to_string(), "");
    }

    #[test]
    fn member_role_arns_follow_the_partition() {
        assert_eq!(
            role_arn_in("333333333333", "reader", None),
            "arn:aws:iam::333333333333:role/reader"
        );
        assert_eq!(
            role_arn_in(
                "333333333333",
                "reader",
                Some("arn:aws-us-gov:iam::1:user/x")
            ),
            "arn:aws-us-gov:iam::333333333333:role/reader"
        );
    }
}
