//! AWS Organizations: the ACTIVE member accounts of the caller's organization (ListAccounts,
//! followed to the last page), for lookups over a whole organization.

use crate::aws::Aws;
use crate::error::AwsError;
use crate::paging::Pages;
use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};

/// Where Organizations is asked when no home region is set (its API lives in us-east-1).
const FALLBACK_REGION: &str = "us-east-1";

/// The ids of every ACTIVE account of the organization, sorted. Pages may be empty while a
/// `NextToken` still says more follow; only a null token ends the listing. Needs the management
/// account or a delegated administrator (else `AccessDeniedException`, or
/// `AWSOrganizationsNotInUseException` outside an organization).
pub async fn active_accounts(aws: &Aws) -> Result<Vec<String>, AwsError> {
    let region = aws.home_region().unwrap_or(FALLBACK_REGION).to_owned();
    let client = aws.organizations(&region);
    let mut ids = Vec::new();
    let mut pages = Pages::new(&region, "ListAccounts");
    loop {
        let page = client
            .list_accounts()
            .set_next_token(pages.token())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&region, "ListAccounts", e))?;
        ids.extend(
            page.accounts()
                .iter()
                .filter(|a| is_active(a))
                .filter_map(|a| a.id().map(str::to_owned)),
        );
        if !pages.advance(page.next_token())? {
            break;
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// `State` is the current field; `Status` is what older answers carry.
fn is_active(account: &Account) -> bool {
    match account.state() {
        Some(state) => *state == AccountState::Active,
        None => account.status() == Some(&AccountStatus::Active),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_accounts_count() {
        let with = |state: Option<AccountState>, status: Option<AccountStatus>| {
            Account::builder()
                .id("111111111111")
                .set_state(state)
                .set_status(status)
                .build()
        };
        assert!(is_active(&with(Some(AccountState::Active), None)));
        assert!(!is_active(&with(
            Some(AccountState::Suspended),
            Some(AccountStatus::Active)
        )));
        assert!(!is_active(&with(Some(AccountState::PendingClosure), None)));
        assert!(is_active(&with(None, Some(AccountStatus::Active))));
        assert!(!is_active(&with(None, Some(AccountStatus::Suspended))));
        assert!(!is_active(&with(None, None)));
    }
}
