//! The published ip-ranges document: AWS's `ip-ranges.json` schema (so existing tooling reads it)
//! and the plain-text list firewalls read, both rendered from a lookup's result.
//!
//! A document's *content* is its set of entries (prefix, region, service, border group);
//! `syncToken` and `createDate` only say when that content last changed. Comparing two documents
//! therefore means comparing entries, never bytes.

use crate::egress::EgressIps;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default `service` of every prefix.
pub const DEFAULT_SERVICE: &str = "EGRESS";
/// Content-Type of the JSON document.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Content-Type of the plain-text list.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// The latest `syncToken` a document may carry: 9999-12-31T23:59:59Z, the last instant its
/// `createDate` can spell.
pub const MAX_SYNC_TOKEN: u64 = crate::clock::LATEST_INSTANT_SECS;

/// One prefix of the document, in any of its two lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub prefix: IpNet,
    pub region: String,
    pub service: String,
    pub network_border_group: String,
}

/// A parsed or freshly rendered document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRanges {
    /// Unix seconds of the last change.
    pub sync_token: u64,
    /// The entries, sorted by prefix (numerically), then region, service and border group.
    pub entries: BTreeSet<Entry>,
}

/// Why bytes are not an ip-ranges document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("not valid ip-ranges JSON: {0}")]
    Json(String),
    #[error("syncToken {0:?} is not Unix seconds (a digit string, at most {MAX_SYNC_TOKEN})")]
    SyncToken(String),
    #[error("{field} {value:?} is not a CIDR prefix")]
    Prefix { field: &'static str, value: String },
    #[error("{field} {value:?} is in the wrong list (IPv4 prefixes go in prefixes, IPv6 in ipv6_prefixes)")]
    Family { field: &'static str, value: String },
}

/// The wire form, field names as AWS spells them.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "syncToken")]
    sync_token: String,
    #[serde(rename = "createDate")]
    create_date: String,
    prefixes: Vec<WireV4>,
    ipv6_prefixes: Vec<WireV6>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireV4 {
    ip_prefix: String,
    region: String,
    service: String,
    network_border_group: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireV6 {
    ipv6_prefix: String,
    region: String,
    service: String,
    network_border_group: String,
}

impl IpRanges {
    /// The entries a lookup produces: one `/32` per distinct (address, region), tagged `service`.
    /// A NAT gateway's border group is its region.
    pub fn entries_of(ips: &EgressIps, service: &str) -> BTreeSet<Entry> {
        ips.addresses
            .iter()
            .map(|a| Entry {
                prefix: IpNet::from(std::net::IpAddr::V4(a.public_ip)),
                region: a.region.clone(),
                service: service.to_owned(),
                network_border_group: a.region.clone(),
            })
            .collect()
    }

    /// Number of distinct prefixes (a prefix listed for two regions counts once).
    pub fn prefix_count(&self) -> usize {
        self.prefixes().len()
    }

    /// The distinct prefixes, sorted numerically, IPv4 first.
    pub fn prefixes(&self) -> BTreeSet<IpNet> {
        self.entries.iter().map(|e| e.prefix).collect()
    }

    /// The JSON document, pretty-printed like AWS's, ending with a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let (v4, v6): (Vec<&Entry>, Vec<&Entry>) = self
            .entries
            .iter()
            .partition(|e| matches!(e.prefix, IpNet::V4(_)));
        let wire = Wire {
            sync_token: self.sync_token.to_string(),
            create_date: create_date(self.sync_token),
            prefixes: v4
                .into_iter()
                .map(|e| WireV4 {
                    ip_prefix: e.prefix.to_string(),
                    region: e.region.clone(),
                    service: e.service.clone(),
                    network_border_group: e.network_border_group.clone(),
                })
                .collect(),
            ipv6_prefixes: v6
                .into_iter()
                .map(|e| WireV6 {
                    ipv6_prefix: e.prefix.to_string(),
                    region: e.region.clone(),
                    service: e.service.clone(),
                    network_border_group: e.network_border_group.clone(),
                })
                .collect(),
        };
        // Serializing plain strings and vectors cannot fail.
        let mut out = serde_json::to_vec_pretty(&wire).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The plain-text list: one distinct CIDR per line, sorted, ending with a newline (the format
    /// of Palo Alto EDLs, FortiGate threat feeds and pfSense URL tables).
    pub fn to_text(&self) -> String {
        self.prefixes().iter().map(|p| format!("{p}\n")).collect()
    }

    /// Parses a published document, checking every prefix. Unknown fields are ignored, so
    /// documents written by AWS itself parse too.
    pub fn parse(bytes: &[u8]) -> Result<IpRanges, DocumentError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| DocumentError::Json(e.to_string()))?;
        let sync_token = wire
            .sync_token
            .parse::<u64>()
            .ok()
            .filter(|t| *t <= MAX_SYNC_TOKEN && wire.sync_token.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| DocumentError::SyncToken(wire.sync_token.clone()))?;
        let mut entries = BTreeSet::new();
        let v4 = wire.prefixes.into_iter().map(|p| {
            (
                "ip_prefix",
                true,
                p.ip_prefix,
                p.region,
                p.service,
                p.network_border_group,
            )
        });
        let v6 = wire.ipv6_prefixes.into_iter().map(|p| {
            (
                "ipv6_prefix",
                false,
                p.ipv6_prefix,
                p.region,
                p.service,
                p.network_border_group,
            )
        });
        for (field, want_v4, value, region, service, network_border_group) in v4.chain(v6) {
            let prefix: IpNet = value.parse().map_err(|_| DocumentError::Prefix {
                field,
                value: value.clone(),
            })?;
            if matches!(prefix, IpNet::V4(_)) != want_v4 {
                return Err(DocumentError::Family { field, value });
            }
            entries.insert(Entry {
                prefix,
                region,
                service,
                network_border_group,
            });
        }
        Ok(IpRanges {
            sync_token,
            entries,
        })
    }
}

/// Unix seconds of `t` (0 before 1970, which no real clock says).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `createDate` for a sync token: the same instant as `YYYY-MM-DD-hh-mm-ss`, UTC. Tokens past
/// [`MAX_SYNC_TOKEN`] (which [`IpRanges::parse`] refuses) get the last date there is.
pub fn create_date(sync_token: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(sync_token.min(MAX_SYNC_TOKEN));
    // "2025-11-21T12:00:00Z" → "2025-11-21-12-00-00"
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .replace(['T', ':'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{EgressAddress, Source};

    fn address(ip: [u8; 4], region: &str) -> EgressAddress {
        EgressAddress {
            public_ip: ip.into(),
            region: region.into(),
            account_id: "123456789012".into(),
            source: Source::NatGateway,
            resource_id: format!("nat-{}", ip[3]),
            vpc_id: Some("vpc-1".into()),
            subnet_id: Some("subnet-1".into()),
            allocation_id: Some(format!("eipalloc-{}", ip[3])),
            associated: true,
        }
    }

    fn document(addresses: Vec<EgressAddress>, at: u64) -> IpRanges {
        let ips = EgressIps::new(
            vec!["us-east-1".into(), "eu-west-1".into()],
            vec![],
            addresses,
        );
        IpRanges {
            sync_token: at,
            entries: IpRanges::entries_of(&ips, DEFAULT_SERVICE),
        }
    }

    #[test]
    fn renders_the_aws_schema_sorted_numerically() {
        let doc = document(
            vec![
                address([198, 18, 1, 10], "us-east-1"),
                address([198, 18, 1, 9], "eu-west-1"),
            ],
            1_763_726_400,
        );
        let json: serde_json::Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert_eq!(json["syncToken"], "1763726400");
        assert_eq!(json["createDate"], "2025-11-21-12-00-00");
        assert_eq!(json["ipv6_prefixes"], serde_json::json!([]));
        assert_eq!(
            json["prefixes"],
            serde_json::json!([
                {"ip_prefix": "198.18.1.9/32", "region": "eu-west-1", "service": "EGRESS",
                 "network_border_group": "eu-west-1"},
                {"ip_prefix": "198.18.1.10/32", "region": "us-east-1", "service": "EGRESS",
                 "network_border_group": "us-east-1"},
            ])
        );
        assert!(doc.to_json().ends_with(b"}\n"));
    }

    #[test]
    fn text_is_one_distinct_cidr_per_line() {
        let doc = document(
            vec![
                address([198, 18, 1, 10], "us-east-1"),
                address([198, 18, 1, 9], "eu-west-1"),
                address([198, 18, 1, 9], "us-east-1"),
            ],
            1,
        );
        assert_eq!(doc.to_text(), "198.18.1.9/32\n198.18.1.10/32\n");
        assert_eq!(doc.prefix_count(), 2);
        assert_eq!(document(vec![], 1).to_text(), "");
    }

    #[test]
    fn parse_round_trips_and_reads_aws_documents() {
        let doc = document(vec![address([203, 0, 113, 7], "us-east-1")], 42);
        assert_eq!(IpRanges::parse(&doc.to_json()).unwrap(), doc);

        // A fragment of AWS's own file: extra fields, IPv6 entries.
        let aws = br#"{"syncToken": "1700000000", "createDate": "2023-11-14-22-13-20",
            "prefixes": [{"ip_prefix": "3.2.34.0/26", "region": "af-south-1",
                          "service": "AMAZON", "network_border_group": "af-south-1"}],
            "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2",
                               "service": "AMAZON", "network_border_group": "us-west-2"}],
            "extra": true}"#;
        let parsed = IpRanges::parse(aws).unwrap();
        assert_eq!(parsed.sync_token, 1_700_000_000);
        assert_eq!(parsed.prefix_count(), 2);
        assert_eq!(IpRanges::parse(&parsed.to_json()).unwrap(), parsed);
    }

    #[test]
    fn parse_refuses_what_is_not_a_document() {
        assert!(matches!(
            IpRanges::parse(b"<html>not json</html>"),
            Err(DocumentError::Json(_))
        ));
        assert!(matches!(
            IpRanges::parse(br#"{"syncToken":"12"}"#),
            Err(DocumentError::Json(_))
        ));
        let with = |token: &str, prefix: &str| {
            format!(
                r#"{{"syncToken":"{token}","createDate":"x","prefixes":[{{"ip_prefix":"{prefix}",
                "region":"r","service":"s","network_border_group":"r"}}],"ipv6_prefixes":[]}}"#
            )
        };
        assert_eq!(
            IpRanges::parse(with("+12", "10.0.0.1/32").as_bytes()),
            Err(DocumentError::SyncToken("+12".into()))
        );
        assert!(matches!(
            IpRanges::parse(with("12", "10.0.0.300/32").as_bytes()),
            Err(DocumentError::Prefix { .. })
        ));
        assert!(matches!(
            IpRanges::parse(with("12", "2001:db8::/32").as_bytes()),
            Err(DocumentError::Family { .. })
        ));
    }

    #[test]
    fn create_date_is_the_sync_token_instant() {
        assert_eq!(create_date(0), "1970-01-01-00-00-00");
        assert_eq!(create_date(1_763_726_400), "2025-11-21-12-00-00");
        assert_eq!(create_date(MAX_SYNC_TOKEN), "9999-12-31-23-59-59");
        // Regression: past year 9999 (or past SystemTime) rendering used to panic.
        assert_eq!(create_date(u64::MAX), "9999-12-31-23-59-59");
        assert_eq!(
            unix_seconds(UNIX_EPOCH + Duration::from_secs(1_763_726_400)),
            1_763_726_400
        );
    }
}
