//! `publish`: look up the egress IPs, compare them with the published document, and write the
//! document (and its plain-text twin) only when the prefix set changed and every guard agrees.
//!
//! The order of a cycle: lookup (all regions or nothing) → read the published document → guards
//! → conditional write of the JSON (carrying the record of the work the change owes, see
//! [`crate::pending`]) → the text list → the follow-ups: CloudFront invalidation, managed prefix
//! lists, SNS announcement → the record cleared. A conflicting concurrent writer sends the cycle
//! back to the read; nothing is ever written over a version we did not read.

use crate::announce::{Announcement, Announcer};
use crate::cdn::{invalidation_path, Cdn};
use crate::pending::{self, Pending, Task};
use crate::prefix_lists::{self, ListApi, ListError, SyncOptions, Synced};
use crate::store::{Condition, ObjectMeta, Store, StoreError, Stored};
use allowlist_core::clock::Clock;
use allowlist_core::document::{unix_seconds, IpRanges, JSON_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use allowlist_core::egress::{self, EgressIps, EgressQuery, LookupError};
use allowlist_core::error::AwsError;
use allowlist_core::region::{self as regions, RegionFailure};
use allowlist_core::Aws;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// Read-compare-write attempts before giving up on a busy object.
pub const MAX_ATTEMPTS: u32 = 5;

/// What to publish and the guards that apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    pub query: EgressQuery,
    /// The `service` field of every prefix.
    pub service: String,
    /// Refuse when fewer distinct prefixes are found.
    pub min_count: usize,
    /// Refuse when more than this percentage of the published prefixes would disappear.
    pub max_shrink: u8,
    /// Override `min_count`, `max_shrink` and an unreadable published document.
    pub force: bool,
    /// `Cache-Control` of the written objects.
    pub cache_control: String,
}

/// One object location: a store and a key in it.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub store: &'a dyn Store,
    pub key: &'a str,
}

impl Place<'_> {
    fn location(&self) -> String {
        self.store.location(self.key)
    }
}

/// Where the published document is read from, to compare with and to guard against.
#[derive(Debug, Clone, Copy)]
pub enum Baseline<'a> {
    /// The JSON output itself (S3, or `--out FILE`): writes are conditional on the version read,
    /// and nothing is written when nothing changed.
    Output,
    /// Another place (a preview of S3 into a local file): the output is always written.
    Elsewhere(Place<'a>),
    /// Nothing to compare with (`--out -`): the output is always written.
    Nothing,
}

/// Where a publish reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub json: Place<'a>,
    pub text: Option<Place<'a>>,
    pub baseline: Baseline<'a>,
    /// Invalidated after a write, with the written keys as paths.
    pub cdn: Option<&'a dyn Cdn>,
    /// Where a change is announced (S3 targets only).
    pub announce: Option<Announce<'a>>,
    /// Managed prefix lists kept equal to the published set (S3 targets only).
    pub prefix_lists: Option<Lists<'a>>,
}

/// `--sns-topic-arn` and `--public-url`.
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a> {
    pub announcer: &'a dyn Announcer,
    /// The address customers fetch the document at: the announcement's `url`.
    pub url: &'a str,
}

/// `--prefix-list` and how to keep them.
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a> {
    pub api: &'a dyn ListApi,
    pub options: &'a SyncOptions,
}

/// What a successful publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// The regions asked.
    pub regions: Vec<String>,
    /// Distinct prefixes in the document.
    pub prefixes: usize,
    /// Distinct prefixes in the baseline document, when there was one.
    pub previous_prefixes: Option<usize>,
    /// Whether the prefix set differs from the baseline's.
    pub changed: bool,
    pub sync_token: u64,
    /// The locations written, in order.
    pub written: Vec<String>,
    /// The CloudFront invalidation created, if any.
    pub invalidation: Option<String>,
    /// The SNS message id of the announcement sent, if any.
    pub announcement: Option<String>,
    /// What each `--prefix-list` sync did.
    pub prefix_lists: Vec<Synced>,
    /// Work a previous run left owed that this run completed (`invalidate`, `announce`).
    pub completed_pending: Vec<&'static str>,
    /// Read-compare-write attempts used (more than 1 after a concurrent writer).
    pub attempts: u32,
}

/// Work after the document was in place that failed; it stays owed (prefix lists are compared
/// on every run anyway).
#[derive(Debug, thiserror::Error)]
pub enum FollowUpFailure {
    #[error("the CloudFront invalidation failed: {error}. {}", if *.pending {
        "It stays pending: the next run invalidates again"
    } else {
        "Cached copies expire by Cache-Control"
    })]
    Invalidation {
        error: AwsError,
        /// Recorded on the document, so the next run invalidates again.
        pending: bool,
    },
    #[error(
        "the SNS announcement to {topic} failed: {error}. It stays pending: the next run \
         announces again"
    )]
    Announcement { topic: String, error: AwsError },
    #[error("{0}")]
    PrefixList(ListError),
    #[error(
        "recording what is still pending on {location} failed: {error}. The next run redoes \
         the work recorded there earlier"
    )]
    Record { location: String, error: StoreError },
}

/// Why a guard refused to publish.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("found {found} prefixes, fewer than --min-count {min}")]
    TooFew { found: usize, min: usize },
    #[error(
        "the list would shrink from {from} to {to} prefixes ({percent:.0}% fewer), more than \
         --max-shrink {max}% allows"
    )]
    Shrink {
        from: usize,
        to: usize,
        percent: f64,
        max: u8,
    },
    #[error("the published {location} is not an ip-ranges document ({reason})")]
    Unreadable { location: String, reason: String },
}

/// Why nothing (or not everything) was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A flag's value is wrong (e.g. a region that does not exist).
    #[error("{flag}: {message}")]
    Usage { flag: &'static str, message: String },
    /// The lookup failed (a region failed, or the region list could not be had): no partial list.
    #[error("refusing to publish: {0}")]
    Lookup(#[source] LookupError),
    #[error("refusing to publish: {0}{hint}", hint = force_hint(.0))]
    Refused(#[source] Refusal),
    /// A prefix list cannot take the changed set (or could not be asked): nothing was written.
    #[error("refusing to publish: {0}; nothing was written")]
    PrefixList(#[source] Box<ListError>),
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error(
        "{location} kept changing while we wrote it ({MAX_ATTEMPTS} attempts); another publisher \
         is writing it: try again"
    )]
    Busy { location: String },
    /// The document is published, but some work after it failed.
    #[error("{}", follow_up_message(.document, .failures))]
    FollowUp {
        /// The published document's location and syncToken.
        document: String,
        failures: Vec<FollowUpFailure>,
    },
}

fn follow_up_message(document: &str, failures: &[FollowUpFailure]) -> String {
    let what: Vec<String> = failures.iter().map(ToString::to_string).collect();
    format!("{document} is published, but {}", what.join("; and "))
}

fn force_hint(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::TooFew { .. } | Refusal::Shrink { .. } | Refusal::Unreadable { .. } => {
            "; nothing was written (--force overrides this guard)"
        }
    }
}

impl PublishError {
    /// The process exit code for this error (see the README's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            PublishError::Usage { .. } => 2,
            PublishError::Lookup(LookupError::BadRegion(_) | LookupError::NoRegions) => 2,
            PublishError::Lookup(_) | PublishError::Refused(_) => 3,
            PublishError::PrefixList(err) if err.is_refusal() => 3,
            PublishError::PrefixList(_) => 1,
            PublishError::FollowUp { failures, .. } => {
                let refused = |f: &FollowUpFailure| matches!(f, FollowUpFailure::PrefixList(e) if e.is_refusal());
                // A guard's refusal alone is exit 3; any error among the failures is exit 1.
                if failures.iter().all(refused) {
                    3
                } else {
                    1
                }
            }
            PublishError::Store(_) | PublishError::Busy { .. } => 1,
        }
    }
}

/// Looks up the egress IPs and publishes them to `target`: the whole `publish` command.
pub async fn publish_once(
    aws: &Aws,
    target: &Target<'_>,
    clock: &dyn Clock,
    options: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let ips = match egress::lookup(aws, &options.query).await {
        Ok(ips) => ips,
        Err(LookupError::Regions { asked, failures }) => {
            let failed: Vec<&str> = failures.iter().map(|f| f.error.region.as_str()).collect();
            return Err(match regions::explain(aws, &failed).await {
                RegionFailure::Unknown(message) => PublishError::Usage {
                    flag: "--regions",
                    message,
                },
                RegionFailure::Failed => {
                    PublishError::Lookup(LookupError::Regions { asked, failures })
                }
            });
        }
        Err(other) => return Err(PublishError::Lookup(other)),
    };
    publish_ips(target, &ips, clock.now(), options).await
}

/// Publishes an already looked-up list to `target` (the part of [`publish_once`] after the
/// lookup, separate so tests can drive it with any store).
pub async fn publish_ips(
    target: &Target<'_>,
    ips: &EgressIps,
    now: SystemTime,
    options: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let entries = IpRanges::entries_of(ips, &options.service);
    let mut written = Vec::new();
    // A change written in an attempt that a conflict on the text list then sent back to the read.
    let mut changed_earlier = false;
    let mut written_keys = Vec::new();
    let in_place = matches!(target.baseline, Baseline::Output);
    for attempt in 1..=MAX_ATTEMPTS {
        let (read, previous) = read_baseline(target, options, attempt).await?;
        let fresh = IpRanges {
            sync_token: unix_seconds(now),
            entries: entries.clone(),
        };
        check_guards(previous.as_ref(), &fresh, options)?;
        let (document, changed) = next_document(previous.as_ref(), fresh);
        if let (true, true, Some(lists)) = (changed, in_place, target.prefix_lists) {
            prefix_lists::check_room(lists.api, &document, lists.options)
                .await
                .map_err(|e| PublishError::PrefixList(Box::new(e)))?;
        }

        // The JSON as it is in place after this step (bytes, version tag), and what it owes.
        let mut in_place_json = read
            .as_ref()
            .map(|r| (r.bytes.clone(), Some(r.etag.clone())));
        let mut owed = read
            .as_ref()
            .filter(|_| in_place)
            .and_then(|r| r.metadata.get(pending::METADATA_KEY))
            .map(|value| Pending::from_metadata(value.as_str()))
            .unwrap_or_default();
        if changed || !in_place {
            let condition = if in_place {
                Condition::over(read.as_ref())
            } else {
                Condition::Always
            };
            let record = if in_place {
                let (added, removed) = counts(previous.as_ref(), &document);
                Pending::for_change(&configured_tasks(target), added, removed)
            } else {
                Pending::default()
            };
            let meta = object_meta(JSON_CONTENT_TYPE, options, &record);
            let bytes = document.to_json();
            let put = target
                .json
                .store
                .put(target.json.key, bytes.clone(), &meta, condition)
                .await;
            let etag = match retry_on_conflict(put, attempt)? {
                Put::Retry => continue,
                Put::Written(etag) => etag,
            };
            tracing::info!(
                location = %target.json.location(),
                prefixes = document.prefix_count(),
                sync_token = document.sync_token,
                pending = %record.to_metadata(),
                "wrote the document"
            );
            written.push(target.json.location());
            changed_earlier |= changed;
            written_keys.push(target.json.key.to_owned());
            in_place_json = Some((bytes, etag));
            owed = record;
        }

        if let Some(text) = target.text {
            match write_text(&text, &document, options, attempt).await? {
                TextWrite::Unchanged => {}
                TextWrite::Retry => continue,
                TextWrite::Written => {
                    written.push(text.location());
                    written_keys.push(text.key.to_owned());
                }
            }
        }

        let mut report = PublishReport {
            regions: ips.regions.clone(),
            prefixes: document.prefix_count(),
            previous_prefixes: previous.as_ref().map(IpRanges::prefix_count),
            changed: changed || changed_earlier,
            sync_token: document.sync_token,
            written,
            invalidation: None,
            announcement: None,
            prefix_lists: Vec::new(),
            completed_pending: Vec::new(),
            attempts: attempt,
        };
        let published = Published {
            document: &document,
            bytes: in_place_json
                .as_ref()
                .map(|(b, _)| b.as_slice())
                .unwrap_or_default(),
            etag: in_place_json.as_ref().and_then(|(_, e)| e.clone()),
            owed,
            fresh_change: changed || changed_earlier,
        };
        let failures = if in_place {
            follow_up(target, &published, &written_keys, options, &mut report).await
        } else {
            Vec::new()
        };
        if !failures.is_empty() {
            return Err(PublishError::FollowUp {
                document: format!(
                    "{} (syncToken {})",
                    target.json.location(),
                    document.sync_token
                ),
                failures,
            });
        }
        return Ok(report);
    }
    Err(PublishError::Busy {
        location: target.json.location(),
    })
}

/// The published document as it is in place, and what it owes.
struct Published<'a> {
    document: &'a IpRanges,
    /// Its bytes as stored (what `md5` is of).
    bytes: &'a [u8],
    /// Its version tag, for clearing the record conditionally.
    etag: Option<String>,
    owed: Pending,
    /// This run wrote a change (so the written paths are invalidated even without a record).
    fresh_change: bool,
}

/// The tasks a change owes with this target: those it is configured for.
fn configured_tasks(target: &Target<'_>) -> BTreeSet<Task> {
    let mut tasks = BTreeSet::new();
    if target.cdn.is_some() {
        tasks.insert(Task::Invalidate);
    }
    if target.announce.is_some() {
        tasks.insert(Task::Announce);
    }
    tasks
}

/// Prefixes added and removed between the previous document and this one.
fn counts(previous: Option<&IpRanges>, document: &IpRanges) -> (usize, usize) {
    let now = document.prefixes();
    let before = previous.map(IpRanges::prefixes).unwrap_or_default();
    (
        now.difference(&before).count(),
        before.difference(&now).count(),
    )
}

/// After the document is in place: invalidate, sync the prefix lists, announce, then record what
/// is still owed. Returns what failed (and fills in `report`).
async fn follow_up(
    target: &Target<'_>,
    published: &Published<'_>,
    written_keys: &[String],
    options: &PublishOptions,
    report: &mut PublishReport,
) -> Vec<FollowUpFailure> {
    let mut failures = Vec::new();
    let mut done = BTreeSet::new();
    let owed = &published.owed;

    // 1. CloudFront: the paths written now, or every published path for a pending invalidation.
    let owes_invalidation = owed.tasks.contains(&Task::Invalidate);
    let paths: Vec<String> = if !written_keys.is_empty() {
        written_keys.to_vec()
    } else if owes_invalidation {
        std::iter::once(target.json.key)
            .chain(target.text.map(|t| t.key))
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    match (target.cdn, paths.is_empty()) {
        (Some(cdn), false) => match invalidate(cdn, &paths, published.document).await {
            Ok(id) => {
                report.invalidation = Some(id);
                done.insert(Task::Invalidate);
            }
            Err(error) => failures.push(FollowUpFailure::Invalidation {
                error,
                pending: owes_invalidation,
            }),
        },
        (None, _) if owes_invalidation => {
            tracing::warn!("a CloudFront invalidation was pending but no --distribution-id is given: dropping it");
            done.insert(Task::Invalidate);
        }
        _ => {}
    }

    // 2. Prefix lists: compared on every run, so nothing about them needs recording.
    if let Some(lists) = target.prefix_lists {
        for result in prefix_lists::sync_all(lists.api, published.document, lists.options).await {
            match result {
                Ok(synced) => report.prefix_lists.push(synced),
                Err(err) => failures.push(FollowUpFailure::PrefixList(err)),
            }
        }
    }

    // 3. SNS, last: subscribers who fetch on the announcement find everything in place.
    if owed.tasks.contains(&Task::Announce) {
        match target.announce {
            Some(announce) => {
                let announcement = Announcement::of(
                    published.bytes,
                    published.document.sync_token,
                    announce.url,
                    published.document.prefix_count(),
                    owed.added,
                    owed.removed,
                );
                match announce.announcer.announce(&announcement).await {
                    Ok(id) => {
                        tracing::info!(
                            topic = announce.announcer.topic(),
                            message_id = %id,
                            synctoken = announcement.sync_token,
                            md5 = %announcement.md5,
                            "announced the change"
                        );
                        report.announcement = Some(id);
                        done.insert(Task::Announce);
                    }
                    Err(error) => failures.push(FollowUpFailure::Announcement {
                        topic: announce.announcer.topic().to_owned(),
                        error,
                    }),
                }
            }
            None => {
                tracing::warn!(
                    "an SNS announcement was pending but no --sns-topic-arn is given: dropping it"
                );
                done.insert(Task::Announce);
            }
        }
    }

    // 4. The record: what is left owed replaces it (none: the record goes).
    let settled: BTreeSet<Task> = owed.tasks.intersection(&done).copied().collect();
    if !settled.is_empty() {
        if !published.fresh_change {
            report.completed_pending = settled
                .iter()
                .map(|t| match t {
                    Task::Invalidate => "invalidate",
                    Task::Announce => "announce",
                })
                .collect();
        }
        if let Err(failure) = record(target, published, &owed.without(&settled), options).await {
            failures.push(failure);
        }
    }
    failures
}

/// Rewrites the document's bytes in place with `left` as its record, if it is still the version
/// we hold. A newer version is someone else's, with a record of its own: left alone.
async fn record(
    target: &Target<'_>,
    published: &Published<'_>,
    left: &Pending,
    options: &PublishOptions,
) -> Result<(), FollowUpFailure> {
    let Some(etag) = published.etag.clone() else {
        return Ok(());
    };
    let meta = object_meta(JSON_CONTENT_TYPE, options, left);
    let put = target
        .json
        .store
        .put(
            target.json.key,
            published.bytes.to_vec(),
            &meta,
            Condition::Matches(etag),
        )
        .await;
    match put {
        Ok(_) => {
            tracing::debug!(location = %target.json.location(), pending = %left.to_metadata(), "recorded what is pending");
            Ok(())
        }
        Err(StoreError::Conflict { location, .. }) => {
            tracing::warn!(%location, "the document changed since we wrote it; its writer records its own pending work");
            Ok(())
        }
        Err(error) => Err(FollowUpFailure::Record {
            location: target.json.location(),
            error,
        }),
    }
}

/// Reads the baseline: the stored object (for the write condition) and it as a document.
async fn read_baseline(
    target: &Target<'_>,
    options: &PublishOptions,
    attempt: u32,
) -> Result<(Option<Stored>, Option<IpRanges>), PublishError> {
    let read = match target.baseline {
        Baseline::Output => target.json.store.get(target.json.key).await,
        Baseline::Elsewhere(place) => place.store.get(place.key).await,
        Baseline::Nothing => Ok(None),
    }
    .map_err(PublishError::Store)?;
    let previous = baseline_document(target, read.as_ref(), options)?;
    match (&read, &previous) {
        (Some(stored), Some(doc)) => tracing::debug!(
            etag = %stored.etag,
            prefixes = doc.prefix_count(),
            sync_token = doc.sync_token,
            attempt,
            "read the published document"
        ),
        _ => tracing::debug!(attempt, "no published document to compare with"),
    }
    Ok((read, previous))
}

/// The document to publish and whether its prefix set changed: the previous one as it is when
/// nothing changed, else `fresh` with a syncToken that always moves forward (even twice in one
/// second).
fn next_document(previous: Option<&IpRanges>, fresh: IpRanges) -> (IpRanges, bool) {
    match previous {
        Some(prev) if prev.entries == fresh.entries => (prev.clone(), false),
        Some(prev) => (
            IpRanges {
                sync_token: fresh.sync_token.max(prev.sync_token + 1),
                ..fresh
            },
            true,
        ),
        None => (fresh, true),
    }
}

fn object_meta(
    content_type: &'static str,
    options: &PublishOptions,
    pending: &Pending,
) -> ObjectMeta {
    let mut metadata = BTreeMap::new();
    if !pending.is_empty() {
        metadata.insert(pending::METADATA_KEY.to_owned(), pending.to_metadata());
    }
    ObjectMeta {
        content_type,
        cache_control: options.cache_control.clone(),
        metadata,
    }
}

/// What writing the text list did.
enum TextWrite {
    Unchanged,
    Written,
    /// A concurrent writer: go back to the read.
    Retry,
}

/// Writes the plain-text list when it differs from what `text` holds (conditionally on that).
async fn write_text(
    text: &Place<'_>,
    document: &IpRanges,
    options: &PublishOptions,
    attempt: u32,
) -> Result<TextWrite, PublishError> {
    let body = document.to_text().into_bytes();
    let current = text
        .store
        .get(text.key)
        .await
        .map_err(PublishError::Store)?;
    if current.as_ref().map(|c| &c.bytes) == Some(&body) {
        return Ok(TextWrite::Unchanged);
    }
    let meta = object_meta(TEXT_CONTENT_TYPE, options, &Pending::default());
    let put = text
        .store
        .put(text.key, body, &meta, Condition::over(current.as_ref()))
        .await;
    if let Put::Retry = retry_on_conflict(put, attempt)? {
        return Ok(TextWrite::Retry);
    }
    tracing::info!(location = %text.location(), "wrote the text list");
    Ok(TextWrite::Written)
}

/// Invalidates `keys` on the CDN.
async fn invalidate(
    cdn: &dyn Cdn,
    keys: &[String],
    document: &IpRanges,
) -> Result<String, AwsError> {
    let paths: Vec<String> = keys.iter().map(|k| invalidation_path(k)).collect();
    let reference = format!("allowlist-{}-{}", document.sync_token, random_suffix());
    let id = cdn.invalidate(&paths, &reference).await?;
    tracing::info!(invalidation = %id, paths = ?paths, "invalidated the CDN");
    Ok(id)
}

/// The baseline as a document: None when there is none, or when it is unreadable and `--force`
/// says to write over it.
fn baseline_document(
    target: &Target<'_>,
    read: Option<&Stored>,
    options: &PublishOptions,
) -> Result<Option<IpRanges>, PublishError> {
    let Some(stored) = read else {
        return Ok(None);
    };
    match IpRanges::parse(&stored.bytes) {
        Ok(doc) => Ok(Some(doc)),
        Err(err) => {
            let location = match target.baseline {
                Baseline::Elsewhere(place) => place.location(),
                _ => target.json.location(),
            };
            let refusal = Refusal::Unreadable {
                location,
                reason: err.to_string(),
            };
            if options.force {
                tracing::warn!(%refusal, "--force: writing over it");
                Ok(None)
            } else {
                Err(PublishError::Refused(refusal))
            }
        }
    }
}

/// `--min-count` and `--max-shrink`, overridden (with a warning) by `--force`.
fn check_guards(
    previous: Option<&IpRanges>,
    fresh: &IpRanges,
    options: &PublishOptions,
) -> Result<(), PublishError> {
    let found = fresh.prefix_count();
    let mut refusals = Vec::new();
    if found < options.min_count {
        refusals.push(Refusal::TooFew {
            found,
            min: options.min_count,
        });
    }
    if let Some(prev) = previous {
        let from = prev.prefix_count();
        if from > 0 && found < from {
            let percent = (from - found) as f64 * 100.0 / from as f64;
            if percent > f64::from(options.max_shrink) {
                refusals.push(Refusal::Shrink {
                    from,
                    to: found,
                    percent,
                    max: options.max_shrink,
                });
            }
        }
    }
    match refusals.into_iter().next() {
        None => Ok(()),
        Some(refusal) if options.force => {
            tracing::warn!(%refusal, "--force: publishing anyway");
            Ok(())
        }
        Some(refusal) => Err(PublishError::Refused(refusal)),
    }
}

/// What a conditional write came to.
enum Put {
    /// Written; the new version's tag.
    Written(Option<String>),
    /// A conflicting writer: start the cycle again from the read.
    Retry,
}

fn retry_on_conflict(
    put: Result<Option<String>, StoreError>,
    attempt: u32,
) -> Result<Put, PublishError> {
    match put {
        Ok(etag) => Ok(Put::Written(etag)),
        Err(StoreError::Conflict { location, code }) if attempt < MAX_ATTEMPTS => {
            tracing::warn!(
                %location,
                %code,
                attempt,
                "another writer changed the object since we read it; reading it again"
            );
            Ok(Put::Retry)
        }
        Err(StoreError::Conflict { location, .. }) => Err(PublishError::Busy { location }),
        Err(err) => Err(PublishError::Store(err)),
    }
}

/// Makes CloudFront caller references unique even for two publishes in one second.
fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness only guards against CloudFront treating two requests as one retry.
        return format!("{}", std::process::id());
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileStore;
    use allowlist_core::egress::{EgressAddress, Source};
    use async_trait::async_trait;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, UNIX_EPOCH};

    /// An in-memory bucket with S3's conditional-write rules, a write counter, and a way to make
    /// another writer step in before our next writes.
    #[derive(Debug, Default)]
    struct MemoryStore {
        objects: Mutex<HashMap<String, Stored>>,
        versions: Mutex<u64>,
        puts: Mutex<u32>,
        /// Each put first lets "another publisher" write the next of these bytes to the key.
        interlopers: Mutex<Vec<Vec<u8>>>,
        /// The same, for puts of the text list only.
        text_interlopers: Mutex<Vec<Vec<u8>>>,
    }

    impl MemoryStore {
        fn bytes(&self, key: &str) -> Option<Vec<u8>> {
            self.objects
                .lock()
                .unwrap()
                .get(key)
                .map(|s| s.bytes.clone())
        }
        fn puts(&self) -> u32 {
            *self.puts.lock().unwrap()
        }
        fn write(&self, key: &str, bytes: Vec<u8>) {
            let mut version = self.versions.lock().unwrap();
            *version += 1;
            let stored = Stored {
                bytes,
                etag: format!("\"v{version}\""),
                metadata: BTreeMap::new(),
            };
            self.objects.lock().unwrap().insert(key.to_owned(), stored);
        }
        fn metadata(&self, key: &str) -> BTreeMap<String, String> {
            self.objects.lock().unwrap()[key].metadata.clone()
        }
    }

    #[async_trait]
    impl Store for MemoryStore {
        async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
        async fn put(
            &self,
            key: &str,
            bytes: Vec<u8>,
            meta: &ObjectMeta,
            condition: Condition,
        ) -> Result<Option<String>, StoreError> {
            let interloper = if key.ends_with(".txt") {
                self.text_interlopers.lock().unwrap().pop()
            } else {
                self.interlopers.lock().unwrap().pop()
            };
            if let Some(theirs) = interloper {
                self.write(key, theirs);
            }
            *self.puts.lock().unwrap() += 1;
            let current = self
                .objects
                .lock()
                .unwrap()
                .get(key)
                .map(|s| s.etag.clone());
            let holds = match (&condition, &current) {
                (Condition::Always, _) | (Condition::Absent, None) => true,
                (Condition::Matches(want), Some(have)) => want == have,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Conflict {
                    location: self.location(key),
                    code: "PreconditionFailed".into(),
                });
            }
            self.write(key, bytes);
            let mut objects = self.objects.lock().unwrap();
            let stored = objects.get_mut(key).unwrap();
            stored.metadata = meta.metadata.clone();
            Ok(Some(stored.etag.clone()))
        }
        fn location(&self, key: &str) -> String {
            format!("mem://{key}")
        }
    }

    #[derive(Debug, Default)]
    struct RecordingCdn {
        calls: Mutex<Vec<Vec<String>>>,
        fail: bool,
    }

    #[async_trait]
    impl Cdn for RecordingCdn {
        async fn invalidate(&self, paths: &[String], _reference: &str) -> Result<String, AwsError> {
            self.calls.lock().unwrap().push(paths.to_vec());
            if self.fail {
                return Err(AwsError {
                    region: "global".into(),
                    operation: "CreateInvalidation",
                    kind: allowlist_core::AwsErrorKind::Service,
                    code: Some("AccessDenied".into()),
                    message: "no".into(),
                    status: Some(403),
                });
            }
            Ok("I1".into())
        }
    }

    fn ips(last_octets: &[u8]) -> EgressIps {
        EgressIps::new(
            vec!["us-east-1".into()],
            vec![],
            last_octets.iter().map(|o| EgressAddress {
                public_ip: [198, 18, 0, *o].into(),
                region: "us-east-1".into(),
                account_id: "123456789012".into(),
                source: Source::NatGateway,
                resource_id: format!("nat-{o}"),
                vpc_id: Some("vpc-1".into()),
                subnet_id: Some("subnet-1".into()),
                allocation_id: Some(format!("eipalloc-{o}")),
                associated: true,
            }),
        )
    }

    fn options() -> PublishOptions {
        PublishOptions {
            query: EgressQuery::default(),
            service: "EGRESS".into(),
            min_count: 1,
            max_shrink: 50,
            force: false,
            cache_control: "public, max-age=300".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn s3<'a>(store: &'a MemoryStore, cdn: Option<&'a dyn Cdn>) -> Target<'a> {
        Target {
            json: Place {
                store,
                key: "ip-ranges.json",
            },
            text: Some(Place {
                store,
                key: "ip-ranges.txt",
            }),
            baseline: Baseline::Output,
            cdn,
            announce: None,
            prefix_lists: None,
        }
    }

    fn published(store: &MemoryStore) -> IpRanges {
        IpRanges::parse(&store.bytes("ip-ranges.json").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn writes_only_when_the_prefix_set_changes() {
        let store = MemoryStore::default();
        let cdn = RecordingCdn::default();
        let target = s3(&store, Some(&cdn));

        let first = publish_ips(&target, &ips(&[1, 2]), at(1000), &options())
            .await
            .unwrap();
        assert!(first.changed);
        assert_eq!(first.sync_token, 1000);
        // The JSON (with the record of the invalidation it owes), the text, then the JSON again
        // with the record cleared once the invalidation is done.
        assert_eq!(store.puts(), 3);
        assert!(store.metadata("ip-ranges.json").is_empty());
        assert_eq!(
            store.bytes("ip-ranges.txt").unwrap(),
            b"198.18.0.1/32\n198.18.0.2/32\n"
        );
        assert_eq!(
            cdn.calls.lock().unwrap().as_slice(),
            [vec![
                "/ip-ranges.json".to_owned(),
                "/ip-ranges.txt".to_owned()
            ]]
        );

        // Same set, later: no write, no invalidation, syncToken and createDate stay put.
        let same = publish_ips(&target, &ips(&[2, 1]), at(2000), &options())
            .await
            .unwrap();
        assert!(!same.changed);
        assert_eq!(same.sync_token, 1000);
        assert!(same.written.is_empty());
        assert_eq!(store.puts(), 3);
        assert_eq!(cdn.calls.lock().unwrap().len(), 1);

        // A new address: new syncToken, both objects rewritten and invalidated.
        let grown = publish_ips(&target, &ips(&[1, 2, 3]), at(3000), &options())
            .await
            .unwrap();
        assert!(grown.changed);
        assert_eq!(grown.sync_token, 3000);
        assert_eq!(published(&store).prefix_count(), 3);
        assert_eq!(store.puts(), 6);
        assert_eq!(cdn.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn sync_token_always_moves_forward() {
        let store = MemoryStore::default();
        let target = s3(&store, None);
        publish_ips(&target, &ips(&[1]), at(5000), &options())
            .await
            .unwrap();
        // A second change in the same second, or with a clock that went back.
        let next = publish_ips(&target, &ips(&[1, 2]), at(5000), &options())
            .await
            .unwrap();
        assert_eq!(next.sync_token, 5001);
        let back = publish_ips(&target, &ips(&[1, 2, 3]), at(10), &options())
            .await
            .unwrap();
        assert_eq!(back.sync_token, 5002);
    }

    #[tokio::test]
    async fn guards_refuse_and_write_nothing_unless_forced() {
        let store = MemoryStore::default();
        let target = s3(&store, None);
        publish_ips(&target, &ips(&[1, 2, 3, 4, 5]), at(1000), &options())
            .await
            .unwrap();
        let before = store.bytes("ip-ranges.json");
        let puts = store.puts();

        // 5 → 2 is a 60% shrink.
        let err = publish_ips(&target, &ips(&[1, 2]), at(2000), &options())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                PublishError::Refused(Refusal::Shrink {
                    from: 5,
                    to: 2,
                    max: 50,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("60% fewer"), "{err}");
        // 5 → 3 (40%) is allowed by default; 60% is allowed by --max-shrink 60.
        let lenient = PublishOptions {
            max_shrink: 60,
            ..options()
        };
        let err = publish_ips(&target, &ips(&[1]), at(2000), &lenient)
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Refused(Refusal::Shrink { .. })));

        let few = PublishOptions {
            min_count: 6,
            ..options()
        };
        let err = publish_ips(&target, &ips(&[1, 2, 3, 4, 5]), at(2000), &few)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                PublishError::Refused(Refusal::TooFew { found: 5, min: 6 })
            ),
            "{err}"
        );
        assert_eq!(store.bytes("ip-ranges.json"), before);
        assert_eq!(store.puts(), puts);

        let forced = PublishOptions {
            force: true,
            ..options()
        };
        let report = publish_ips(&target, &ips(&[1, 2]), at(2000), &forced)
            .await
            .unwrap();
        assert_eq!(report.prefixes, 2);
        assert_eq!(report.previous_prefixes, Some(5));
        assert_eq!(published(&store).prefix_count(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_published_object_is_kept_unless_forced() {
        let store = MemoryStore::default();
        store.write("ip-ranges.json", b"<html>oops</html>".to_vec());
        let target = s3(&store, None);
        let err = publish_ips(&target, &ips(&[1]), at(1000), &options())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PublishError::Refused(Refusal::Unreadable { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("mem://ip-ranges.json"), "{err}");
        assert_eq!(store.bytes("ip-ranges.json").unwrap(), b"<html>oops</html>");
        let forced = PublishOptions {
            force: true,
            ..options()
        };
        publish_ips(&target, &ips(&[1]), at(1000), &forced)
            .await
            .unwrap();
        assert_eq!(published(&store).prefix_count(), 1);
    }

    #[tokio::test]
    async fn a_concurrent_writer_is_not_overwritten_blindly() {
        let store = MemoryStore::default();
        let target = s3(&store, None);
        publish_ips(&target, &ips(&[1, 2]), at(1000), &options())
            .await
            .unwrap();

        // Another publisher writes a newer document between our read and our write.
        let theirs = IpRanges {
            sync_token: 1500,
            entries: IpRanges::entries_of(&ips(&[1, 2, 9]), "EGRESS"),
        };
        store.interlopers.lock().unwrap().push(theirs.to_json());
        let report = publish_ips(&target, &ips(&[1, 2, 3]), at(2000), &options())
            .await
            .unwrap();
        assert_eq!(report.attempts, 2);
        // Our write was re-based on theirs: our set, a syncToken after theirs.
        let doc = published(&store);
        assert_eq!(
            doc.entries,
            IpRanges::entries_of(&ips(&[1, 2, 3]), "EGRESS")
        );
        assert_eq!(doc.sync_token, 2000);
        assert_eq!(report.previous_prefixes, Some(3));

        // When the other writer wrote exactly our set, there is nothing left to write.
        let same = IpRanges {
            sync_token: 2500,
            entries: IpRanges::entries_of(&ips(&[1, 2, 3, 4]), "EGRESS"),
        };
        store.interlopers.lock().unwrap().push(same.to_json());
        let report = publish_ips(&target, &ips(&[1, 2, 3, 4]), at(3000), &options())
            .await
            .unwrap();
        assert!(!report.changed);
        assert_eq!(published(&store).sync_token, 2500);
    }

    #[tokio::test]
    async fn a_conflict_on_the_text_list_rereads_and_still_reports_the_change() {
        let store = MemoryStore::default();
        let target = s3(&store, None);
        publish_ips(&target, &ips(&[1]), at(1000), &options())
            .await
            .unwrap();
        // Another writer touches the text list between our read of it and our write.
        store
            .text_interlopers
            .lock()
            .unwrap()
            .push(b"203.0.113.9/32\n".to_vec());
        let report = publish_ips(&target, &ips(&[1, 2]), at(2000), &options())
            .await
            .unwrap();
        assert_eq!(report.attempts, 2);
        assert!(report.changed, "the JSON changed in the first attempt");
        assert_eq!(
            report.written,
            ["mem://ip-ranges.json", "mem://ip-ranges.txt"]
        );
        assert_eq!(
            store.bytes("ip-ranges.txt").unwrap(),
            b"198.18.0.1/32\n198.18.0.2/32\n"
        );
        assert_eq!(published(&store).sync_token, 2000);
    }

    #[tokio::test]
    async fn a_busy_object_gives_up_after_bounded_attempts() {
        let store = MemoryStore::default();
        let target = s3(&store, None);
        let other = |n: u8| IpRanges {
            sync_token: 100 + u64::from(n),
            entries: IpRanges::entries_of(&ips(&[n]), "EGRESS"),
        };
        *store.interlopers.lock().unwrap() = (1..=MAX_ATTEMPTS as u8)
            .map(|n| other(n).to_json())
            .collect();
        let err = publish_ips(&target, &ips(&[50, 51]), at(1000), &options())
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Busy { .. }), "{err}");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(store.puts(), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_failed_invalidation_is_an_error_after_the_write() {
        let store = MemoryStore::default();
        let cdn = RecordingCdn {
            fail: true,
            ..RecordingCdn::default()
        };
        let err = publish_ips(&s3(&store, Some(&cdn)), &ips(&[1]), at(1000), &options())
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::FollowUp { .. }), "{err}");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("AccessDenied"), "{err}");
        assert!(err.to_string().contains("CloudFront"), "{err}");
        assert_eq!(published(&store).prefix_count(), 1);
        // The invalidation stays owed, recorded on the document itself.
        assert_eq!(
            store.metadata("ip-ranges.json")[pending::METADATA_KEY],
            "tasks=invalidate;added=1;removed=0"
        );
    }

    /// An SNS topic that records what it was sent and fails the next `failures` publishes.
    #[derive(Debug, Default)]
    struct RecordingTopic {
        sent: Mutex<Vec<Announcement>>,
        failures: Mutex<u32>,
    }

    #[async_trait]
    impl Announcer for RecordingTopic {
        async fn announce(&self, announcement: &Announcement) -> Result<String, AwsError> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(AwsError {
                    region: "us-east-1".into(),
                    operation: "Publish",
                    kind: allowlist_core::AwsErrorKind::Service,
                    code: Some("InternalError".into()),
                    message: "try later".into(),
                    status: Some(500),
                });
            }
            let mut sent = self.sent.lock().unwrap();
            sent.push(announcement.clone());
            Ok(format!("m-{}", sent.len()))
        }
        fn topic(&self) -> &str {
            "arn:aws:sns:us-east-1:123456789012:ip-ranges"
        }
    }

    fn announcing<'a>(
        store: &'a MemoryStore,
        cdn: Option<&'a dyn Cdn>,
        topic: &'a RecordingTopic,
    ) -> Target<'a> {
        Target {
            announce: Some(Announce {
                announcer: topic,
                url: "https://ips.example.com/ip-ranges.json",
            }),
            ..s3(store, cdn)
        }
    }

    #[tokio::test]
    async fn a_change_is_announced_once_and_an_unchanged_run_announces_nothing() {
        let store = MemoryStore::default();
        let topic = RecordingTopic::default();
        let target = announcing(&store, None, &topic);
        let first = publish_ips(&target, &ips(&[1, 2]), at(1000), &options())
            .await
            .unwrap();
        assert_eq!(first.announcement.as_deref(), Some("m-1"));
        let sent = topic.sent.lock().unwrap()[0].clone();
        assert_eq!(sent.sync_token, 1000);
        assert_eq!((sent.added, sent.removed, sent.prefixes), (2, 0, 2));
        assert_eq!(
            sent.md5,
            hex::encode(<md5::Md5 as md5::Digest>::digest(
                store.bytes("ip-ranges.json").unwrap()
            ))
        );
        // Written with its record, then cleared: json + text + the clearing rewrite.
        assert_eq!(store.puts(), 3);
        assert!(store.metadata("ip-ranges.json").is_empty());

        let same = publish_ips(&target, &ips(&[1, 2]), at(2000), &options())
            .await
            .unwrap();
        assert_eq!(same.announcement, None);
        assert_eq!(topic.sent.lock().unwrap().len(), 1);
        assert_eq!(store.puts(), 3);

        let shrunk = publish_ips(&target, &ips(&[2, 3]), at(3000), &options())
            .await
            .unwrap();
        assert!(shrunk.changed);
        let sent = topic.sent.lock().unwrap()[1].clone();
        assert_eq!((sent.sync_token, sent.added, sent.removed), (3000, 1, 1));
    }

    #[tokio::test]
    async fn a_failed_announcement_is_sent_by_the_next_run_exactly_once() {
        let store = MemoryStore::default();
        let cdn = RecordingCdn::default();
        let topic = RecordingTopic::default();
        *topic.failures.lock().unwrap() = 1;
        let target = announcing(&store, Some(&cdn), &topic);
        let err = publish_ips(&target, &ips(&[1]), at(1000), &options())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("SNS"), "{err}");
        assert_eq!(err.exit_code(), 1);
        // The document is out and invalidated; only the announcement is still owed.
        assert_eq!(published(&store).sync_token, 1000);
        assert_eq!(cdn.calls.lock().unwrap().len(), 1);
        assert_eq!(
            store.metadata("ip-ranges.json")[pending::METADATA_KEY],
            "tasks=announce;added=1;removed=0"
        );

        // Nothing changed since: the next run announces the same document, and only that.
        let next = publish_ips(&target, &ips(&[1]), at(2000), &options())
            .await
            .unwrap();
        assert!(!next.changed);
        assert_eq!(next.completed_pending, ["announce"]);
        assert_eq!(cdn.calls.lock().unwrap().len(), 1, "no second invalidation");
        let sent = topic.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].sync_token, sent[0].added), (1000, 1));
        assert!(store.metadata("ip-ranges.json").is_empty());
        // And the run after that has nothing left to do.
        publish_ips(&target, &ips(&[1]), at(3000), &options())
            .await
            .unwrap();
        assert_eq!(topic.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_crash_after_the_write_leaves_everything_owed_to_the_next_run() {
        let store = MemoryStore::default();
        let cdn = RecordingCdn::default();
        let topic = RecordingTopic::default();
        // What a process that died right after its PUT leaves behind: the document and its record.
        let document = IpRanges {
            sync_token: 1000,
            entries: IpRanges::entries_of(&ips(&[1, 2]), "EGRESS"),
        };
        store.write("ip-ranges.json", document.to_json());
        store
            .objects
            .lock()
            .unwrap()
            .get_mut("ip-ranges.json")
            .unwrap()
            .metadata = BTreeMap::from([(
            pending::METADATA_KEY.to_owned(),
            "tasks=invalidate+announce;added=2;removed=0".to_owned(),
        )]);
        let target = Target {
            text: None,
            ..announcing(&store, Some(&cdn), &topic)
        };
        let report = publish_ips(&target, &ips(&[1, 2]), at(5000), &options())
            .await
            .unwrap();
        assert!(!report.changed);
        assert_eq!(report.completed_pending, ["invalidate", "announce"]);
        assert_eq!(
            cdn.calls.lock().unwrap().as_slice(),
            [vec!["/ip-ranges.json".to_owned()]]
        );
        let sent = topic.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].sync_token, 1000,
            "the document in place, not a new one"
        );
        assert_eq!(published(&store), document);
        assert!(store.metadata("ip-ranges.json").is_empty());
    }

    #[tokio::test]
    async fn a_refused_run_announces_nothing_and_keeps_what_is_owed() {
        let store = MemoryStore::default();
        let topic = RecordingTopic::default();
        *topic.failures.lock().unwrap() = 1;
        let target = announcing(&store, None, &topic);
        publish_ips(&target, &ips(&[1, 2, 3, 4, 5]), at(1000), &options())
            .await
            .unwrap_err();
        let err = publish_ips(&target, &ips(&[1]), at(2000), &options())
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::Refused(_)), "{err}");
        assert!(topic.sent.lock().unwrap().is_empty());
        assert!(store
            .metadata("ip-ranges.json")
            .contains_key(pending::METADATA_KEY));
    }

    #[tokio::test]
    async fn a_preview_reads_the_bucket_and_writes_only_the_file() {
        let bucket = MemoryStore::default();
        publish_ips(&s3(&bucket, None), &ips(&[1, 2]), at(1000), &options())
            .await
            .unwrap();
        let puts = bucket.puts();
        let dir = std::env::temp_dir().join(format!("allowlist-preview-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("preview.json");
        let out = out.to_str().unwrap();
        let target = Target {
            json: Place {
                store: &FileStore,
                key: out,
            },
            text: None,
            baseline: Baseline::Elsewhere(Place {
                store: &bucket,
                key: "ip-ranges.json",
            }),
            cdn: None,
            announce: None,
            prefix_lists: None,
        };
        // Unchanged against the bucket: the file still gets the published document.
        let report = publish_ips(&target, &ips(&[1, 2]), at(2000), &options())
            .await
            .unwrap();
        assert!(!report.changed);
        let file = IpRanges::parse(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(file.sync_token, 1000);
        // The guards still use the bucket's document.
        let err = publish_ips(
            &target,
            &ips(&[]),
            at(2000),
            &PublishOptions {
                min_count: 0,
                ..options()
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, PublishError::Refused(Refusal::Shrink { .. })),
            "{err}"
        );
        assert_eq!(bucket.puts(), puts);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
