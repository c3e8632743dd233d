//! EC2 managed prefix lists: reading one (address family, version, `MaxEntries`, entries) and
//! changing it under AWS's optimistic concurrency (`CurrentVersion`), plus the pure planning of a
//! change: the difference between a list and a wanted set, cut into calls of at most
//! [`MAX_ENTRIES_PER_CALL`] entries that never push the list past its `MaxEntries`.

use crate::aws::Aws;
use crate::error::{AwsError, AwsErrorKind};
use crate::paging::Pages;
use aws_sdk_ec2::types::{AddPrefixListEntry, RemovePrefixListEntry};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Entries one ModifyManagedPrefixList call may add plus remove (an AWS limit).
pub const MAX_ENTRIES_PER_CALL: usize = 100;
/// The largest `MaxEntries` AWS allows.
pub const MAX_MAX_ENTRIES: usize = 1000;
/// The AWS error code of a modify whose `CurrentVersion` is not the list's version.
pub const VERSION_MISMATCH: &str = "PrefixListVersionMismatch";
/// Longest entry description AWS accepts.
pub const MAX_DESCRIPTION_CHARS: usize = 255;

/// Which list: a region and a `pl-…` id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefixListRef {
    pub region: String,
    pub id: String,
}

impl fmt::Display for PrefixListRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.region, self.id)
    }
}

impl PrefixListRef {
    /// Parses `REGION=pl-…`; Err says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (region, id) = s.trim().split_once('=').ok_or_else(|| {
            format!("expected REGION=pl-ID (e.g. us-east-1=pl-0123abcd), got {s:?}")
        })?;
        let (region, id) = (region.trim(), id.trim());
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!("{region:?} is not a region name (e.g. us-east-1)"));
        }
        let id_ok = id
            .strip_prefix("pl-")
            .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !id_ok {
            return Err(format!(
                "{id:?} is not a prefix list id (pl- then hex digits)"
            ));
        }
        Ok(PrefixListRef {
            region: region.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// A list's address family: it holds prefixes of that family only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// What DescribeManagedPrefixLists says about a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    pub name: String,
    pub family: Family,
    pub version: i64,
    pub max_entries: usize,
}

/// One entry: a prefix and its description.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListEntry {
    pub cidr: IpNet,
    pub description: String,
}

/// What to change in a list: prefixes to add (with their descriptions) and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub add: Vec<ListEntry>,
    pub remove: Vec<IpNet>,
}

impl Change {
    /// The change that turns `current` into `wanted` (prefixes only: descriptions of prefixes
    /// already listed are left as they are).
    pub fn between(current: &BTreeSet<IpNet>, wanted: &BTreeMap<IpNet, String>) -> Change {
        Change {
            add: wanted
                .iter()
                .filter(|(cidr, _)| !current.contains(cidr))
                .map(|(cidr, description)| ListEntry {
                    cidr: *cidr,
                    description: description.clone(),
                })
                .collect(),
            remove: current
                .iter()
                .filter(|cidr| !wanted.contains_key(cidr))
                .copied()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// The calls that apply this change to a list holding `count` entries with room for
    /// `max_entries`: each at most [`MAX_ENTRIES_PER_CALL`] entries, none leaving more than
    /// `max_entries` entries. Additions go first where there is room, then swaps (a removal and
    /// an addition in one call, which AWS applies removals first), then the remaining removals:
    /// in between calls the list never holds fewer entries than before or after the change.
    /// None when the end result itself would not fit.
    pub fn batches(&self, count: usize, max_entries: usize) -> Option<Vec<Change>> {
        let end = (count + self.add.len()).checked_sub(self.remove.len())?;
        if end > max_entries {
            return None;
        }
        let (mut adds, mut removes) = (self.add.as_slice(), self.remove.as_slice());
        let mut count = count;
        let mut calls = Vec::new();
        while !adds.is_empty() || !removes.is_empty() {
            let room = max_entries.saturating_sub(count);
            let mut a = adds.len().min(MAX_ENTRIES_PER_CALL).min(room);
            let swaps = removes
                .len()
                .min(adds.len() - a)
                .min((MAX_ENTRIES_PER_CALL - a) / 2);
            a += swaps;
            let mut r = swaps;
            if adds.len() == a {
                r += (removes.len() - r).min(MAX_ENTRIES_PER_CALL - a - r);
            }
            if a == 0 && r == 0 {
                return None; // cannot happen when `end` fits; never loop forever
            }
            calls.push(Change {
                add: adds[..a].to_vec(),
                remove: removes[..r].to_vec(),
            });
            count = count + a - r;
            adds = &adds[a..];
            removes = &removes[r..];
        }
        Some(calls)
    }
}

/// A description that fits AWS's limit and character set (ASCII, shortened to 255 characters).
pub fn entry_description(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

/// The EC2 calls on one managed prefix list.
#[derive(Debug, Clone)]
pub struct PrefixLists<'a> {
    aws: &'a Aws,
}

impl<'a> PrefixLists<'a> {
    pub fn new(aws: &'a Aws) -> Self {
        PrefixLists { aws }
    }

    /// DescribeManagedPrefixLists of one list.
    pub async fn describe(&self, list: &PrefixListRef) -> Result<ListInfo, AwsError> {
        let op = "DescribeManagedPrefixLists";
        let out = self
            .aws
            .ec2(&list.region)
            .describe_managed_prefix_lists()
            .prefix_list_ids(&list.id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&list.region, op, e))?;
        let found = out
            .prefix_lists()
            .iter()
            .find(|p| p.prefix_list_id() == Some(list.id.as_str()))
            .ok_or_else(|| {
                response_error(
                    &list.region,
                    op,
                    Some("InvalidPrefixListID.NotFound"),
                    format!("the prefix list {} does not exist", list.id),
                )
            })?;
        let family = found
            .address_family()
            .and_then(Family::parse)
            .ok_or_else(|| {
                response_error(
                    &list.region,
                    op,
                    None,
                    format!("{} has no known AddressFamily", list.id),
                )
            })?;
        Ok(ListInfo {
            name: found.prefix_list_name().unwrap_or_default().to_owned(),
            family,
            version: found.version().unwrap_or(0),
            max_entries: found
                .max_entries()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    /// GetManagedPrefixListEntries, every page: the list's entries at `version` (None: the
    /// current version).
    pub async fn entries(
        &self,
        list: &PrefixListRef,
        version: Option<i64>,
    ) -> Result<Vec<ListEntry>, AwsError> {
        let op = "GetManagedPrefixListEntries";
        let client = self.aws.ec2(&list.region);
        let mut pages = Pages::new(&list.region, op);
        let mut entries = Vec::new();
        loop {
            let out = client
                .get_managed_prefix_list_entries()
                .prefix_list_id(&list.id)
                .set_target_version(version)
                .max_results(100)
                .set_next_token(pages.token())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(&list.region, op, e))?;
            for entry in out.entries() {
                let cidr = entry.cidr().unwrap_or_default();
                let cidr = cidr.parse::<IpNet>().map_err(|_| {
                    response_error(&list.region, op, None, format!("{cidr:?} is not a CIDR"))
                })?;
                entries.push(ListEntry {
                    cidr,
                    description: entry.description().unwrap_or_default().to_owned(),
                });
            }
            // A list holds at most 1,000 entries: more than that is a server that keeps paging.
            if !pages.advance(out.next_token())? || entries.len() > MAX_MAX_ENTRIES {
                return Ok(entries);
            }
        }
    }

    /// One ModifyManagedPrefixList of entries, conditional on the list still being at
    /// `version`; returns the list's new version. A list that moved on fails with
    /// [`VERSION_MISMATCH`] and is left as it was.
    pub async fn modify(
        &self,
        list: &PrefixListRef,
        version: i64,
        change: &Change,
    ) -> Result<i64, AwsError> {
        let op = "ModifyManagedPrefixList";
        let adds: Vec<AddPrefixListEntry> = change
            .add
            .iter()
            .map(|e| {
                AddPrefixListEntry::builder()
                    .cidr(e.cidr.to_string())
                    .description(entry_description(&e.description))
                    .build()
            })
            .collect();
        let removes: Vec<RemovePrefixListEntry> = change
            .remove
            .iter()
            .map(|cidr| {
                RemovePrefixListEntry::builder()
                    .cidr(cidr.to_string())
                    .build()
            })
            .collect();
        let out = self
            .aws
            .ec2(&list.region)
            .modify_managed_prefix_list()
            .prefix_list_id(&list.id)
            .current_version(version)
            .set_add_entries((!adds.is_empty()).then_some(adds))
            .set_remove_entries((!removes.is_empty()).then_some(removes))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&list.region, op, e))?;
        Ok(out
            .prefix_list()
            .and_then(|p| p.version())
            .unwrap_or(version + 1))
    }

    /// Raises (or lowers) the list's `MaxEntries`: a call of its own, as AWS requires.
    pub async fn resize(&self, list: &PrefixListRef, max_entries: usize) -> Result<(), AwsError> {
        let op = "ModifyManagedPrefixList";
        let max = i32::try_from(max_entries).unwrap_or(i32::MAX);
        self.aws
            .ec2(&list.region)
            .modify_managed_prefix_list()
            .prefix_list_id(&list.id)
            .max_entries(max)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&list.region, op, e))?;
        Ok(())
    }
}

fn response_error(
    region: &str,
    operation: &'static str,
    code: Option<&str>,
    message: String,
) -> AwsError {
    AwsError {
        region: region.to_owned(),
        operation,
        kind: if code.is_some() {
            AwsErrorKind::Service
        } else {
            AwsErrorKind::Response
        },
        code: code.map(str::to_owned),
        message,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(range: std::ops::Range<u16>) -> BTreeSet<IpNet> {
        range
            .map(|n| format!("10.0.{}.{}/32", n / 256, n % 256).parse().unwrap())
            .collect()
    }

    fn wanted(set: &BTreeSet<IpNet>) -> BTreeMap<IpNet, String> {
        set.iter()
            .map(|p| (*p, "us-east-1 nat".to_owned()))
            .collect()
    }

    /// Applies `calls` to `start` as AWS would (removals first), checking each call's limits.
    /// The list never holds fewer entries than at the start and at the end.
    fn apply(start: &BTreeSet<IpNet>, calls: &[Change], max: usize, end: usize) -> BTreeSet<IpNet> {
        let mut list = start.clone();
        let floor = start.len().min(end);
        for call in calls {
            assert!(call.add.len() + call.remove.len() <= MAX_ENTRIES_PER_CALL);
            assert!(!call.is_empty());
            for cidr in &call.remove {
                assert!(list.remove(cidr), "removes a listed prefix");
            }
            for entry in &call.add {
                assert!(list.insert(entry.cidr), "adds an unlisted prefix");
            }
            assert!(
                list.len() <= max,
                "{} entries past MaxEntries {max}",
                list.len()
            );
            assert!(
                list.len() >= floor,
                "{} entries in between, below {floor}",
                list.len()
            );
        }
        list
    }

    #[test]
    fn refs_parse_region_equals_id() {
        let r = PrefixListRef::parse(" us-east-1=pl-0123abcd ").unwrap();
        assert_eq!(
            (r.region.as_str(), r.id.as_str()),
            ("us-east-1", "pl-0123abcd")
        );
        assert_eq!(r.to_string(), "us-east-1=pl-0123abcd");
        for bad in [
            "pl-0123",
            "us-east-1",
            "US_EAST=pl-1",
            "us-east-1=sg-1",
            "us-east-1=pl-",
        ] {
            assert!(PrefixListRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn change_is_the_difference_of_prefixes() {
        let current = prefixes(0..5);
        let target = wanted(&prefixes(3..8));
        let change = Change::between(&current, &target);
        assert_eq!(
            change.remove,
            prefixes(0..3).into_iter().collect::<Vec<_>>()
        );
        assert_eq!(
            change.add.iter().map(|e| e.cidr).collect::<BTreeSet<_>>(),
            prefixes(5..8)
        );
        assert!(Change::between(&current, &wanted(&current)).is_empty());
    }

    #[test]
    fn batches_hold_at_most_100_entries_and_respect_max_entries() {
        // (current, wanted, MaxEntries): big swaps, a full list, growth and a shrink.
        let cases = [
            (0..0, 0..250, 1000),
            (0..300, 300..600, 1000),
            (0..300, 300..600, 300),
            (0..150, 100..250, 150),
            (0..500, 0..20, 500),
            (0..10, 5..15, 10),
            (0..1, 1..2, 1),
        ];
        for (from, to, max) in cases {
            let current = prefixes(from.clone());
            let target = prefixes(to.clone());
            let change = Change::between(&current, &wanted(&target));
            let calls = change.batches(current.len(), max).unwrap();
            assert_eq!(
                apply(&current, &calls, max, target.len()),
                target,
                "{from:?} → {to:?} in {max}"
            );
            let moved = change.add.len() + change.remove.len();
            assert!(
                calls.len() <= moved.div_ceil(MAX_ENTRIES_PER_CALL) + moved.div_ceil(max.max(1)),
                "{from:?} → {to:?}: {} calls",
                calls.len()
            );
        }
    }

    #[test]
    fn additions_go_first_when_there_is_room() {
        let current = prefixes(0..3);
        let change = Change::between(&current, &wanted(&prefixes(3..6)));
        let calls = change.batches(3, 10).unwrap();
        assert_eq!(calls.len(), 1);
        let calls = change.batches(3, 3).unwrap();
        // No room: the one call swaps three for three (removals apply first).
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].add.len(), calls[0].remove.len()), (3, 3));
    }

    #[test]
    fn a_result_larger_than_max_entries_has_no_batches() {
        let change = Change::between(&BTreeSet::new(), &wanted(&prefixes(0..11)));
        assert_eq!(change.batches(0, 10), None);
        assert!(Change::default().batches(0, 10).unwrap().is_empty());
    }

    #[test]
    fn descriptions_fit_aws() {
        assert_eq!(entry_description("us-east-1 nat-1"), "us-east-1 nat-1");
        assert_eq!(entry_description("é\n"), "??");
        assert_eq!(
            entry_description(&"x".repeat(300)).len(),
            MAX_DESCRIPTION_CHARS
        );
    }
}
