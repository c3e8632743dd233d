//! The doors file: what each door opens (region, security groups, protocol, ports), for how long
//! (`default_ttl`, `max_ttl`), and who may knock (`allow_claims` for OIDC tokens, `allow_keys` for
//! API keys). Read in two steps, as TOML into [`RawDoor`], then checked into [`Door`]; every
//! problem names its door.

use crate::claims::ClaimRule;
use allowlist_core::duration;
use allowlist_core::ingress::{check_group_id, Grant, Permission, PortRange, Protocol};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A door's default `default_ttl` and `max_ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(8 * 3600);

/// Why the doors file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DoorsError {
    #[error("cannot read the doors file {path}: {message}")]
    Read { path: String, message: String },
    #[error("the doors file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("the doors file {path} defines no door; add a [doors.NAME] table")]
    Empty { path: String },
    #[error("door {door:?}: {message}")]
    Door { door: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    doors: BTreeMap<String, RawDoor>,
}

/// One `[doors.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDoor {
    pub region: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub ports: Vec<i64>,
    #[serde(default)]
    pub port_ranges: Vec<String>,
    pub protocol: Option<String>,
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    #[serde(default)]
    pub allow_claims: BTreeMap<String, ClaimValue>,
    #[serde(default)]
    pub allow_keys: Vec<String>,
}

/// A claim pattern as written: one pattern, or a list of which any may match.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClaimValue {
    One(String),
    Any(Vec<String>),
}

/// A checked door.
#[derive(Debug, Clone)]
pub struct Door {
    pub name: String,
    pub region: String,
    pub group_ids: Vec<String>,
    pub protocol: Protocol,
    pub ports: Vec<PortRange>,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// OIDC: every rule must match the token's claims. Empty: no token opens this door.
    pub allow_claims: Vec<ClaimRule>,
    /// API-key names allowed on this door.
    pub allow_keys: Vec<String>,
}

impl Door {
    /// The grant a knock from `cidr` makes on this door.
    pub fn grant(
        &self,
        id: String,
        cidr: IpNet,
        granted_by: String,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Grant {
        Grant {
            id,
            region: self.region.clone(),
            group_ids: self.group_ids.clone(),
            protocol: self.protocol,
            ports: self.ports.clone(),
            cidrs: vec![cidr],
            description: Some(format!("allowlist-knock door {}", self.name)),
            user_tags: BTreeMap::new(),
            created_at,
            expires_at,
            granted_by,
            ephemeral: false,
        }
    }

    /// What a knock from `cidr` opens, per security group.
    pub fn permissions(&self, cidr: IpNet) -> Vec<Permission> {
        self.grant(
            String::new(),
            cidr,
            String::new(),
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH,
        )
        .permissions()
    }

    /// Whether `(protocol, ports)` of a rule is one this door opens (any CIDR).
    pub fn opens_ports(&self, rule: &allowlist_core::ingress::Rule) -> bool {
        let Some(perm) = rule.permission() else {
            return false;
        };
        self.group_ids.contains(&rule.group_id)
            && perm.protocol == self.protocol
            && self
                .permissions(perm.cidr)
                .iter()
                .any(|p| p.ports == perm.ports)
    }
}

/// The checked doors, by name.
#[derive(Debug, Clone, Default)]
pub struct Doors {
    pub doors: BTreeMap<String, Door>,
}

impl Doors {
    pub fn get(&self, name: &str) -> Option<&Door> {
        self.doors.get(name)
    }

    /// Reads and checks the doors file; `default_region` is for doors without a `region`.
    pub fn load(path: &Path, default_region: Option<&str>) -> Result<Doors, DoorsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DoorsError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Doors::parse(&text, &shown, default_region)
    }

    /// Checks the text of a doors file (`path` only names it in errors).
    pub fn parse(
        text: &str,
        path: &str,
        default_region: Option<&str>,
    ) -> Result<Doors, DoorsError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| DoorsError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        if raw.doors.is_empty() {
            return Err(DoorsError::Empty {
                path: path.to_owned(),
            });
        }
        let mut doors = BTreeMap::new();
        for (name, door) in raw.doors {
            let checked =
                check_door(&name, door, default_region).map_err(|message| DoorsError::Door {
                    door: name.clone(),
                    message,
                })?;
            doors.insert(name, checked);
        }
        Ok(Doors { doors })
    }
}

/// Door names appear in URL paths and rule descriptions.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("door names are 1-64 characters of a-z, 0-9, - and _".to_owned())
    }
}

fn check_door(name: &str, raw: RawDoor, default_region: Option<&str>) -> Result<Door, String> {
    check_name(name)?;
    let region = raw
        .region
        .or_else(|| default_region.map(str::to_owned))
        .ok_or("no region: set region in the door, or --region / AWS_REGION")?;
    allowlist_core::region::check_name(&region).map_err(|m| format!("region: {m}"))?;
    if raw.security_group_ids.is_empty() {
        return Err("security_group_ids is empty; name at least one sg-… group".to_owned());
    }
    for id in &raw.security_group_ids {
        check_group_id(id).map_err(|m| format!("security_group_ids: {m}"))?;
    }
    let protocol_name = raw.protocol.as_deref().unwrap_or("tcp");
    let protocol = Protocol::parse(protocol_name).ok_or_else(|| {
        format!(
            "protocol {protocol_name:?} is unknown; use one of {}",
            Protocol::NAMES.join(", ")
        )
    })?;
    let mut ports = Vec::new();
    for port in &raw.ports {
        let port = u16::try_from(*port)
            .map_err(|_| format!("port {port} is out of range; ports are 0-65535"))?;
        ports.push(PortRange::single(port));
    }
    for range in &raw.port_ranges {
        ports.push(PortRange::parse(range).map_err(|m| format!("port_ranges: {m}"))?);
    }
    ports.sort();
    ports.dedup();
    if protocol.has_ports() && ports.is_empty() {
        return Err(format!(
            "no ports: a {protocol} door needs ports and/or port_ranges"
        ));
    }
    if !protocol.has_ports() && !ports.is_empty() {
        return Err(format!(
            "{protocol} has no ports; leave ports and port_ranges out"
        ));
    }
    let ttl = |field: &str, value: Option<&str>, default: Duration| match value {
        None => Ok(default),
        Some(v) => duration::parse_positive(v).map_err(|e| format!("{field}: {e}")),
    };
    let max_ttl = ttl("max_ttl", raw.max_ttl.as_deref(), DEFAULT_MAX_TTL)?;
    let default_ttl = ttl(
        "default_ttl",
        raw.default_ttl.as_deref(),
        DEFAULT_TTL.min(max_ttl),
    )?;
    if default_ttl > max_ttl {
        return Err(format!(
            "default_ttl {} is above max_ttl {}",
            duration::format(default_ttl),
            duration::format(max_ttl)
        ));
    }
    let mut allow_claims = Vec::new();
    for (claim, value) in raw.allow_claims {
        let patterns = match value {
            ClaimValue::One(p) => vec![p],
            ClaimValue::Any(ps) if ps.is_empty() => {
                return Err(format!(
                    "allow_claims.{claim} is an empty list, which nothing matches"
                ))
            }
            ClaimValue::Any(ps) => ps,
        };
        allow_claims.push(ClaimRule::new(&claim, &patterns));
    }
    if allow_claims.is_empty() && raw.allow_keys.is_empty() {
        return Err("no way in: set allow_claims (OIDC) and/or allow_keys (API keys)".to_owned());
    }
    Ok(Door {
        name: name.to_owned(),
        region,
        group_ids: raw.security_group_ids,
        protocol,
        ports,
        default_ttl,
        max_ttl,
        allow_claims,
        allow_keys: raw.allow_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[doors.bastion]
region             = "us-west-2"
security_group_ids = ["sg-0123456789abcdef0"]
ports              = [22]
port_ranges        = ["8000-8100"]
default_ttl        = "1h"
max_ttl            = "8h"
allow_claims       = { email = "*@example.com", groups = ["ops", "sre"] }
allow_keys         = ["contractor-a"]

[doors.ping]
security_group_ids = ["sg-0123abcd"]
protocol           = "icmp"
allow_keys         = ["contractor-a"]
"#;

    fn door_error(text: &str) -> String {
        match Doors::parse(text, "doors.toml", Some("us-east-1")) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_file_reads_with_defaults() {
        let doors = Doors::parse(GOOD, "doors.toml", Some("eu-west-1")).expect("valid");
        let bastion = doors.get("bastion").expect("bastion");
        assert_eq!(bastion.region, "us-west-2");
        assert_eq!(bastion.protocol, Protocol::Tcp);
        assert_eq!(
            bastion.ports,
            vec![
                PortRange::single(22),
                PortRange {
                    from: 8000,
                    to: 8100
                }
            ]
        );
        assert_eq!(bastion.max_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(bastion.allow_claims.len(), 2);
        let ping = doors.get("ping").expect("ping");
        assert_eq!(ping.region, "eu-west-1");
        assert_eq!(ping.default_ttl, DEFAULT_TTL);
        assert_eq!(
            ping.permissions("203.0.113.7/32".parse().expect("cidr"))
                .len(),
            1
        );
    }

    #[test]
    fn every_problem_names_its_door() {
        let cases = [
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nallow_keys=[\"k\"]\n",
                "door \"a\": no ports",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"vpc-0123abcd\"]\nports=[22]\nallow_keys=[\"k\"]\n",
                "is not a security group id",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[70000]\nallow_keys=[\"k\"]\n",
                "port 70000 is out of range",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[22]\nprotocol=\"gre\"\nallow_keys=[\"k\"]\n",
                "protocol \"gre\" is unknown",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[22]\ndefault_ttl=\"9h\"\nmax_ttl=\"8h\"\nallow_keys=[\"k\"]\n",
                "default_ttl 9h is above max_ttl 8h",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[22]\n",
                "door \"a\": no way in",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[]\nports=[22]\nallow_keys=[\"k\"]\n",
                "security_group_ids is empty",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nport_ranges=[\"9-1\"]\nallow_keys=[\"k\"]\n",
                "lower port first",
            ),
            (
                "[doors.A]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[22]\nallow_keys=[\"k\"]\n",
                "door names are",
            ),
            (
                "[doors.a]\nsecurity_group_ids=[\"sg-0123abcd\"]\nports=[22]\nallow_key=[\"k\"]\n",
                "allow_key",
            ),
            ("", "defines no door"),
        ];
        for (text, want) in cases {
            let err = door_error(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
