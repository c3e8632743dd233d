//! `publish`: look up the egress IPs, compare them with the published document, and write the
//! document (and its plain-text twin) only when the prefix set changed and every guard agrees.
//!
//! The order of a cycle: lookup (all regions or nothing) → read the published document → guards
//! → conditional write of the JSON → the text list → CloudFront invalidation. A conflicting
//! concurrent writer sends the cycle back to the read; nothing is ever written over a version we
//! did not read.

use crate::cdn::{invalidation_path, Cdn};
use crate::regions::{self, RegionFailure};
use crate::store::{Condition, ObjectMeta, Store, StoreError, Stored};
use allowlist_core::clock::Clock;
use allowlist_core::document::{unix_seconds, IpRanges, JSON_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use allowlist_core::egress::{self, EgressIps, EgressQuery, LookupError};
use allowlist_core::error::AwsError;
use allowlist_core::Aws;
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
    /// Read-compare-write attempts used (more than 1 after a concurrent writer).
    pub attempts: u32,
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
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error(
        "{location} kept changing while we wrote it ({MAX_ATTEMPTS} attempts); another publisher \
         is writing it: try again"
    )]
    Busy { location: String },
    #[error(
        "wrote {written} but the CloudFront invalidation failed: {error}. Cached copies expire by \
         Cache-Control; the next change invalidates again"
    )]
    Invalidation { written: String, error: AwsError },
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
            PublishError::Store(_)
            | PublishError::Busy { .. }
            | PublishError::Invalidation { .. } => 1,
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
            let failed: Vec<&str> = failures.iter().map(|f| f.region.as_str()).collect();
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
    let mut written_keys = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let read = match target.baseline {
            Baseline::Output => target.json.store.get(target.json.key).await,
            Baseline::Elsewhere(place) => place.store.get(place.key).await,
            Baseline::Nothing => Ok(None),
        }
        .map_err(PublishError::Store)?;
        let previous = baseline_document(target, read.as_ref(), options)?;

        let fresh = IpRanges {
            sync_token: unix_seconds(now),
            entries: entries.clone(),
        };
        check_guards(previous.as_ref(), &fresh, options)?;
        let changed = previous.as_ref().is_none_or(|p| p.entries != fresh.entries);
        let document = match previous.as_ref() {
            Some(prev) if !changed => prev.clone(),
            // A change always moves syncToken forward, even twice in one second.
            Some(prev) => IpRanges {
                sync_token: fresh.sync_token.max(prev.sync_token + 1),
                ..fresh
            },
            None => fresh,
        };

        let meta = |content_type| ObjectMeta {
            content_type,
            cache_control: options.cache_control.clone(),
        };
        let in_place = matches!(target.baseline, Baseline::Output);
        if changed || !in_place {
            let condition = if in_place {
                Condition::over(read.as_ref())
            } else {
                Condition::Always
            };
            let put = target
                .json
                .store
                .put(
                    target.json.key,
                    document.to_json(),
                    &meta(JSON_CONTENT_TYPE),
                    condition,
                )
                .await;
            if retry_on_conflict(put, attempt)? {
                continue;
            }
            tracing::info!(
                location = %target.json.location(),
                prefixes = document.prefix_count(),
                sync_token = document.sync_token,
                "wrote the document"
            );
            written.push(target.json.location());
            written_keys.push(target.json.key.to_owned());
        }

        if let Some(text) = target.text {
            let body = document.to_text().into_bytes();
            let current = text
                .store
                .get(text.key)
                .await
                .map_err(PublishError::Store)?;
            if current.as_ref().map(|c| &c.bytes) != Some(&body) {
                let put = text
                    .store
                    .put(
                        text.key,
                        body,
                        &meta(TEXT_CONTENT_TYPE),
                        Condition::over(current.as_ref()),
                    )
                    .await;
                if retry_on_conflict(put, attempt)? {
                    continue;
                }
                tracing::info!(location = %text.location(), "wrote the text list");
                written.push(text.location());
                written_keys.push(text.key.to_owned());
            }
        }

        let mut invalidation = None;
        if let (Some(cdn), false) = (target.cdn, written_keys.is_empty()) {
            let paths: Vec<String> = written_keys.iter().map(|k| invalidation_path(k)).collect();
            let reference = format!("allowlist-{}-{}", document.sync_token, random_suffix());
            match cdn.invalidate(&paths, &reference).await {
                Ok(id) => {
                    tracing::info!(invalidation = %id, paths = ?paths, "invalidated the CDN");
                    invalidation = Some(id);
                }
                Err(error) => {
                    return Err(PublishError::Invalidation {
                        written: written.join(", "),
                        error,
                    })
                }
            }
        }
        return Ok(PublishReport {
            regions: ips.regions.clone(),
            prefixes: document.prefix_count(),
            previous_prefixes: previous.as_ref().map(IpRanges::prefix_count),
            changed,
            sync_token: document.sync_token,
            written,
            invalidation,
            attempts: attempt,
        });
    }
    Err(PublishError::Busy {
        location: target.json.location(),
    })
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

/// Ok(true) to start the cycle again after a conflicting writer, Ok(false) when written.
fn retry_on_conflict(put: Result<(), StoreError>, attempt: u32) -> Result<bool, PublishError> {
    match put {
        Ok(()) => Ok(false),
        Err(StoreError::Conflict { location, code }) if attempt < MAX_ATTEMPTS => {
            tracing::warn!(
                %location,
                %code,
                attempt,
                "another writer changed the object since we read it; reading it again"
            );
            Ok(true)
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
