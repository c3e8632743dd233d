//! The one typed model of `allowlist_temporary_ingress`: its attribute names (written here and
//! nowhere else), [`Model`] read from and written to Terraform's values (configuration, plan and
//! state alike), the per-attribute checks of a configuration, each reporting at its own path, and
//! the conversions to and from core's grant types (the grant to make, a state rebuilt from rules).

use crate::tfplugin::value::FromValue;
use crate::tfplugin::{AttributePath, Diagnostic, Diagnostics, ToValue, Tri, Value};
use crate::validators;
use allowlist_core::clock::{format_instant, parse_instant};
use allowlist_core::duration;
use allowlist_core::ingress::{self, tags, PortRange, Protocol, Rule};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// Attribute names of `allowlist_temporary_ingress`.
pub mod attr {
    pub const SECURITY_GROUP_IDS: &str = "security_group_ids";
    pub const REGION: &str = "region";
    pub const PORTS: &str = "ports";
    pub const PORT_RANGES: &str = "port_ranges";
    pub const PROTOCOL: &str = "protocol";
    pub const CIDR_BLOCKS: &str = "cidr_blocks";
    pub const TTL: &str = "ttl";
    pub const DESCRIPTION: &str = "description";
    pub const TAGS: &str = "tags";
    pub const ALLOW_WORLD: &str = "allow_world";
    pub const ID: &str = "id";
    pub const CREATED_AT: &str = "created_at";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const RULE_IDS: &str = "rule_ids";
    pub const GRANTED_BY: &str = "granted_by";
    pub const EXPIRED: &str = "expired";

    /// What a grant computes when it is made: all unknown in the plan of a new grant.
    pub const MADE_BY_THE_GRANT: [&str; 6] =
        [ID, CREATED_AT, EXPIRES_AT, RULE_IDS, GRANTED_BY, EXPIRED];
}

/// A grant as Terraform holds it: the configuration, a plan or a state, each attribute in its
/// three states.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub security_group_ids: Tri<Vec<Tri<String>>>,
    pub region: Tri<String>,
    pub ports: Tri<Vec<Tri<i64>>>,
    pub port_ranges: Tri<Vec<Tri<String>>>,
    pub protocol: Tri<String>,
    pub cidr_blocks: Tri<Vec<Tri<String>>>,
    pub ttl: Tri<String>,
    pub description: Tri<String>,
    pub tags: Tri<BTreeMap<String, Tri<String>>>,
    pub allow_world: Tri<bool>,
    pub id: Tri<String>,
    pub created_at: Tri<String>,
    pub expires_at: Tri<String>,
    pub rule_ids: Tri<Vec<Tri<String>>>,
    pub granted_by: Tri<String>,
    /// Whether the grant had expired when it was last read: the plan's only source of time.
    pub expired: Tri<bool>,
}

impl Model {
    /// Reads an object; a value of the wrong type (only a malformed request sends one) is a
    /// diagnostic at its attribute.
    pub fn read(v: &Value) -> Result<Model, Diagnostics> {
        let root = AttributePath::root();
        let mut d = Diagnostics::new();
        let model = Model {
            security_group_ids: d
                .take(v.get(&root, attr::SECURITY_GROUP_IDS))
                .unwrap_or(Tri::Null),
            region: d.take(v.get(&root, attr::REGION)).unwrap_or(Tri::Null),
            ports: d
                .take(v.get::<Vec<Tri<Port>>>(&root, attr::PORTS))
                .map_or(Tri::Null, Port::numbers),
            port_ranges: d.take(v.get(&root, attr::PORT_RANGES)).unwrap_or(Tri::Null),
            protocol: d.take(v.get(&root, attr::PROTOCOL)).unwrap_or(Tri::Null),
            cidr_blocks: d.take(v.get(&root, attr::CIDR_BLOCKS)).unwrap_or(Tri::Null),
            ttl: d.take(v.get(&root, attr::TTL)).unwrap_or(Tri::Null),
            description: d.take(v.get(&root, attr::DESCRIPTION)).unwrap_or(Tri::Null),
            tags: d.take(v.get(&root, attr::TAGS)).unwrap_or(Tri::Null),
            allow_world: d.take(v.get(&root, attr::ALLOW_WORLD)).unwrap_or(Tri::Null),
            id: d.take(v.get(&root, attr::ID)).unwrap_or(Tri::Null),
            created_at: d.take(v.get(&root, attr::CREATED_AT)).unwrap_or(Tri::Null),
            expires_at: d.take(v.get(&root, attr::EXPIRES_AT)).unwrap_or(Tri::Null),
            rule_ids: d.take(v.get(&root, attr::RULE_IDS)).unwrap_or(Tri::Null),
            granted_by: d.take(v.get(&root, attr::GRANTED_BY)).unwrap_or(Tri::Null),
            expired: d.take(v.get(&root, attr::EXPIRED)).unwrap_or(Tri::Null),
        };
        if d.has_errors() {
            Err(d)
        } else {
            Ok(model)
        }
    }

    /// The whole object as Terraform reads it.
    pub fn to_value(&self) -> Value {
        Value::object([
            (attr::SECURITY_GROUP_IDS, self.security_group_ids.to_value()),
            (attr::REGION, self.region.to_value()),
            (attr::PORTS, self.ports.to_value()),
            (attr::PORT_RANGES, self.port_ranges.to_value()),
            (attr::PROTOCOL, self.protocol.to_value()),
            (attr::CIDR_BLOCKS, self.cidr_blocks.to_value()),
            (attr::TTL, self.ttl.to_value()),
            (attr::DESCRIPTION, self.description.to_value()),
            (attr::TAGS, self.tags.to_value()),
            (attr::ALLOW_WORLD, self.allow_world.to_value()),
            (attr::ID, self.id.to_value()),
            (attr::CREATED_AT, self.created_at.to_value()),
            (attr::EXPIRES_AT, self.expires_at.to_value()),
            (attr::RULE_IDS, self.rule_ids.to_value()),
            (attr::GRANTED_BY, self.granted_by.to_value()),
            (attr::EXPIRED, self.expired.to_value()),
        ])
    }

    /// `ttl` as a duration, when known and well formed.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
            .as_known()
            .and_then(|t| duration::parse_positive(t).ok())
    }

    /// `expires_at` as an instant, when known and well formed.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at.as_known().and_then(|t| parse_instant(t))
    }

    /// `created_at` as an instant, when known and well formed.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.created_at.as_known().and_then(|t| parse_instant(t))
    }

    /// The protocol: tcp when null (the default), None when unknown or not one we know.
    pub fn protocol(&self) -> Option<Protocol> {
        match &self.protocol {
            Tri::Known(p) => Protocol::parse(p),
            Tri::Null => Some(Protocol::Tcp),
            Tri::Unknown => None,
        }
    }

    /// The security groups, when the list and every element are known.
    pub fn group_ids(&self) -> Option<Vec<String>> {
        wholly_known(&self.security_group_ids)
    }

    /// Every port range the grant opens (single ports as one-port ranges), distinct and sorted;
    /// elements not known or malformed are left out.
    pub fn port_set(&self) -> BTreeSet<PortRange> {
        let singles = known_elements(&self.ports)
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .map(PortRange::single);
        let ranges = known_elements(&self.port_ranges)
            .into_iter()
            .filter_map(|r| PortRange::parse(&r).ok());
        singles.chain(ranges).collect()
    }

    /// The user's tags that are known.
    pub fn known_tags(&self) -> BTreeMap<String, String> {
        match &self.tags {
            Tri::Known(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_known().map(|v| (k.clone(), v.clone())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Groups × port ranges × CIDRs: how many rules the stored grant should have, if it can say.
    pub fn expected_rule_count(&self) -> Option<usize> {
        let protocol = match &self.protocol {
            Tri::Known(p) => Protocol::parse(p)?,
            _ => Protocol::Tcp,
        };
        let ports = if protocol.has_ports() {
            self.port_set().len()
        } else {
            1
        };
        let cidrs: BTreeSet<String> = known_elements(&self.cidr_blocks).into_iter().collect();
        let groups = match &self.security_group_ids {
            Tri::Known(groups) => groups.len(),
            _ => 0,
        };
        (groups > 0 && !cidrs.is_empty()).then_some(groups * ports * cidrs.len())
    }

    /// How many rules the state says the grant has now.
    pub fn present_rule_count(&self) -> usize {
        match &self.rule_ids {
            Tri::Known(ids) => ids.len(),
            _ => 0,
        }
    }

    /// The grant a planned create asks for, with every value the apply needs; `cidrs` empty when
    /// the caller's IP is still to be detected.
    pub fn grant_request(&self) -> Result<GrantRequest, Diagnostics> {
        let region = self
            .region
            .as_known()
            .cloned()
            .ok_or_else(|| invalid_plan(attr::REGION))?;
        let ttl = self.ttl().ok_or_else(|| invalid_plan(attr::TTL))?;
        Ok(GrantRequest {
            region,
            group_ids: known_elements(&self.security_group_ids),
            protocol: self.protocol().unwrap_or(Protocol::Tcp),
            ports: self.port_set().into_iter().collect(),
            cidrs: known_elements(&self.cidr_blocks)
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            ttl,
            description: self.description.as_known().cloned(),
            tags: self.known_tags(),
        })
    }

    /// This state refreshed from the grant's rules as AWS has them `now`; None when every rule
    /// is gone. The earliest expiry of this grant's hold on any rule is when its access starts to
    /// end (a rule shared with a longer grant may stay; this grant's hold on it has still ended);
    /// the grant has expired once that instant is at or before `now`.
    pub fn refreshed(&self, rules: &[Rule], now: SystemTime) -> Option<Model> {
        if rules.is_empty() {
            return None;
        }
        let mut state = self.clone();
        state.rule_ids = rule_id_list(rules);
        let id = self.id.as_known().map_or("", String::as_str);
        if let Some(expires) = rules
            .iter()
            .filter_map(|r| r.hold_of(id))
            .map(|h| h.expires_at)
            .min()
        {
            state.expires_at = Tri::Known(format_instant(expires));
        }
        state.expired = state.expired_at(now);
        Some(state)
    }

    /// Whether the grant has expired at `now` (its `expires_at` at or before it); unknown when
    /// `expires_at` is.
    pub fn expired_at(&self, now: SystemTime) -> Tri<bool> {
        match self.expires_at() {
            Some(expires) => Tri::Known(expires <= now),
            None => Tri::Unknown,
        }
    }

    /// The state of grant `grant_id` rebuilt from its rules (import) at `now`; None when it has
    /// none.
    pub fn from_rules(
        region: &str,
        grant_id: &str,
        rules: &[Rule],
        now: SystemTime,
    ) -> Option<Model> {
        let first = rules.first()?;
        let groups: BTreeSet<&str> = rules.iter().map(|r| r.group_id.as_str()).collect();
        let perms: Vec<_> = rules.iter().filter_map(Rule::permission).collect();
        let protocol = perms.first().map(|p| p.protocol).unwrap_or(Protocol::Tcp);
        let port_set: BTreeSet<PortRange> = perms.iter().map(|p| p.ports).collect();
        let cidrs: BTreeSet<IpNet> = perms.iter().map(|p| p.cidr).collect();
        let with_ports = |single: bool| {
            port_set
                .iter()
                .filter(move |r| protocol.has_ports() && (r.from == r.to) == single)
        };
        let single: Vec<Tri<i64>> = with_ports(true)
            .map(|r| Tri::Known(i64::from(r.from)))
            .collect();
        let ranges: Vec<Tri<String>> = with_ports(false)
            .map(|r| Tri::Known(format!("{}-{}", r.from, r.to)))
            .collect();
        // The grant's own hold: a grant that shares rules made by another has its own times.
        let holds: Vec<_> = rules.iter().filter_map(|r| r.hold_of(grant_id)).collect();
        let created = holds.iter().find_map(|h| h.created_at);
        let granted_by = holds.iter().find_map(|h| h.granted_by.clone());
        let expires = holds.iter().map(|h| h.expires_at).min();
        let ttl = match (created, expires) {
            (Some(c), Some(e)) => e.duration_since(c).ok().map(duration::format),
            _ => None,
        };
        let user_tags = first.user_tags();
        let allow_world = cidrs
            .iter()
            .any(|c| ingress::check_cidr(&c.to_string(), false).is_err());
        let known = |s: Option<String>| s.map_or(Tri::Null, Tri::Known);
        let state = Model {
            security_group_ids: Tri::Known(
                groups.iter().map(|g| Tri::Known(g.to_string())).collect(),
            ),
            region: Tri::Known(region.to_owned()),
            ports: non_empty(single),
            port_ranges: non_empty(ranges),
            protocol: Tri::Known(protocol.as_str().to_owned()),
            cidr_blocks: Tri::Known(cidrs.iter().map(|c| Tri::Known(c.to_string())).collect()),
            ttl: known(ttl),
            description: known(first.description.clone()),
            tags: if user_tags.is_empty() {
                Tri::Null
            } else {
                Tri::Known(
                    user_tags
                        .into_iter()
                        .map(|(k, v)| (k, Tri::Known(v)))
                        .collect(),
                )
            },
            allow_world: Tri::Known(allow_world),
            id: Tri::Known(grant_id.to_owned()),
            created_at: known(created.map(format_instant)),
            expires_at: known(expires.map(format_instant)),
            rule_ids: rule_id_list(rules),
            granted_by: known(granted_by.or_else(|| first.tags.get(tags::GRANTED_BY).cloned())),
            expired: Tri::Null,
        };
        state.refreshed(rules, now)
    }
}

/// A port as Terraform sends it (any number): only a whole number is read, so that `22.5` gets a
/// message about ports rather than about 64-bit integers. Its range is checked with the rest.
struct Port(i64);

impl Port {
    fn numbers(list: Tri<Vec<Tri<Port>>>) -> Tri<Vec<Tri<i64>>> {
        match list {
            Tri::Known(ports) => Tri::Known(
                ports
                    .into_iter()
                    .map(|p| match p {
                        Tri::Known(Port(n)) => Tri::Known(n),
                        Tri::Unknown => Tri::Unknown,
                        Tri::Null => Tri::Null,
                    })
                    .collect(),
            ),
            Tri::Unknown => Tri::Unknown,
            Tri::Null => Tri::Null,
        }
    }
}

impl FromValue for Port {
    const EXPECTED: &'static str = "a port";

    fn from_known(value: &Value, path: &AttributePath) -> Result<Self, Diagnostic> {
        let whole = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let shown = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => "this".to_owned(),
        };
        whole.map(Port).ok_or_else(|| {
            Diagnostic::error(
                "Invalid Port",
                format!("{shown} is not a port: a port is a whole number from 0 to 65535."),
            )
            .at(path.clone())
        })
    }
}

/// A list, or null when it is empty (as the configuration would leave it).
fn non_empty<T>(list: Vec<T>) -> Tri<Vec<T>> {
    if list.is_empty() {
        Tri::Null
    } else {
        Tri::Known(list)
    }
}

/// What a planned create asks core to grant (before the id, times and caller are known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub region: String,
    pub group_ids: Vec<String>,
    pub protocol: Protocol,
    pub ports: Vec<PortRange>,
    pub cidrs: Vec<IpNet>,
    pub ttl: Duration,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

fn invalid_plan(name: &str) -> Diagnostics {
    Diagnostic::error(
        "Invalid Plan",
        format!("{name} is not known at apply; this is a bug in the provider."),
    )
    .into()
}

fn rule_id_list(rules: &[Rule]) -> Tri<Vec<Tri<String>>> {
    Tri::Known(rules.iter().map(|r| Tri::Known(r.id.clone())).collect())
}

/// The known elements of a list (none when the list itself is null or unknown).
fn known_elements<T: Clone>(list: &Tri<Vec<Tri<T>>>) -> Vec<T> {
    match list {
        Tri::Known(items) => items.iter().filter_map(|i| i.as_known().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// The list, when it and every element are known.
fn wholly_known<T: Clone>(list: &Tri<Vec<Tri<T>>>) -> Option<Vec<T>> {
    match list {
        Tri::Known(items) => items.iter().map(|i| i.as_known().cloned()).collect(),
        _ => None,
    }
}

/// Checks a configuration's known values, each at its own path; unknown values pass (they are
/// checked again once known).
pub fn check(config: &Model) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let Tri::Known(region) = &config.region {
        d.take(validators::region_name(
            region,
            &AttributePath::of(attr::REGION),
        ));
    }
    d.extend(check_groups(&config.security_group_ids));
    d.extend(check_ports(config));
    d.extend(check_cidrs(&config.cidr_blocks, &config.allow_world));
    if let Tri::Known(ttl) = &config.ttl {
        d.take(validators::positive_duration(
            ttl,
            &AttributePath::of(attr::TTL),
        ));
    }
    if let Tri::Known(desc) = &config.description {
        if let Err(msg) = ingress::check_description(desc) {
            d.push(
                Diagnostic::error("Invalid Description", msg)
                    .at(AttributePath::of(attr::DESCRIPTION)),
            );
        }
    }
    if let Tri::Known(map) = &config.tags {
        for key in map.keys() {
            if let Err(msg) = ingress::check_user_tag_key(key) {
                d.push(
                    Diagnostic::error("Invalid Tag Key", msg)
                        .at(AttributePath::of(attr::TAGS).key(key)),
                );
            }
        }
    }
    d
}

/// At least one group; each a well-formed id, none twice.
fn check_groups(groups: &Tri<Vec<Tri<String>>>) -> Diagnostics {
    let mut d = Diagnostics::new();
    let Tri::Known(groups) = groups else {
        return d;
    };
    let path = AttributePath::of(attr::SECURITY_GROUP_IDS);
    if groups.is_empty() {
        d.push(
            Diagnostic::error("No Security Groups", "Name at least one security group.")
                .at(path.clone()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        let Tri::Known(g) = g else { continue };
        if let Err(msg) = ingress::check_group_id(g) {
            d.push(Diagnostic::error("Invalid Security Group ID", msg).at(path.index(i)));
        } else if !seen.insert(g.clone()) {
            d.push(
                Diagnostic::error("Duplicate Security Group", format!("{g} is listed twice."))
                    .at(path.index(i)),
            );
        }
    }
    d
}

/// A known protocol; ports 0-65535 and well-formed ranges, each once; ports for tcp/udp and none
/// for icmp.
fn check_ports(config: &Model) -> Diagnostics {
    let mut d = Diagnostics::new();
    let protocol = match &config.protocol {
        Tri::Known(p) => match Protocol::parse(p) {
            Some(p) => Some(p),
            None => {
                d.push(
                    Diagnostic::error(
                        "Invalid Protocol",
                        format!("{p:?} is not one of {}.", Protocol::NAMES.join(", ")),
                    )
                    .at(AttributePath::of(attr::PROTOCOL)),
                );
                None
            }
        },
        Tri::Null => Some(Protocol::Tcp),
        Tri::Unknown => None,
    };
    d.extend(check_port_numbers(&config.ports));
    d.extend(check_port_ranges(&config.port_ranges));
    let has_ports = matches!(&config.ports, Tri::Known(v) if !v.is_empty());
    let has_ranges = matches!(&config.port_ranges, Tri::Known(v) if !v.is_empty());
    let ports_unknown = config.ports.is_unknown() || config.port_ranges.is_unknown();
    let at = AttributePath::of(attr::PORTS);
    match protocol {
        Some(p) if p.has_ports() && !has_ports && !has_ranges && !ports_unknown => d.push(
            Diagnostic::error(
                "No Ports",
                format!("A {p} grant needs ports and/or port_ranges, e.g. ports = [22]."),
            )
            .at(at),
        ),
        Some(p) if !p.has_ports() && (has_ports || has_ranges) => d.push(
            Diagnostic::error(
                "Ports Not Allowed",
                format!(
                    "{p} has no ports; remove ports and port_ranges (all {p} types are opened)."
                ),
            )
            .at(at),
        ),
        _ => {}
    }
    d
}

/// Each port 0-65535, none twice.
fn check_port_numbers(ports: &Tri<Vec<Tri<i64>>>) -> Diagnostics {
    let mut d = Diagnostics::new();
    let Tri::Known(ports) = ports else {
        return d;
    };
    let path = AttributePath::of(attr::PORTS);
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let Tri::Known(p) = p else { continue };
        if !(0..=65535).contains(p) {
            d.push(
                Diagnostic::error(
                    "Invalid Port",
                    format!("Port {p} is out of range; ports are 0-65535."),
                )
                .at(path.index(i)),
            );
        } else if !seen.insert(*p) {
            d.push(
                Diagnostic::error("Duplicate Port", format!("{p} is listed twice."))
                    .at(path.index(i)),
            );
        }
    }
    d
}

/// Each range well formed (`FROM-TO`), none twice.
fn check_port_ranges(ranges: &Tri<Vec<Tri<String>>>) -> Diagnostics {
    let mut d = Diagnostics::new();
    let Tri::Known(ranges) = ranges else {
        return d;
    };
    let path = AttributePath::of(attr::PORT_RANGES);
    let mut seen = BTreeSet::new();
    for (i, r) in ranges.iter().enumerate() {
        let Tri::Known(r) = r else { continue };
        match PortRange::parse(r) {
            Err(msg) => d.push(Diagnostic::error("Invalid Port Range", msg).at(path.index(i))),
            Ok(range) if !seen.insert(range) => d.push(
                Diagnostic::error("Duplicate Port Range", format!("{r} is listed twice."))
                    .at(path.index(i)),
            ),
            Ok(_) => {}
        }
    }
    d
}

/// At least one CIDR when set; each canonical, none twice, none over-broad unless allow_world
/// (an unknown allow_world defers that check).
fn check_cidrs(cidrs: &Tri<Vec<Tri<String>>>, allow_world: &Tri<bool>) -> Diagnostics {
    let mut d = Diagnostics::new();
    let Tri::Known(cidrs) = cidrs else {
        return d;
    };
    let path = AttributePath::of(attr::CIDR_BLOCKS);
    if cidrs.is_empty() {
        d.push(
            Diagnostic::error(
                "No CIDR Blocks",
                "cidr_blocks is empty; omit it to use your detected IP.",
            )
            .at(path.clone()),
        );
    }
    let world_ok = match allow_world {
        Tri::Known(b) => *b,
        Tri::Null => false,
        Tri::Unknown => true,
    };
    let mut seen = BTreeSet::new();
    for (i, c) in cidrs.iter().enumerate() {
        let Tri::Known(c) = c else { continue };
        match ingress::check_cidr(c, world_ok) {
            Ok(net) if !seen.insert(net) => d.push(
                Diagnostic::error("Duplicate CIDR Block", format!("{c} is listed twice."))
                    .at(path.index(i)),
            ),
            Ok(_) => {}
            Err(msg) => d.push(Diagnostic::error("Invalid CIDR Block", msg).at(path.index(i))),
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_data::ProviderDataCell;
    use crate::temporary_ingress::TemporaryIngress;
    use crate::tfplugin::value::Number;
    use crate::tfplugin::Resource;
    use allowlist_core::clock::SystemClock;
    use allowlist_core::ingress::Grant;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn resource() -> TemporaryIngress {
        TemporaryIngress::new(ProviderDataCell::default(), Arc::new(SystemClock::new()))
    }

    /// What validation says of a configuration: (the group ids if all known, the ttl, diagnostics).
    fn read_args(config: &Value) -> ((Option<Vec<String>>, Option<Duration>), Diagnostics) {
        let model = Model::read(config).expect("well typed");
        ((model.group_ids(), model.ttl()), check(&model))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::object(pairs.iter().map(|(k, v)| (*k, v.clone())));
        resource().schema().block.conform(&mut v).expect("conforms");
        v
    }

    fn num(n: i64) -> Value {
        Value::Number(Number::Int(n))
    }

    #[test]
    fn schema_is_valid_and_fully_described() {
        let r = resource();
        assert_eq!(r.schema().block.check(r.type_name()), Ok(()));
    }

    #[test]
    fn good_arguments_pass() {
        let ((groups, ttl), diags) = read_args(&obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "sg-0123456789abcdef0"]),
            ),
            ("ports", Value::List(vec![num(22), num(443)])),
            ("port_ranges", Value::strings(["8000-8100"])),
            (
                "cidr_blocks",
                Value::strings(["203.0.113.7/32", "2001:db8::/64"]),
            ),
            ("ttl", Value::string("90m")),
            ("description", Value::string("on-call (OPS-1)")),
            ("tags", Value::object([("team", Value::string("sre"))])),
        ]));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(ttl, Some(Duration::from_secs(5400)));
        assert_eq!(groups.map(|g| g.len()), Some(2));
    }

    #[test]
    fn each_bad_argument_points_at_itself() {
        let (_, diags) = read_args(&obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "nope", "sg-0123abcd"]),
            ),
            ("region", Value::string("moon-1")),
            ("ports", Value::List(vec![num(22), num(70000)])),
            ("port_ranges", Value::strings(["9-1"])),
            ("cidr_blocks", Value::strings(["0.0.0.0/0", "10.0.0.1/8"])),
            ("ttl", Value::string("0s")),
            ("description", Value::string("tab\there")),
            ("tags", Value::object([("allowlist:x", Value::string("y"))])),
        ]));
        assert_eq!(
            diags.paths(),
            vec![
                "region",
                "security_group_ids[1]",
                "security_group_ids[2]",
                "ports[1]",
                "port_ranges[0]",
                "cidr_blocks[0]",
                "cidr_blocks[1]",
                "ttl",
                "description",
                "tags[\"allowlist:x\"]",
            ]
        );
    }

    #[test]
    fn ports_are_required_for_tcp_and_refused_for_icmp() {
        let (_, diags) = read_args(&obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("ttl", Value::string("1h")),
        ]));
        assert_eq!(diags.paths(), vec!["ports"]);
        let (_, diags) = read_args(&obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("protocol", Value::string("icmp")),
            ("ports", Value::List(vec![num(22)])),
            ("ttl", Value::string("1h")),
        ]));
        assert_eq!(diags.paths(), vec!["ports"]);
    }

    #[test]
    fn world_cidrs_need_allow_world_and_unknown_allow_world_defers() {
        let base = [
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("ports", Value::List(vec![num(22)])),
            ("ttl", Value::string("1h")),
            ("cidr_blocks", Value::strings(["0.0.0.0/0"])),
        ];
        let with = |allow: Value| {
            let mut pairs = base.to_vec();
            pairs.push(("allow_world", allow));
            read_args(&obj(&pairs)).1
        };
        assert!(with(Value::Bool(true)).is_empty());
        assert!(with(Value::unknown()).is_empty());
        assert_eq!(with(Value::Bool(false)).paths(), vec!["cidr_blocks[0]"]);
    }

    fn rule(id: &str, group: &str, port: i32, cidr: &str, grant: &Grant) -> Rule {
        Rule {
            group_id: group.into(),
            id: id.into(),
            protocol: "tcp".into(),
            ports: PortRange {
                from: port,
                to: port,
            },
            cidr: cidr.parse().ok(),
            description: grant.description.clone(),
            tags: grant.tags().into_iter().collect(),
        }
    }

    /// An on-call grant made at `created`, lasting `ttl`, tagged team = sre.
    fn sample_grant(created: SystemTime, ttl: Duration) -> Grant {
        Grant {
            id: "grant-00000000000000aa".into(),
            region: "us-west-2".into(),
            group_ids: vec![],
            protocol: Protocol::Tcp,
            ports: vec![],
            cidrs: vec![],
            description: Some("on-call".into()),
            user_tags: BTreeMap::from([("team".into(), "sre".into())]),
            created_at: created,
            expires_at: created + ttl,
            granted_by: "arn:aws:iam::1:user/a".into(),
            ephemeral: false,
        }
    }

    #[test]
    fn import_rebuilds_the_state_from_rules() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let grant = sample_grant(created, Duration::from_secs(86_400));
        let rules = [
            rule("sgr-1", "sg-0123abcd", 22, "203.0.113.7/32", &grant),
            rule("sgr-2", "sg-0123abcd", 443, "203.0.113.7/32", &grant),
        ];
        let state = Model::from_rules("us-west-2", &grant.id, &rules, created)
            .expect("state")
            .to_value();
        assert_eq!(state.attr("ports"), &Value::List(vec![num(22), num(443)]));
        assert_eq!(state.attr("ttl"), &Value::string("24h"));
        assert_eq!(
            state.attr("expires_at"),
            &Value::string("2025-11-22T12:00:00Z")
        );
        assert_eq!(state.attr("tags").attr("team"), &Value::string("sre"));
        assert_eq!(state.attr("allow_world"), &Value::Bool(false));
        assert_eq!(state.attr("rule_ids"), &Value::strings(["sgr-1", "sgr-2"]));
        assert_eq!(state.attr("expired"), &Value::Bool(false));
        assert!(Model::from_rules("us-west-2", &grant.id, &[], created).is_none());
    }

    #[test]
    fn a_read_records_expiry_from_the_instant_it_passes() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        let grant = sample_grant(created, Duration::from_secs(3600));
        let rules = [rule("sgr-1", "sg-0123abcd", 22, "203.0.113.7/32", &grant)];
        let stored = Model::from_rules("us-west-2", &grant.id, &rules, created).expect("state");
        let read_at = |secs: u64| {
            stored
                .refreshed(&rules, created + Duration::from_secs(secs))
                .map(|m| m.expired)
        };
        assert_eq!(read_at(3599), Some(Tri::Known(false)));
        assert_eq!(read_at(3600), Some(Tri::Known(true)), "at the instant");
        assert_eq!(read_at(7200), Some(Tri::Known(true)));
        assert_eq!(stored.refreshed(&[], created), None, "every rule gone");
    }

    #[test]
    fn a_fractional_port_is_one_error_about_ports() {
        let config = obj(&[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            (
                "ports",
                Value::List(vec![Value::Number(Number::Float(22.5))]),
            ),
            ("ttl", Value::string("1h")),
        ]);
        let diags = Model::read(&config).expect_err("not a port");
        let found: Vec<(String, String)> = diags
            .iter()
            .map(|d| (d.summary.clone(), d.detail.clone()))
            .collect();
        assert_eq!(
            found,
            vec![(
                "Invalid Port".to_owned(),
                "22.5 is not a port: a port is a whole number from 0 to 65535.".to_owned()
            )]
        );
        assert_eq!(diags.paths(), vec!["ports[0]"]);
    }

    #[test]
    fn a_value_listed_twice_is_an_error_for_groups_cidrs_ports_and_ranges() {
        let (_, diags) = read_args(&obj(&[
            (
                "security_group_ids",
                Value::strings(["sg-0123abcd", "sg-0123abcd"]),
            ),
            ("ports", Value::List(vec![num(5022), num(5022)])),
            ("port_ranges", Value::strings(["8000-8100", "8000-8100"])),
            (
                "cidr_blocks",
                Value::strings(["203.0.113.7/32", "203.0.113.7/32"]),
            ),
            ("ttl", Value::string("1h")),
        ]));
        assert_eq!(
            diags.paths(),
            vec![
                "security_group_ids[1]",
                "ports[1]",
                "port_ranges[1]",
                "cidr_blocks[1]"
            ]
        );
    }
}
