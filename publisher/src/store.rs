//! Where documents are read from and written to: an S3 bucket (conditional writes on the ETag)
//! or local files (`-` is stdout). Both behind one small trait so `publish` reads the same either
//! way, and tests can put an in-memory store behind it.

use allowlist_core::error::AwsError;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest published object we read back (a document of ~500,000 prefixes).
pub const MAX_OBJECT_BYTES: i64 = 64 * 1024 * 1024;

/// An object as read: its bytes, the version tag a conditional write refers to, and its user
/// metadata (S3's `x-amz-meta-*`, keys without the prefix; files have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub etag: String,
    pub metadata: BTreeMap<String, String>,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Only if the object is still the version read (`If-Match`).
    Matches(String),
    /// Only if there is still no object (`If-None-Match: *`).
    Absent,
    /// Unconditionally (local files, which have no concurrent writer we could detect).
    Always,
}

impl Condition {
    /// The condition that protects a write over `read`.
    pub fn over(read: Option<&Stored>) -> Condition {
        match read {
            Some(stored) => Condition::Matches(stored.etag.clone()),
            None => Condition::Absent,
        }
    }
}

/// The headers a written object carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: &'static str,
    pub cache_control: String,
    /// User metadata (S3's `x-amz-meta-*`; ignored by local files).
    pub metadata: BTreeMap<String, String>,
}

/// Why a read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the object since it was read (HTTP 412 or 409 from S3).
    #[error("{location} changed since it was read ({code})")]
    Conflict { location: String, code: String },
    #[error("{0}")]
    Aws(AwsError),
    #[error("{location} is larger than {MAX_OBJECT_BYTES} bytes; refusing to read it")]
    TooLarge { location: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A place that holds documents by key.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The object at `key`, or None when there is none.
    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError>;
    /// Writes `bytes` to `key` if `condition` still holds; returns the written version's tag
    /// (None when the store has none, e.g. stdout).
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        condition: Condition,
    ) -> Result<Option<String>, StoreError>;
    /// How a human names the object at `key` (`s3://bucket/key`, a path, `stdout`).
    fn location(&self, key: &str) -> String;
}

/// A bucket on S3 (or an S3-compatible endpoint).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    region: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        let region = client
            .config()
            .region()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".to_owned());
        S3Store {
            client,
            bucket: bucket.into(),
            region,
        }
    }
}

#[async_trait]
impl Store for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => {
                return Err(StoreError::Aws(AwsError::from_sdk(
                    &self.region,
                    "GetObject",
                    err,
                )))
            }
        };
        if output.content_length().unwrap_or(0) > MAX_OBJECT_BYTES {
            return Err(StoreError::TooLarge {
                location: self.location(key),
            });
        }
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let metadata = output
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| {
                StoreError::Aws(AwsError {
                    region: self.region.clone(),
                    operation: "GetObject",
                    kind: allowlist_core::AwsErrorKind::Network,
                    code: None,
                    message: format!("reading the body failed: {e}"),
                    status: None,
                })
            })?
            .into_bytes()
            .to_vec();
        Ok(Some(Stored {
            bytes,
            etag,
            metadata,
        }))
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        condition: Condition,
    ) -> Result<Option<String>, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(meta.content_type)
            .cache_control(&meta.cache_control)
            .set_metadata(
                (!meta.metadata.is_empty()).then(|| meta.metadata.clone().into_iter().collect()),
            )
            .body(ByteStream::from(bytes));
        request = match condition {
            Condition::Matches(etag) => request.if_match(etag),
            Condition::Absent => request.if_none_match("*"),
            Condition::Always => request,
        };
        match request.send().await {
            Ok(out) => Ok(out.e_tag().map(str::to_owned)),
            Err(err) => {
                let err = AwsError::from_sdk(&self.region, "PutObject", err);
                let conflict = matches!(err.status, Some(409 | 412))
                    || err.has_code("PreconditionFailed")
                    || err.has_code("ConditionalRequestConflict");
                if conflict {
                    Err(StoreError::Conflict {
                        location: self.location(key),
                        code: err.code.unwrap_or_else(|| "HTTP 412".to_owned()),
                    })
                } else {
                    Err(StoreError::Aws(err))
                }
            }
        }
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// Local files; the key is a path, and `-` means stdout (never read, always written).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStore;

/// The key that means stdout.
pub const STDOUT: &str = "-";

#[async_trait]
impl Store for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        if key == STDOUT {
            return Ok(None);
        }
        match std::fs::read(key) {
            Ok(bytes) => {
                let etag = hex::encode(Sha256::digest(&bytes));
                Ok(Some(Stored {
                    bytes,
                    etag,
                    metadata: BTreeMap::new(),
                }))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                action: "read",
                path: key.to_owned(),
                source,
            }),
        }
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _meta: &ObjectMeta,
        _condition: Condition,
    ) -> Result<Option<String>, StoreError> {
        let io = |action, source| StoreError::Io {
            action,
            path: key.to_owned(),
            source,
        };
        if key == STDOUT {
            let mut out = std::io::stdout().lock();
            return out
                .write_all(&bytes)
                .and_then(|()| out.flush())
                .map(|()| None)
                .map_err(|e| io("write", e));
        }
        let etag = hex::encode(Sha256::digest(&bytes));
        // Write a sibling file and rename it over the target: readers never see half a file.
        let path = Path::new(key);
        let tmp = temp_sibling(path);
        std::fs::write(&tmp, &bytes).map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, path)
            .map(|()| Some(etag))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io("replace", e)
            })
    }

    fn location(&self, key: &str) -> String {
        if key == STDOUT {
            "stdout".to_owned()
        } else {
            key.to_owned()
        }
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            content_type: "text/plain",
            cache_control: "no-cache".into(),
            metadata: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn files_round_trip_atomically() {
        let dir = std::env::temp_dir().join(format!("allowlist-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ip-ranges.json");
        let key = path.to_str().unwrap();
        assert_eq!(FileStore.get(key).await.unwrap(), None);
        FileStore
            .put(key, b"one".to_vec(), &meta(), Condition::Absent)
            .await
            .unwrap();
        let first = FileStore.get(key).await.unwrap().unwrap();
        assert_eq!(first.bytes, b"one");
        FileStore
            .put(key, b"two".to_vec(), &meta(), Condition::over(Some(&first)))
            .await
            .unwrap();
        let second = FileStore.get(key).await.unwrap().unwrap();
        assert_eq!(second.bytes, b"two");
        assert_ne!(first.etag, second.etag);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn unwritable_path_is_an_io_error_naming_it() {
        let err = FileStore
            .put(
                "/nonexistent-dir/x.json",
                b"x".to_vec(),
                &meta(),
                Condition::Always,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.json"), "{err}");
    }
}
