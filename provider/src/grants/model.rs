//! The typed model of `allowlist_grants`: its attribute names (written once, here), the query
//! read from the configuration with each argument checked at its path, and the grants written
//! back as the data source's state.

use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics, ToValue, Tri, Value};
use crate::validators;
use allowlist_core::clock::format_instant;
use allowlist_core::ingress::{self, HeldGrant};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::SystemTime;

/// Attribute names of `allowlist_grants`.
pub mod attr {
    pub const REGIONS: &str = "regions";
    pub const SECURITY_GROUP_IDS: &str = "security_group_ids";
    pub const INCLUDE_EXPIRED: &str = "include_expired";
    pub const GRANTS: &str = "grants";
    pub const ID: &str = "id";

    /// Attributes of a `grants` element.
    pub mod grant {
        pub const ID: &str = "id";
        pub const REGION: &str = "region";
        pub const SECURITY_GROUP_IDS: &str = "security_group_ids";
        pub const CIDR_BLOCKS: &str = "cidr_blocks";
        pub const PORTS: &str = "ports";
        pub const PORT_RANGES: &str = "port_ranges";
        pub const PROTOCOL: &str = "protocol";
        pub const CREATED_AT: &str = "created_at";
        pub const EXPIRES_AT: &str = "expires_at";
        pub const GRANTED_BY: &str = "granted_by";
        pub const EPHEMERAL: &str = "ephemeral";
        pub const EXPIRED: &str = "expired";
        pub const RULE_IDS: &str = "rule_ids";
    }
}

/// The data source's arguments, checked.
#[derive(Debug, Default)]
pub struct Query {
    /// As configured (may be `["all"]`); empty means the provider's region.
    pub regions: Vec<String>,
    pub group_ids: Vec<String>,
    pub include_expired: bool,
    /// False when some argument is unknown (validation runs before values are known).
    pub fully_known: bool,
}

impl Query {
    /// Reads the configuration; type errors and bad values are diagnostics at their attribute.
    pub fn read(config: &Value) -> (Query, Diagnostics) {
        let mut d = Diagnostics::new();
        let mut query = Query {
            fully_known: true,
            ..Query::default()
        };
        let root = AttributePath::root();
        let list =
            |name: &str, d: &mut Diagnostics, known: &mut bool| -> Option<Vec<Tri<String>>> {
                match d.take(config.get::<Vec<Tri<String>>>(&root, name))? {
                    Tri::Known(list) => {
                        *known &= !list.iter().any(Tri::is_unknown);
                        Some(list)
                    }
                    tri => {
                        *known &= !tri.is_unknown();
                        None
                    }
                }
            };
        if let Some(regions) = list(attr::REGIONS, &mut d, &mut query.fully_known) {
            let path = AttributePath::of(attr::REGIONS);
            d.extend(validators::region_list(&regions, &path, true));
            if regions.is_empty() {
                d.push(
                    Diagnostic::error(
                        "No Regions",
                        "regions is empty; omit it to use the provider's region, or name regions.",
                    )
                    .at(path),
                );
            }
            query.regions = regions.into_iter().filter_map(Tri::known).collect();
        }
        if let Some(groups) = list(attr::SECURITY_GROUP_IDS, &mut d, &mut query.fully_known) {
            let path = AttributePath::of(attr::SECURITY_GROUP_IDS);
            let mut seen = BTreeSet::new();
            for (i, group) in groups.iter().enumerate() {
                let Tri::Known(group) = group else { continue };
                if let Err(msg) = ingress::check_group_id(group) {
                    d.push(Diagnostic::error("Invalid Security Group ID", msg).at(path.index(i)));
                } else if !seen.insert(group.clone()) {
                    d.push(
                        Diagnostic::error(
                            "Duplicate Security Group",
                            format!("{group} is listed twice."),
                        )
                        .at(path.index(i)),
                    );
                }
            }
            query.group_ids = groups.into_iter().filter_map(Tri::known).collect();
        }
        match d.take(config.get::<bool>(&root, attr::INCLUDE_EXPIRED)) {
            Some(Tri::Known(b)) => query.include_expired = b,
            Some(Tri::Unknown) => query.fully_known = false,
            _ => {}
        }
        (query, d)
    }
}

/// The data source's state: the configuration with `grants` (those of `grants` the query keeps
/// at `now`) and `id` (a digest of the regions read and the groups).
pub fn state(
    config: &Value,
    query: &Query,
    regions: &[String],
    grants: &[HeldGrant],
    now: SystemTime,
) -> Option<Value> {
    let mut state = config.clone();
    let map = state.as_map_mut()?;
    let kept = grants
        .iter()
        .filter(|g| query.include_expired || !g.expired(now))
        .map(|g| grant(g, now));
    map.insert(attr::GRANTS.into(), Value::List(kept.collect()));
    map.insert(attr::ID.into(), Value::string(query_id(regions, query)));
    Some(state)
}

/// One element of `grants`.
fn grant(g: &HeldGrant, now: SystemTime) -> Value {
    use attr::grant as a;
    let all = g.ports();
    let ports = all.iter().filter(|p| p.from >= 0 && p.from == p.to);
    let ranges = all.iter().filter(|p| p.from >= 0 && p.from != p.to);
    let instant =
        |t: Option<SystemTime>| t.map_or(Value::Null, |t| Value::string(format_instant(t)));
    Value::object([
        (a::ID, Value::string(&g.id)),
        (a::REGION, Value::string(&g.region)),
        (a::SECURITY_GROUP_IDS, Value::strings(g.group_ids())),
        (
            a::CIDR_BLOCKS,
            Value::strings(g.cidrs().iter().map(ToString::to_string)),
        ),
        (
            a::PORTS,
            Value::List(ports.map(|p| i64::from(p.from).to_value()).collect()),
        ),
        (
            a::PORT_RANGES,
            Value::strings(ranges.map(|p| format!("{}-{}", p.from, p.to))),
        ),
        (a::PROTOCOL, Value::string(&g.protocol)),
        (a::CREATED_AT, instant(g.created_at)),
        (a::EXPIRES_AT, instant(g.expires_at)),
        (
            a::GRANTED_BY,
            g.granted_by.as_ref().map_or(Value::Null, Value::string),
        ),
        (a::EPHEMERAL, Value::Bool(g.ephemeral)),
        (a::EXPIRED, Value::Bool(g.expired(now))),
        (a::RULE_IDS, Value::strings(g.rule_ids())),
    ])
}

/// A digest of what was asked: the regions read, the groups and `include_expired`.
fn query_id(regions: &[String], query: &Query) -> String {
    let mut h = Sha256::new();
    for region in regions {
        h.update(region.as_bytes());
        h.update([0]);
    }
    h.update([1]);
    for group in query.group_ids.iter().collect::<BTreeSet<_>>() {
        h.update(group.as_bytes());
        h.update([0]);
    }
    h.update([u8::from(query.include_expired)]);
    hex::encode(&h.finalize()[..16])
}
