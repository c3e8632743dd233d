//! The EC2 calls of temporary ingress: find rules (by grant, by group, all of ours), authorize a
//! grant atomically tagged and rolled back on a partial failure, re-tag, re-describe and revoke.
//! Every function takes and returns the types of [`super::model`]; SDK types stay in here.

use super::model::{
    by_group, plan_authorize, rule_ids, tags, AuthorizePlan, Grant, GrantError, Permission,
    PortRange, Protocol, Rule,
};
use crate::aws::Aws;
use crate::error::AwsError;
use crate::paging::Pages;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, Tag, TagSpecification,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::SystemTime;

/// Rules of one security group per authorize/revoke call, and tags per CreateTags call.
const TAG_BATCH: usize = 500;
/// Page size for DescribeSecurityGroupRules (the API's maximum).
const RULE_PAGE: i32 = 1000;
/// Filter values per filter that AWS accepts in one request.
const FILTER_VALUES: usize = 200;

/// Our [`Rule`] from the SDK's; None for egress rules and rules without an id or group.
fn rule_from_aws(rule: &SecurityGroupRule) -> Option<Rule> {
    if rule.is_egress() == Some(true) {
        return None;
    }
    let cidr = rule
        .cidr_ipv4()
        .or(rule.cidr_ipv6())
        .and_then(|c| c.parse().ok());
    Some(Rule {
        group_id: rule.group_id()?.to_owned(),
        id: rule.security_group_rule_id()?.to_owned(),
        protocol: rule.ip_protocol().unwrap_or_default().to_owned(),
        ports: PortRange {
            from: rule.from_port().unwrap_or(-1),
            to: rule.to_port().unwrap_or(-1),
        },
        cidr,
        description: rule
            .description()
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        tags: rule
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    })
}

/// Which of `group_ids` do not exist in `region` (one DescribeSecurityGroups call).
pub async fn missing_groups(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<String>, AwsError> {
    let mut found = HashSet::new();
    for chunk in group_ids.chunks(FILTER_VALUES) {
        let out = aws
            .ec2(region)
            .describe_security_groups()
            .filters(
                Filter::builder()
                    .name("group-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DescribeSecurityGroups", e))?;
        found.extend(
            out.security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned)),
        );
    }
    Ok(group_ids
        .iter()
        .filter(|g| !found.contains(*g))
        .cloned()
        .collect())
}

/// Ingress rules matching `filters` in `region`, following pagination.
async fn describe_rules(
    aws: &Aws,
    region: &str,
    filters: Vec<Filter>,
) -> Result<Vec<Rule>, AwsError> {
    let client = aws.ec2(region);
    let mut rules = Vec::new();
    let mut pages = Pages::new(region, "DescribeSecurityGroupRules");
    loop {
        let page = client
            .describe_security_group_rules()
            .set_filters(Some(filters.clone()))
            .max_results(RULE_PAGE)
            .set_next_token(pages.token())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DescribeSecurityGroupRules", e))?;
        rules.extend(page.security_group_rules().iter().filter_map(rule_from_aws));
        if !pages.advance(page.next_token())? {
            break;
        }
    }
    rules.sort();
    Ok(rules)
}

/// The rules of the grants `grant_ids` in `region`, found by tag (one call per 200 grants).
pub async fn grant_rules(
    aws: &Aws,
    region: &str,
    grant_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let mut rules = Vec::new();
    for chunk in grant_ids.chunks(FILTER_VALUES) {
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{}", tags::MANAGED_BY))
                .values(tags::MANAGED_BY_VALUE)
                .build(),
            Filter::builder()
                .name(format!("tag:{}", tags::GRANT_ID))
                .set_values(Some(chunk.to_vec()))
                .build(),
        ];
        rules.extend(describe_rules(aws, region, filters).await?);
    }
    // Checked again here: the result must not depend on the server honouring tag filters.
    rules.retain(|r| {
        r.is_managed()
            && r.grant_id()
                .is_some_and(|g| grant_ids.iter().any(|id| id == g))
    });
    Ok(rules)
}

/// Every ingress rule of the given groups.
pub async fn group_rules(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let filters = vec![Filter::builder()
        .name("group-id")
        .set_values(Some(group_ids.to_vec()))
        .build()];
    let mut rules = describe_rules(aws, region, filters).await?;
    rules.retain(|r| group_ids.contains(&r.group_id));
    Ok(rules)
}

/// Every rule in `region` that carries our managed-by tag, of any grant (one call per page).
pub async fn managed_rules(aws: &Aws, region: &str) -> Result<Vec<Rule>, AwsError> {
    let filters = vec![Filter::builder()
        .name(format!("tag:{}", tags::MANAGED_BY))
        .values(tags::MANAGED_BY_VALUE)
        .build()];
    let mut rules = describe_rules(aws, region, filters).await?;
    rules.retain(Rule::is_managed);
    Ok(rules)
}

fn aws_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Makes the grant on AWS: for each group, one AuthorizeSecurityGroupIngress whose rules carry the
/// grant's tags from the start. Identical rules left by expired grants are revoked first and
/// created again (never re-tagged in place, which would race with a sweep). If anything fails,
/// every rule this call created is revoked again before the error is returned. Returns the
/// grant's rules, sorted.
pub async fn authorize(aws: &Aws, grant: &Grant, now: SystemTime) -> Result<Vec<Rule>, GrantError> {
    let region = grant.region.as_str();
    let missing = missing_groups(aws, region, &grant.group_ids)
        .await
        .map_err(|e| GrantError::aws(e, None))?;
    if !missing.is_empty() {
        return Err(GrantError::GroupsNotFound {
            region: region.to_owned(),
            group_ids: missing,
        });
    }
    let existing = group_rules(aws, region, &grant.group_ids)
        .await
        .map_err(|e| GrantError::aws(e, None))?;
    let AuthorizePlan {
        keep,
        replace,
        create,
    } = plan_authorize(grant, &existing, now)?;

    let mut created: Vec<Rule> = Vec::new();
    let result = async {
        if !replace.is_empty() {
            // Not re-tagged in place: a sweep may already have listed the expired rule and be
            // about to revoke it by id, which would silently take this grant's access away. A
            // rule created anew has an id no sweep has seen. (The expired rules were due to go.)
            revoke(aws, region, &replace).await?;
            tracing::info!(grant = %grant.id, rules = replace.len(), "replaced expired rules of earlier grants");
        }
        for (group, perms) in &create {
            if perms.is_empty() {
                continue;
            }
            let rules = authorize_group(aws, grant, group, perms).await?;
            created.extend(rules);
        }
        Ok::<(), GrantError>(())
    }
    .await;

    if let Err(cause) = result {
        if created.is_empty() {
            return Err(cause);
        }
        tracing::warn!(grant = %grant.id, rules = created.len(), "authorize failed part-way; revoking what it added");
        return match revoke(aws, region, &created).await {
            Ok(()) => Err(cause),
            Err(rollback) => Err(GrantError::RollbackFailed {
                cause: Box::new(cause),
                rollback: Box::new(rollback),
                left_behind: created.iter().map(|r| r.id.clone()).collect(),
            }),
        };
    }

    let mut all: Vec<Rule> = created;
    all.extend(keep);
    all.sort();
    Ok(all)
}

/// One AuthorizeSecurityGroupIngress for `perms` in `group`, tagged at creation.
async fn authorize_group(
    aws: &Aws,
    grant: &Grant,
    group: &str,
    perms: &[Permission],
) -> Result<Vec<Rule>, GrantError> {
    let region = grant.region.as_str();
    // One IpPermission per (protocol, ports), holding all its CIDRs.
    let mut by_ports: BTreeMap<(Protocol, PortRange), Vec<IpNet>> = BTreeMap::new();
    for perm in perms {
        by_ports
            .entry((perm.protocol, perm.ports))
            .or_default()
            .push(perm.cidr);
    }
    let ip_permissions: Vec<IpPermission> = by_ports
        .iter()
        .map(|((protocol, ports), cidrs)| {
            let mut p = IpPermission::builder()
                .ip_protocol(protocol.as_str())
                .from_port(ports.from)
                .to_port(ports.to);
            for cidr in cidrs {
                p = match cidr {
                    IpNet::V4(_) => p.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(cidr.to_string())
                            .set_description(grant.description.clone())
                            .build(),
                    ),
                    IpNet::V6(_) => p.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(cidr.to_string())
                            .set_description(grant.description.clone())
                            .build(),
                    ),
                };
            }
            p.build()
        })
        .collect();
    let out = aws
        .ec2(region)
        .authorize_security_group_ingress()
        .group_id(group)
        .set_ip_permissions(Some(ip_permissions))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroupRule)
                .set_tags(Some(aws_tags(&grant.tags())))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            GrantError::aws(
                AwsError::from_sdk(region, "AuthorizeSecurityGroupIngress", e),
                Some(group),
            )
        })?;
    let mut rules: Vec<Rule> = out
        .security_group_rules()
        .iter()
        .filter_map(rule_from_aws)
        .collect();
    if rules.len() != perms.len() {
        // Some servers list fewer rules than they created; ask again by tag.
        rules = grant_rules(aws, region, std::slice::from_ref(&grant.id))
            .await
            .map_err(|e| GrantError::aws(e, Some(group)))?
            .into_iter()
            .filter(|r| r.group_id == group && perms.iter().any(|p| r.opens(p)))
            .collect();
    }
    Ok(rules)
}

/// Sets `tags` (overwriting values) on the rules `rule_ids`.
pub async fn retag(
    aws: &Aws,
    region: &str,
    rule_ids: &[String],
    tags: &[(String, String)],
) -> Result<(), GrantError> {
    for chunk in rule_ids.chunks(TAG_BATCH) {
        aws.ec2(region)
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(aws_tags(tags)))
            .send()
            .await
            .map_err(|e| GrantError::aws(AwsError::from_sdk(region, "CreateTags", e), None))?;
    }
    Ok(())
}

/// Removes from `rules` every user tag that is not in `keep`.
pub async fn remove_tags(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    keep: &BTreeMap<String, String>,
) -> Result<(), GrantError> {
    let stale: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| r.user_tags().into_keys())
        .filter(|k| !keep.contains_key(k))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
    for chunk in ids.chunks(TAG_BATCH) {
        aws.ec2(region)
            .delete_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(
                stale
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| GrantError::aws(AwsError::from_sdk(region, "DeleteTags", e), None))?;
    }
    Ok(())
}

/// Sets the description of `rules` (one ModifySecurityGroupRules call per group), skipping rules
/// that already have it.
pub async fn set_description(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    description: Option<&str>,
) -> Result<(), GrantError> {
    let mut by_group: BTreeMap<&str, Vec<SecurityGroupRuleUpdate>> = BTreeMap::new();
    for rule in rules
        .iter()
        .filter(|r| r.description.as_deref() != description)
    {
        let Some(cidr) = rule.cidr else { continue };
        let mut request = SecurityGroupRuleRequest::builder()
            .ip_protocol(&rule.protocol)
            .from_port(rule.ports.from)
            .to_port(rule.ports.to)
            .description(description.unwrap_or(""));
        request = match cidr {
            IpNet::V4(_) => request.cidr_ipv4(cidr.to_string()),
            IpNet::V6(_) => request.cidr_ipv6(cidr.to_string()),
        };
        by_group.entry(&rule.group_id).or_default().push(
            SecurityGroupRuleUpdate::builder()
                .security_group_rule_id(&rule.id)
                .security_group_rule(request.build())
                .build(),
        );
    }
    for (group, updates) in by_group {
        aws.ec2(region)
            .modify_security_group_rules()
            .group_id(group)
            .set_security_group_rules(Some(updates))
            .send()
            .await
            .map_err(|e| {
                GrantError::aws(
                    AwsError::from_sdk(region, "ModifySecurityGroupRules", e),
                    Some(group),
                )
            })?;
    }
    Ok(())
}

/// Revokes `rules`, one call per security group. Rules that are already gone are success; rules
/// are only revoked by id, so nothing but these rules is touched.
pub async fn revoke(aws: &Aws, region: &str, rules: &[Rule]) -> Result<(), GrantError> {
    for (group, rules) in by_group(rules) {
        revoke_in_group(aws, region, group, rule_ids(&rules))
            .await
            .map_err(|e| GrantError::aws(e, Some(group)))?;
    }
    Ok(())
}

/// Revokes the rules `ids` of one security group in one call. Already gone (rule or group) is
/// success: the call is atomic, so on NotFound the ids that still exist are revoked again.
pub(crate) async fn revoke_in_group(
    aws: &Aws,
    region: &str,
    group: &str,
    ids: Vec<String>,
) -> Result<(), AwsError> {
    let client = aws.ec2(region);
    let call = |ids: Vec<String>| {
        client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_security_group_rule_ids(Some(ids))
            .send()
    };
    match call(ids.clone())
        .await
        .map_err(|e| AwsError::from_sdk(region, "RevokeSecurityGroupIngress", e))
    {
        Ok(_) => Ok(()),
        Err(e) if e.has_code("InvalidGroup.NotFound") => Ok(()),
        Err(e)
            if e.has_code("InvalidPermission.NotFound")
                || e.has_code("InvalidSecurityGroupRuleId.NotFound") =>
        {
            // The call is atomic: one missing id fails it all. Revoke whichever still exist.
            let still: Vec<String> = group_rules(aws, region, &[group.to_owned()])
                .await?
                .into_iter()
                .filter(|r| ids.contains(&r.id))
                .map(|r| r.id)
                .collect();
            if still.is_empty() {
                return Ok(());
            }
            match call(still)
                .await
                .map_err(|e| AwsError::from_sdk(region, "RevokeSecurityGroupIngress", e))
            {
                Ok(_) => Ok(()),
                // Someone else revoked them in between: gone is what we wanted.
                Err(e) if e.has_code("InvalidPermission.NotFound") => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
