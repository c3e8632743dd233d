//! Temporary ingress grants: security-group rules that carry their own expiry as tags, so the
//! sweep can remove them even if nobody who made them comes back.
//!
//! - [`model`]: pure. The tag contract ([`tags`]), grants, permissions, rules as AWS reports them,
//!   checks of user input, and [`plan_authorize`], the decision of what authorizing must do.
//! - [`holders`]: pure. How several grants share one identical rule (holder tags, and the
//!   join/release protocol that keeps a leaver from revoking what a joiner holds).
//! - [`listing`]: who holds access, read back from the rules' holder tags (all grants, or one
//!   grantor's).
//! - [`ec2`]: the AWS calls, in terms of the model's types.
//!
//! Errors, one type per family of operations:
//! - reading rules and groups ([`missing_groups`], [`grant_rules`], [`group_rules`],
//!   [`managed_rules`], [`list_grants`]) fails with [`AwsError`](crate::AwsError): the region, operation and code;
//! - changing a grant's rules ([`authorize`], [`release`], [`set_expiry`], [`retag`],
//!   [`remove_tags`], [`set_description`], [`revoke`]) fails with [`GrantError`], which adds the security group to blame and the
//!   refusals only a change can meet (a foreign or undated identical rule, a contended shared
//!   rule, a failed rollback).
//!
//! Rules without our `managed-by` tag are never modified or revoked.

pub mod ec2;
pub mod holders;
pub mod listing;
pub mod model;

pub(crate) use ec2::revoke_in_group;
pub use ec2::{
    authorize, grant_rules, group_rules, managed_rules, managed_rules_in, missing_groups, release,
    remove_tags, retag, revoke, set_description, set_expiry,
};
pub use holders::{Hold, RELEASE_STALE};
pub use listing::{grants_in, grants_of, list_grants, HeldGrant};
pub(crate) use model::{by_group, rule_ids};
pub use model::{
    check_cidr, check_description, check_group_id, check_user_tag_key, new_grant_id,
    plan_authorize, tags, AuthorizePlan, Grant, GrantError, Permission, PortRange, Protocol, Rule,
    MAX_DESCRIPTION, MIN_PREFIX_V4, MIN_PREFIX_V6,
};
