//! `--prefix-list`: keeps each managed prefix list exactly equal to the published prefixes of its
//! address family. A list already equal costs one read; otherwise the difference is applied in
//! calls conditional on the version read (`CurrentVersion`), and a list someone else changed in
//! between is read again and the difference computed afresh (bounded). The document's guards
//! apply to each list too: a sharp shrink of a list is refused unless `--force`, and a set larger
//! than the list's `MaxEntries` is refused unless `--prefix-list-grow`.

use allowlist_core::document::IpRanges;
use allowlist_core::error::AwsError;
use allowlist_core::prefix_list::{
    Change, Family, ListEntry, ListInfo, PrefixListRef, PrefixLists, VERSION_MISMATCH,
};
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

/// Read-diff-modify attempts per list before giving up on a list others keep changing.
pub const MAX_ATTEMPTS: u32 = 5;

/// The EC2 calls a sync needs (core's [`PrefixLists`], or a fake in tests).
#[async_trait]
pub trait ListApi: Send + Sync + std::fmt::Debug {
    async fn describe(&self, list: &PrefixListRef) -> Result<ListInfo, AwsError>;
    async fn entries(
        &self,
        list: &PrefixListRef,
        version: Option<i64>,
    ) -> Result<Vec<ListEntry>, AwsError>;
    async fn modify(
        &self,
        list: &PrefixListRef,
        version: i64,
        change: &Change,
    ) -> Result<i64, AwsError>;
    async fn resize(&self, list: &PrefixListRef, max_entries: usize) -> Result<(), AwsError>;
}

#[async_trait]
impl ListApi for PrefixLists<'_> {
    async fn describe(&self, list: &PrefixListRef) -> Result<ListInfo, AwsError> {
        PrefixLists::describe(self, list).await
    }
    async fn entries(
        &self,
        list: &PrefixListRef,
        version: Option<i64>,
    ) -> Result<Vec<ListEntry>, AwsError> {
        PrefixLists::entries(self, list, version).await
    }
    async fn modify(
        &self,
        list: &PrefixListRef,
        version: i64,
        change: &Change,
    ) -> Result<i64, AwsError> {
        PrefixLists::modify(self, list, version, change).await
    }
    async fn resize(&self, list: &PrefixListRef, max_entries: usize) -> Result<(), AwsError> {
        PrefixLists::resize(self, list, max_entries).await
    }
}

/// How lists are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    pub lists: Vec<PrefixListRef>,
    /// Raise a list's `MaxEntries` when the set outgrows it.
    pub grow: bool,
    /// `--max-shrink` and `--force`, as for the document.
    pub max_shrink: u8,
    pub force: bool,
}

/// What a sync did to one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub list: PrefixListRef,
    pub added: usize,
    pub removed: usize,
    /// The list's version afterwards (None when one read showed it equal).
    pub version: Option<i64>,
    /// The `MaxEntries` it was grown to, if it was.
    pub grown_to: Option<usize>,
    /// Read-diff-modify attempts (above 1 after someone else changed the list meanwhile).
    pub attempts: u32,
}

/// Why a list was not brought in line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ListError {
    #[error(
        "prefix list {list} holds at most {max_entries} entries (MaxEntries) but the published \
         set has {needed} {family} prefixes; the list was left unchanged. --prefix-list-grow \
         raises MaxEntries to {needed}: every security group rule that references the list then \
         counts as {needed} rules against that group's rules quota"
    )]
    TooSmall {
        list: PrefixListRef,
        family: Family,
        needed: usize,
        max_entries: usize,
    },
    #[error(
        "prefix list {list} would shrink from {from} to {to} entries ({percent:.0}% fewer), more \
         than --max-shrink {max}% allows; the list was left unchanged (--force overrides this \
         guard)"
    )]
    Shrink {
        list: PrefixListRef,
        from: usize,
        to: usize,
        percent: f64,
        max: u8,
    },
    #[error("prefix list {list}: {error}")]
    Aws {
        list: PrefixListRef,
        error: Box<AwsError>,
    },
    #[error(
        "prefix list {list} kept changing while we wrote it ({MAX_ATTEMPTS} attempts): someone \
         else is modifying it; the next run tries again"
    )]
    Busy { list: PrefixListRef },
}

impl ListError {
    /// True for a guard's refusal (exit 3), false for an error (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ListError::TooSmall { .. } | ListError::Shrink { .. })
    }
}

/// The wanted entries of each family: every distinct prefix of the document, described by the
/// regions and service it comes from (e.g. `us-east-1 EGRESS (allowlist)`).
pub fn wanted(document: &IpRanges) -> BTreeMap<IpNet, String> {
    let mut sources: BTreeMap<IpNet, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for entry in &document.entries {
        let (regions, services) = sources.entry(entry.prefix).or_default();
        regions.insert(&entry.region);
        services.insert(&entry.service);
    }
    sources
        .into_iter()
        .map(|(prefix, (regions, services))| {
            let regions: Vec<&str> = regions.into_iter().collect();
            let services: Vec<&str> = services.into_iter().collect();
            let description = format!("{} {} (allowlist)", regions.join(","), services.join(","));
            (prefix, description)
        })
        .collect()
}

fn of_family(wanted: &BTreeMap<IpNet, String>, family: Family) -> BTreeMap<IpNet, String> {
    wanted
        .iter()
        .filter(|(p, _)| Family::of(p) == family)
        .map(|(p, d)| (*p, d.clone()))
        .collect()
}

/// Brings every list in line with `document`; one result per list, in order. Lists are
/// independent: one failing does not stop the others.
pub async fn sync_all(
    api: &dyn ListApi,
    document: &IpRanges,
    options: &SyncOptions,
) -> Vec<Result<Synced, ListError>> {
    let wanted = wanted(document);
    let mut results = Vec::with_capacity(options.lists.len());
    for list in &options.lists {
        let result = sync_one(api, list, &wanted, options).await;
        match &result {
            Ok(s) if s.version.is_some() => tracing::info!(
                list = %list,
                added = s.added,
                removed = s.removed,
                version = s.version,
                grown_to = s.grown_to,
                attempts = s.attempts,
                "synced the prefix list"
            ),
            Ok(_) => tracing::debug!(list = %list, "the prefix list is in line"),
            Err(err) => tracing::error!("{err}"),
        }
        results.push(result);
    }
    results
}

/// Before a change is written: every list must have room for the new set of its family (one
/// describe per list), else the change is refused before anything is written, so the document
/// and the lists never tell different stories. With `--prefix-list-grow` there is nothing to
/// check.
pub async fn check_room(
    api: &dyn ListApi,
    document: &IpRanges,
    options: &SyncOptions,
) -> Result<(), ListError> {
    if options.grow {
        return Ok(());
    }
    let wanted = wanted(document);
    for list in &options.lists {
        let info = api
            .describe(list)
            .await
            .map_err(|error: AwsError| ListError::Aws {
                list: list.clone(),
                error: Box::new(error),
            })?;
        let needed = of_family(&wanted, info.family).len();
        if needed > info.max_entries {
            return Err(ListError::TooSmall {
                list: list.clone(),
                family: info.family,
                needed,
                max_entries: info.max_entries,
            });
        }
    }
    Ok(())
}

/// Brings one list in line with `wanted`.
pub async fn sync_one(
    api: &dyn ListApi,
    list: &PrefixListRef,
    wanted: &BTreeMap<IpNet, String>,
    options: &SyncOptions,
) -> Result<Synced, ListError> {
    let aws = |error: AwsError| ListError::Aws {
        list: list.clone(),
        error: Box::new(error),
    };
    // The common case, one read: the entries already are the published prefixes of their
    // family. (An empty list's family is unknown without a describe.)
    let entries = api.entries(list, None).await.map_err(aws)?;
    let current: BTreeSet<IpNet> = entries.iter().map(|e| e.cidr).collect();
    match current.iter().next() {
        Some(first) => {
            let family = Family::of(first);
            if current.iter().all(|p| Family::of(p) == family)
                && current.iter().eq(of_family(wanted, family).keys())
            {
                return Ok(unchanged(list, 1));
            }
        }
        // An empty list is in line when nothing of its family is published.
        None => {
            let info = api.describe(list).await.map_err(aws)?;
            if of_family(wanted, info.family).is_empty() {
                return Ok(unchanged(list, 1));
            }
        }
    }

    let mut grown_to = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut info = api.describe(list).await.map_err(aws)?;
        let entries = api.entries(list, Some(info.version)).await.map_err(aws)?;
        let current: BTreeSet<IpNet> = entries.iter().map(|e| e.cidr).collect();
        let target = of_family(wanted, info.family);
        let change = Change::between(&current, &target);
        if change.is_empty() {
            return Ok(Synced {
                grown_to,
                ..unchanged(list, attempt)
            });
        }
        check_shrink(list, current.len(), target.len(), options)?;
        if target.len() > info.max_entries {
            if !options.grow {
                return Err(ListError::TooSmall {
                    list: list.clone(),
                    family: info.family,
                    needed: target.len(),
                    max_entries: info.max_entries,
                });
            }
            tracing::warn!(
                list = %list,
                from = info.max_entries,
                to = target.len(),
                "--prefix-list-grow: raising MaxEntries; every security group rule that \
                 references the list now counts as {} rules",
                target.len()
            );
            api.resize(list, target.len()).await.map_err(aws)?;
            info.max_entries = target.len();
            grown_to = Some(target.len());
        }
        // `between` only fails to batch a result larger than MaxEntries, handled above.
        let Some(calls) = change.batches(current.len(), info.max_entries) else {
            return Err(ListError::TooSmall {
                list: list.clone(),
                family: info.family,
                needed: target.len(),
                max_entries: info.max_entries,
            });
        };
        let mut version = info.version;
        let mut raced = false;
        for call in &calls {
            match api.modify(list, version, call).await {
                Ok(next) => version = next,
                Err(err) if err.has_code(VERSION_MISMATCH) => {
                    tracing::info!(list = %list, attempt, "the prefix list changed since we read it: reading it again");
                    raced = true;
                    break;
                }
                Err(err) => return Err(aws(err)),
            }
        }
        if raced {
            continue;
        }
        return Ok(Synced {
            list: list.clone(),
            added: change.add.len(),
            removed: change.remove.len(),
            version: Some(version),
            grown_to,
            attempts: attempt,
        });
    }
    Err(ListError::Busy { list: list.clone() })
}

fn unchanged(list: &PrefixListRef, attempts: u32) -> Synced {
    Synced {
        list: list.clone(),
        added: 0,
        removed: 0,
        version: None,
        grown_to: None,
        attempts,
    }
}

/// `--max-shrink` against the list's own entries (unless `--force`).
fn check_shrink(
    list: &PrefixListRef,
    from: usize,
    to: usize,
    options: &SyncOptions,
) -> Result<(), ListError> {
    if options.force || from == 0 || to >= from {
        return Ok(());
    }
    let percent = (from - to) as f64 * 100.0 / from as f64;
    if percent > f64::from(options.max_shrink) {
        return Err(ListError::Shrink {
            list: list.clone(),
            from,
            to,
            percent,
            max: options.max_shrink,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use allowlist_core::document::Entry;
    use allowlist_core::AwsErrorKind;
    use std::sync::Mutex;

    /// An in-memory list with AWS's rules, and an optional interloper that changes it right
    /// before our next modify.
    #[derive(Debug)]
    struct FakeList {
        state: Mutex<FakeState>,
    }

    #[derive(Debug)]
    struct FakeState {
        family: Family,
        version: i64,
        max_entries: usize,
        entries: BTreeSet<IpNet>,
        interlopers: Vec<IpNet>,
        calls: Vec<String>,
    }

    impl FakeList {
        fn new(entries: &[&str], max_entries: usize) -> Self {
            FakeList {
                state: Mutex::new(FakeState {
                    family: Family::V4,
                    version: 1,
                    max_entries,
                    entries: entries.iter().map(|e| e.parse().unwrap()).collect(),
                    interlopers: Vec::new(),
                    calls: Vec::new(),
                }),
            }
        }
        fn calls(&self) -> Vec<String> {
            self.state.lock().unwrap().calls.clone()
        }
        fn entries(&self) -> BTreeSet<IpNet> {
            self.state.lock().unwrap().entries.clone()
        }
    }

    fn mismatch() -> AwsError {
        AwsError {
            region: "us-east-1".into(),
            operation: "ModifyManagedPrefixList",
            kind: AwsErrorKind::Service,
            code: Some(VERSION_MISMATCH.into()),
            message: "The prefix list has the incorrect version number.".into(),
            status: Some(400),
        }
    }

    #[async_trait]
    impl ListApi for FakeList {
        async fn describe(&self, _list: &PrefixListRef) -> Result<ListInfo, AwsError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push("describe".into());
            Ok(ListInfo {
                name: "egress".into(),
                family: s.family,
                version: s.version,
                max_entries: s.max_entries,
            })
        }
        async fn entries(
            &self,
            _list: &PrefixListRef,
            _version: Option<i64>,
        ) -> Result<Vec<ListEntry>, AwsError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push("entries".into());
            Ok(s.entries
                .iter()
                .map(|cidr| ListEntry {
                    cidr: *cidr,
                    description: String::new(),
                })
                .collect())
        }
        async fn modify(
            &self,
            _list: &PrefixListRef,
            version: i64,
            change: &Change,
        ) -> Result<i64, AwsError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push("modify".into());
            if let Some(theirs) = s.interlopers.pop() {
                s.entries.insert(theirs);
                s.version += 1;
            }
            if version != s.version {
                return Err(mismatch());
            }
            assert!(change.add.len() + change.remove.len() <= 100);
            for cidr in &change.remove {
                s.entries.remove(cidr);
            }
            for entry in &change.add {
                s.entries.insert(entry.cidr);
            }
            assert!(s.entries.len() <= s.max_entries, "past MaxEntries");
            s.version += 1;
            Ok(s.version)
        }
        async fn resize(&self, _list: &PrefixListRef, max_entries: usize) -> Result<(), AwsError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push(format!("resize {max_entries}"));
            s.max_entries = max_entries;
            Ok(())
        }
    }

    fn document(prefixes: &[&str]) -> IpRanges {
        IpRanges {
            sync_token: 1,
            entries: prefixes
                .iter()
                .map(|p| Entry {
                    prefix: p.parse().unwrap(),
                    region: "us-east-1".into(),
                    service: "EGRESS".into(),
                    network_border_group: "us-east-1".into(),
                })
                .collect(),
        }
    }

    fn set(prefixes: &[&str]) -> BTreeSet<IpNet> {
        prefixes.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn options() -> SyncOptions {
        SyncOptions {
            lists: vec![PrefixListRef::parse("us-east-1=pl-1").unwrap()],
            grow: false,
            max_shrink: 50,
            force: false,
        }
    }

    async fn sync(
        api: &FakeList,
        doc: &IpRanges,
        options: &SyncOptions,
    ) -> Result<Synced, ListError> {
        sync_all(api, doc, options).await.remove(0)
    }

    #[tokio::test]
    async fn a_list_in_line_costs_one_read() {
        let api = FakeList::new(&["198.18.0.1/32", "198.18.0.2/32"], 10);
        let doc = document(&["198.18.0.2/32", "198.18.0.1/32", "2001:db8::1/128"]);
        let synced = sync(&api, &doc, &options()).await.unwrap();
        assert_eq!(synced.version, None);
        assert_eq!(api.calls(), ["entries"]);
    }

    #[tokio::test]
    async fn the_difference_is_applied_at_the_version_read() {
        let api = FakeList::new(&["198.18.0.1/32", "203.0.113.9/32"], 10);
        let doc = document(&["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]);
        let synced = sync(&api, &doc, &options()).await.unwrap();
        assert_eq!((synced.added, synced.removed), (2, 1));
        assert_eq!(synced.version, Some(2));
        assert_eq!(
            api.entries(),
            set(&["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"])
        );
        assert_eq!(api.calls(), ["entries", "describe", "entries", "modify"]);
        assert_eq!(
            wanted(&doc)[&"198.18.0.2/32".parse::<IpNet>().unwrap()],
            "us-east-1 EGRESS (allowlist)"
        );
    }

    #[tokio::test]
    async fn someone_else_changing_the_list_meanwhile_means_a_fresh_read() {
        let api = FakeList::new(&["198.18.0.1/32"], 10);
        api.state
            .lock()
            .unwrap()
            .interlopers
            .push("192.0.2.77/32".parse().unwrap());
        let doc = document(&["198.18.0.1/32", "198.18.0.2/32"]);
        let synced = sync(&api, &doc, &options()).await.unwrap();
        assert_eq!(synced.attempts, 2);
        // The second attempt saw their entry and removed it deliberately; ours is in.
        assert_eq!((synced.added, synced.removed), (1, 1));
        assert_eq!(api.entries(), set(&["198.18.0.1/32", "198.18.0.2/32"]));
        assert_eq!(
            api.calls(),
            ["entries", "describe", "entries", "modify", "describe", "entries", "modify"]
        );
    }

    #[tokio::test]
    async fn a_list_that_keeps_changing_gives_up_after_bounded_attempts() {
        let api = FakeList::new(&["198.18.0.1/32"], 10);
        api.state.lock().unwrap().interlopers = (0..MAX_ATTEMPTS)
            .map(|n| format!("192.0.2.{n}/32").parse().unwrap())
            .collect();
        // (Forced: each interloper grows the list, and our set shrinks it past --max-shrink.)
        let forced = SyncOptions {
            force: true,
            ..options()
        };
        let err = sync(&api, &document(&["198.18.0.2/32"]), &forced)
            .await
            .unwrap_err();
        assert!(matches!(err, ListError::Busy { .. }), "{err}");
        assert!(!err.is_refusal());
    }

    #[tokio::test]
    async fn a_set_larger_than_max_entries_is_refused_unless_grow() {
        let api = FakeList::new(&["198.18.0.1/32"], 2);
        let doc = document(&["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]);
        let err = sync(&api, &doc, &options()).await.unwrap_err();
        assert!(err.is_refusal());
        let message = err.to_string();
        for needle in [
            "us-east-1=pl-1",
            "at most 2",
            "3 IPv4",
            "--prefix-list-grow",
            "3 rules",
        ] {
            assert!(message.contains(needle), "{needle} not in: {message}");
        }
        assert_eq!(api.entries(), set(&["198.18.0.1/32"]));
        assert!(!api
            .calls()
            .iter()
            .any(|c| c == "modify" || c.starts_with("resize")));

        let grow = SyncOptions {
            grow: true,
            ..options()
        };
        let synced = sync(&api, &doc, &grow).await.unwrap();
        assert_eq!(synced.grown_to, Some(3));
        assert_eq!(api.entries().len(), 3);
        let calls = api.calls();
        let resize = calls.iter().position(|c| c == "resize 3").unwrap();
        assert_eq!(
            calls[resize + 1..],
            ["modify"],
            "the resize is its own call, before the entries"
        );
    }

    #[tokio::test]
    async fn a_sharp_shrink_of_a_list_is_refused_unless_forced() {
        let api = FakeList::new(
            &[
                "198.18.0.1/32",
                "198.18.0.2/32",
                "198.18.0.3/32",
                "198.18.0.4/32",
                "198.18.0.5/32",
            ],
            10,
        );
        let doc = document(&["198.18.0.1/32", "198.18.0.2/32"]);
        let err = sync(&api, &doc, &options()).await.unwrap_err();
        assert!(
            matches!(err, ListError::Shrink { from: 5, to: 2, .. }),
            "{err}"
        );
        assert!(err.is_refusal());
        assert_eq!(api.entries().len(), 5);
        let forced = SyncOptions {
            force: true,
            ..options()
        };
        sync(&api, &doc, &forced).await.unwrap();
        assert_eq!(api.entries(), set(&["198.18.0.1/32", "198.18.0.2/32"]));
    }

    #[tokio::test]
    async fn an_empty_list_of_the_other_family_stays_empty() {
        let api = FakeList::new(&[], 10);
        api.state.lock().unwrap().family = Family::V6;
        let synced = sync(&api, &document(&["198.18.0.1/32"]), &options())
            .await
            .unwrap();
        assert_eq!(synced.version, None);
        assert!(api.entries().is_empty());
        assert_eq!(api.calls(), ["entries", "describe"]);
    }

    #[tokio::test]
    async fn room_is_checked_before_a_change_is_written() {
        let api = FakeList::new(&["198.18.0.1/32"], 2);
        let doc = document(&["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"]);
        let err = check_room(&api, &doc, &options()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ListError::TooSmall {
                    needed: 3,
                    max_entries: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(api.calls(), ["describe"]);
        check_room(&api, &document(&["198.18.0.1/32"]), &options())
            .await
            .unwrap();
        let grow = SyncOptions {
            grow: true,
            ..options()
        };
        check_room(&api, &doc, &grow).await.unwrap();
        assert_eq!(api.calls().len(), 2, "--prefix-list-grow checks nothing");
    }
}
