//! The EC2 calls of temporary ingress: find rules (by grant, by group, all of ours), authorize a
//! grant atomically tagged (sharing identical rules of live grants) and rolled back on a partial
//! failure, release a grant's rules (revoking those nobody else holds), re-tag, re-describe and
//! revoke. Every function takes and returns the types of [`super::model`]; SDK types stay in here.

use super::holders::{
    check_join, hold_tags, holder_key, plan_release, releasing_key, Hold, JoinCheck, ReleasePlan,
};
use super::model::{
    by_group, plan_authorize, rule_ids, tags, AuthorizePlan, Grant, GrantError, Permission,
    PortRange, Protocol, Rule,
};
use crate::aws::Aws;
use crate::clock::format_instant;
use crate::error::AwsError;
use crate::paging::Pages;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroupRule,
    SecurityGroupRuleRequest, SecurityGroupRuleUpdate, Tag, TagSpecification,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant, SystemTime};

/// Rules of one security group per authorize/revoke call, and tags per CreateTags call.
const TAG_BATCH: usize = 500;
/// Page size for DescribeSecurityGroupRules (the API's maximum).
const RULE_PAGE: i32 = 1000;
/// Filter values per filter that AWS accepts in one request.
const FILTER_VALUES: usize = 200;
/// Plans an authorize makes against rules that change under it (a shared rule released or swept
/// between its read and its write, an identical rule created by a concurrent grant) before it
/// gives up.
const AUTHORIZE_ATTEMPTS: usize = 3;
/// How long a grant that joined a rule waits for another grant to finish releasing it, and how
/// often it looks.
const RELEASE_WAIT: Duration = Duration::from_secs(10);
const RELEASE_POLL: Duration = Duration::from_millis(250);

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

/// The server-side filter for rules carrying our managed-by tag (callers re-check it).
fn managed() -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::MANAGED_BY))
        .values(tags::MANAGED_BY_VALUE)
        .build()
}

/// The rules the grants `grant_ids` hold in `region`, found by their holder tags, and by
/// `allowlist:grant-id` for rules made before rules were shared (two calls per 200 grants).
pub async fn grant_rules(
    aws: &Aws,
    region: &str,
    grant_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let mut rules: Vec<Rule> = Vec::new();
    for chunk in grant_ids.chunks(FILTER_VALUES) {
        let holders = Filter::builder()
            .name("tag-key")
            .set_values(Some(chunk.iter().map(|id| holder_key(id)).collect()))
            .build();
        let creators = Filter::builder()
            .name(format!("tag:{}", tags::GRANT_ID))
            .set_values(Some(chunk.to_vec()))
            .build();
        rules.extend(describe_rules(aws, region, vec![managed(), holders]).await?);
        rules.extend(describe_rules(aws, region, vec![managed(), creators]).await?);
    }
    // Checked again here: the result must not depend on the server honouring tag filters.
    rules.retain(|r| grant_ids.iter().any(|id| r.held_by(id)));
    rules.sort();
    rules.dedup_by(|a, b| a.id == b.id);
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
    managed_rules_in(aws, region, &[]).await
}

/// Every rule carrying our managed-by tag in `group_ids` (every group when empty) of `region`:
/// one call per page, and per 200 groups.
pub async fn managed_rules_in(
    aws: &Aws,
    region: &str,
    group_ids: &[String],
) -> Result<Vec<Rule>, AwsError> {
    let mut rules = Vec::new();
    if group_ids.is_empty() {
        rules = describe_rules(aws, region, vec![managed()]).await?;
    }
    for chunk in group_ids.chunks(FILTER_VALUES) {
        let groups = Filter::builder()
            .name("group-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        rules.extend(describe_rules(aws, region, vec![managed(), groups]).await?);
    }
    // Checked again here: the result must not depend on the server honouring filters.
    rules.retain(|r| r.is_managed() && (group_ids.is_empty() || group_ids.contains(&r.group_id)));
    rules.sort();
    rules.dedup_by(|a, b| a.id == b.id);
    Ok(rules)
}

fn aws_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Makes the grant on AWS: for each group, one AuthorizeSecurityGroupIngress whose rules carry the
/// grant's tags from the start. An identical rule another grant still holds is shared (the grant
/// adds its holder tag, then checks nobody was releasing it meanwhile: see [`super::holders`]).
/// Identical rules left by expired grants are revoked first and created again (never re-tagged
/// in place, which would race with a sweep). If anything fails, the grant releases whatever this
/// call gave it before the error is returned. Returns the grant's rules, sorted.
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
    let mut taken: Vec<Rule> = Vec::new();
    let cause = match authorize_attempts(aws, grant, now, &mut taken).await {
        Ok(rules) => return Ok(rules),
        Err(cause) => cause,
    };
    if taken.is_empty() {
        return Err(cause);
    }
    taken.sort();
    taken.dedup_by(|a, b| a.id == b.id);
    tracing::warn!(grant = %grant.id, rules = taken.len(), "authorize failed part-way; releasing what it took");
    match release(aws, region, &grant.id, &taken, now).await {
        Ok(()) => Err(cause),
        Err(rollback) => Err(GrantError::RollbackFailed {
            cause: Box::new(cause),
            rollback: Box::new(rollback),
            left_behind: taken.iter().map(|r| r.id.clone()).collect(),
        }),
    }
}

/// Plans and applies the grant against the groups' rules as they are, again when they changed
/// under it. Every rule created or joined is added to `taken` as soon as it is, for the rollback.
async fn authorize_attempts(
    aws: &Aws,
    grant: &Grant,
    now: SystemTime,
    taken: &mut Vec<Rule>,
) -> Result<Vec<Rule>, GrantError> {
    let region = grant.region.as_str();
    let mut contended = None;
    for attempt in 1..=AUTHORIZE_ATTEMPTS {
        let existing = group_rules(aws, region, &grant.group_ids)
            .await
            .map_err(|e| GrantError::aws(e, None))?;
        let AuthorizePlan {
            keep,
            join,
            replace,
            create,
        } = plan_authorize(grant, &existing, now)?;
        if !replace.is_empty() {
            // Not re-tagged in place: a sweep may already have listed the expired rule and be
            // about to revoke it by id, which would silently take this grant's access away. A
            // rule created anew has an id no sweep has seen. (The expired rules were due to go.)
            revoke(aws, region, &replace).await?;
            tracing::info!(grant = %grant.id, rules = replace.len(), "replaced expired rules of earlier grants");
        }
        let mut held = keep;
        let mut raced = None;
        for (group, perms) in create.iter().filter(|(_, perms)| !perms.is_empty()) {
            match authorize_group(aws, grant, group, perms).await {
                Ok(rules) => {
                    taken.extend(rules.iter().cloned());
                    held.extend(rules);
                }
                // Another grant created an identical rule since our read (the call is atomic:
                // nothing of it was created): plan again, and share it.
                Err(e) if is_duplicate(&e) => raced = Some((group.clone(), e)),
                Err(e) => return Err(e),
            }
        }
        if !join.is_empty() {
            // Taken before the first tag is written: a rollback must release whatever it tagged.
            taken.extend(join.iter().cloned());
            match join_rules(aws, grant, &join, now).await? {
                Joined::Held(rules) => held.extend(rules),
                Joined::Lost(rule) => {
                    contended = Some((
                        rule.group_id,
                        rule.id,
                        "was revoked while this grant joined it".to_owned(),
                    ));
                    continue;
                }
            }
        }
        if let Some((group, _)) = raced {
            tracing::debug!(grant = %grant.id, %group, attempt, "an identical rule appeared meanwhile; planning again");
            contended = Some((
                group,
                "-".to_owned(),
                "kept gaining identical rules from other grants".to_owned(),
            ));
            continue;
        }
        held.sort();
        held.dedup_by(|a, b| a.id == b.id);
        return Ok(held);
    }
    let (group_id, rule_id, reason) = contended.unwrap_or_default();
    Err(GrantError::Contended {
        group_id,
        rule_id,
        reason,
    })
}

fn is_duplicate(e: &GrantError) -> bool {
    matches!(e, GrantError::Aws { source, .. } if source.has_code("InvalidPermission.Duplicate"))
}

/// Whether a tag call failed because a rule it named is gone.
fn is_gone(e: &AwsError) -> bool {
    e.code
        .as_deref()
        .is_some_and(|c| c.ends_with(".NotFound") || c == "InvalidID")
}

/// What joining shared rules came to.
enum Joined {
    /// The grant holds them all (as read back, with its holder tag).
    Held(Vec<Rule>),
    /// This rule went (or lost our tag) before we could hold it: plan again.
    Lost(Rule),
}

/// Adds the grant's holder tag to rules other grants hold, reads them back, and waits (bounded)
/// while another grant is releasing one; then gives them the grant's description and user tags.
async fn join_rules(
    aws: &Aws,
    grant: &Grant,
    rules: &[Rule],
    now: SystemTime,
) -> Result<Joined, GrantError> {
    let region = grant.region.as_str();
    let hold = grant.hold();
    let mut by_tags: BTreeMap<Vec<(String, String)>, Vec<String>> = BTreeMap::new();
    for rule in rules {
        by_tags
            .entry(hold_tags(rule, &grant.id, &hold, now))
            .or_default()
            .push(rule.id.clone());
    }
    for (tag_set, ids) in &by_tags {
        match create_tags(aws, region, ids, tag_set).await {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {
                tracing::debug!(grant = %grant.id, "a shared rule went while joining it");
                return Ok(Joined::Lost(rules[0].clone()));
            }
            Err(e) => return Err(GrantError::aws(e, None)),
        }
    }
    tracing::info!(grant = %grant.id, rules = rules.len(), "sharing identical rules of live grants");
    let started = Instant::now();
    let held = loop {
        let current = group_rules(aws, region, &grant.group_ids)
            .await
            .map_err(|e| GrantError::aws(e, None))?;
        let clock = now + started.elapsed();
        let mut releasing = None;
        for rule in rules {
            let after = current.iter().find(|r| r.id == rule.id);
            match check_join(&grant.id, after, clock) {
                JoinCheck::Held => {}
                JoinCheck::Lost => return Ok(Joined::Lost(rule.clone())),
                JoinCheck::Releasing { grant_id } => releasing = Some((rule, grant_id)),
            }
        }
        let Some((rule, by)) = releasing else {
            break current
                .into_iter()
                .filter(|r| rules.iter().any(|j| j.id == r.id))
                .collect::<Vec<_>>();
        };
        if started.elapsed() >= RELEASE_WAIT {
            return Err(GrantError::Contended {
                group_id: rule.group_id.clone(),
                rule_id: rule.id.clone(),
                reason: format!(
                    "is still being released by grant {by} after {}s",
                    RELEASE_WAIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(RELEASE_POLL).await;
    };
    // The newest holder's words describe the rule (a replacement's new description, say).
    let user_tags: Vec<(String, String)> = grant.user_tags.clone().into_iter().collect();
    if !user_tags.is_empty() {
        retag(
            aws,
            region,
            &rule_ids(&held.iter().collect::<Vec<_>>()),
            &user_tags,
        )
        .await?;
    }
    remove_tags(aws, region, &held, &grant.user_tags).await?;
    set_description(aws, region, &held, grant.description.as_deref()).await?;
    Ok(Joined::Held(held))
}

/// Releases the rules `grant_id` holds: marks them as being released, reads them back, revokes
/// those no other live grant holds, and on the others removes only its own tags (their
/// `expires-at` becomes the latest remaining holder's). Rules already gone are success; rules
/// are revoked only by id.
pub async fn release(
    aws: &Aws,
    region: &str,
    grant_id: &str,
    rules: &[Rule],
    now: SystemTime,
) -> Result<(), GrantError> {
    if rules.is_empty() {
        return Ok(());
    }
    let marker = [(releasing_key(grant_id), format_instant(now))];
    let after = tag_still_there(aws, region, rules, &marker).await?;
    let ReleasePlan {
        revoke: gone,
        leave,
    } = plan_release(grant_id, &after, now);
    revoke(aws, region, &gone).await?;
    if leave.is_empty() {
        return Ok(());
    }
    tracing::info!(grant = %grant_id, rules = leave.len(), "leaving shared rules to the grants that still hold them");
    let ids: Vec<String> = leave.iter().map(|(r, _)| r.id.clone()).collect();
    let mine = [holder_key(grant_id), releasing_key(grant_id)];
    for chunk in ids.chunks(TAG_BATCH) {
        let result = aws
            .ec2(region)
            .delete_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(
                mine.iter().map(|k| Tag::builder().key(k).build()).collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "DeleteTags", e));
        match result {
            Ok(_) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(GrantError::aws(e, None)),
        }
    }
    let mut by_expiry: BTreeMap<SystemTime, Vec<String>> = BTreeMap::new();
    for (rule, until) in &leave {
        by_expiry.entry(*until).or_default().push(rule.id.clone());
    }
    for (until, ids) in by_expiry {
        let mirror = [(tags::EXPIRES_AT.to_owned(), format_instant(until))];
        match create_tags(aws, region, &ids, &mirror).await {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(GrantError::aws(e, None)),
        }
    }
    Ok(())
}

/// Sets `tags` on those of `rules` that still exist (a few attempts, as rules can go meanwhile)
/// and returns them as read back afterwards.
async fn tag_still_there(
    aws: &Aws,
    region: &str,
    rules: &[Rule],
    tags: &[(String, String)],
) -> Result<Vec<Rule>, GrantError> {
    let groups: Vec<String> = by_group(rules).into_keys().map(str::to_owned).collect();
    let wanted: HashSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let read = || async {
        let current = group_rules(aws, region, &groups)
            .await
            .map_err(|e| GrantError::aws(e, None))?;
        Ok::<_, GrantError>(
            current
                .into_iter()
                .filter(|r| wanted.contains(r.id.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    let mut ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
    for _ in 0..AUTHORIZE_ATTEMPTS {
        match create_tags(aws, region, &ids, tags).await {
            Ok(()) => return read().await,
            Err(e) if is_gone(&e) => ids = read().await?.into_iter().map(|r| r.id).collect(),
            Err(e) => return Err(GrantError::aws(e, None)),
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
    }
    Err(GrantError::Contended {
        group_id: groups.join(", "),
        rule_id: "-".to_owned(),
        reason: "kept losing rules while they were being tagged".to_owned(),
    })
}

/// Moves `grant_id`'s expiry on its `rules` to `hold`'s (an update of its ttl, a renewal): its
/// holder tag, and each rule's `expires-at` to the latest of it and the other holders'.
pub async fn set_expiry(
    aws: &Aws,
    region: &str,
    grant_id: &str,
    rules: &[Rule],
    hold: &Hold,
    now: SystemTime,
) -> Result<(), GrantError> {
    let mut by_tags: BTreeMap<Vec<(String, String)>, Vec<String>> = BTreeMap::new();
    for rule in rules {
        by_tags
            .entry(hold_tags(rule, grant_id, hold, now))
            .or_default()
            .push(rule.id.clone());
    }
    for (tag_set, ids) in by_tags {
        retag(aws, region, &ids, &tag_set).await?;
    }
    Ok(())
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
    create_tags(aws, region, rule_ids, tags)
        .await
        .map_err(|e| GrantError::aws(e, None))
}

/// CreateTags on `rule_ids`, 500 at a time.
async fn create_tags(
    aws: &Aws,
    region: &str,
    rule_ids: &[String],
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    for chunk in rule_ids.chunks(TAG_BATCH) {
        aws.ec2(region)
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .set_tags(Some(aws_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(region, "CreateTags", e))?;
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
