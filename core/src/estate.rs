//! The estate: the accounts a lookup or a sweep reaches, each with its clients. The caller's own
//! account (its id from GetCallerIdentity), accounts behind assumed roles (one AssumeRole each,
//! checked up front so a refusal is one error naming the role), and an organization's ACTIVE
//! members; an account reached twice is kept once.

use crate::accounts::{role_arn_in, AccountRef, Accounts, AssumeRole};
use crate::aws::Aws;
use crate::caller;
use crate::error::AwsError;
use crate::organization;
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;

/// AssumeRole calls in flight at once (an organization may have hundreds of accounts).
const ASSUME_IN_FLIGHT: usize = 32;

/// One call of a lookup or sweep that failed, with the account it was made for.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{account}{error}")]
pub struct Failure {
    pub account: AccountRef,
    pub error: AwsError,
}

/// An account reached: how it is named in results and errors, and its clients.
pub struct Reached<'a> {
    pub account: AccountRef,
    pub aws: Handle<'a>,
}

/// The caller's own clients, or those of an assumed role.
pub enum Handle<'a> {
    Own(&'a Aws),
    Role(Arc<Aws>),
}

impl Handle<'_> {
    pub fn get(&self) -> &Aws {
        match self {
            Handle::Own(aws) => aws,
            Handle::Role(aws) => aws,
        }
    }
}

/// Reaches every account of `accounts`: the caller's own (its id from GetCallerIdentity), each
/// role (one AssumeRole, checked now so a refusal is one error naming the role), and the
/// organization's ACTIVE members. An account reached twice is kept once (the caller's own
/// credentials win). Returns the accounts reached and the failures of those that were not.
pub async fn reach<'a>(aws: &'a Aws, accounts: &Accounts) -> (Vec<Reached<'a>>, Vec<Failure>) {
    let mut failures = Vec::new();
    let home = aws.home_region().unwrap_or("us-east-1").to_owned();
    let mut reached = Vec::new();
    let mut me = None;
    if accounts.current || accounts.organization.is_some() {
        match caller::caller_identity(aws, &home).await {
            Ok(identity) => me = Some(identity),
            Err(error) => failures.push(Failure {
                account: AccountRef::default(),
                error,
            }),
        }
    }
    let mut seen = HashSet::new();
    if let (true, Some(me)) = (accounts.current, &me) {
        seen.insert(me.account_id.clone());
        reached.push(Reached {
            account: AccountRef {
                id: Some(me.account_id.clone()),
                role_arn: None,
            },
            aws: Handle::Own(aws),
        });
    }
    let mut roles: Vec<AssumeRole> = accounts.roles.clone();
    if let Some(org) = &accounts.organization {
        match organization::active_accounts(aws).await {
            Ok(ids) => roles.extend(ids.iter().filter(|id| !org.exclude.contains(id)).map(|id| {
                AssumeRole {
                    role_arn: role_arn_in(id, &org.role_name, me.as_ref().map(|m| m.arn.as_str())),
                    external_id: org.external_id.clone(),
                    session_name: None,
                }
            })),
            Err(error) => failures.push(Failure {
                account: AccountRef {
                    id: me.as_ref().map(|m| m.account_id.clone()),
                    role_arn: None,
                },
                error,
            }),
        }
    }
    roles.retain(|r| seen.insert(r.account_id().unwrap_or(&r.role_arn).to_owned()));
    let assumed: Vec<_> = futures::stream::iter(roles)
        .map(|role| async move {
            let account = aws.assumed(&role).await;
            let checked = account.check_assumed().await;
            (role, account, checked)
        })
        .buffer_unordered(ASSUME_IN_FLIGHT)
        .collect()
        .await;
    for (role, account, checked) in assumed {
        let account_ref = AccountRef {
            id: role.account_id().map(str::to_owned),
            role_arn: Some(role.role_arn.clone()),
        };
        match checked {
            Ok(()) => reached.push(Reached {
                account: account_ref,
                aws: Handle::Role(account),
            }),
            Err(error) => failures.push(Failure {
                account: account_ref,
                error,
            }),
        }
    }
    (reached, failures)
}
