//! The CDN in front of the bucket: after a change, the written paths are invalidated so customers
//! see the new list before `Cache-Control` would let the old one expire.

use allowlist_core::error::AwsError;
use async_trait::async_trait;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

/// Something that can drop cached copies of paths.
#[async_trait]
pub trait Cdn: Send + Sync + std::fmt::Debug {
    /// Invalidates `paths` (each starting with `/`); returns the invalidation's id.
    async fn invalidate(&self, paths: &[String], reference: &str) -> Result<String, AwsError>;
}

/// One CloudFront distribution.
#[derive(Debug, Clone)]
pub struct CloudFront {
    client: aws_sdk_cloudfront::Client,
    distribution_id: String,
}

impl CloudFront {
    pub fn new(client: aws_sdk_cloudfront::Client, distribution_id: impl Into<String>) -> Self {
        CloudFront {
            client,
            distribution_id: distribution_id.into(),
        }
    }
}

#[async_trait]
impl Cdn for CloudFront {
    async fn invalidate(&self, paths: &[String], reference: &str) -> Result<String, AwsError> {
        let error = |e| AwsError::from_sdk("global", "CreateInvalidation", e);
        let paths = Paths::builder()
            .quantity(i32::try_from(paths.len()).unwrap_or(i32::MAX))
            .set_items(Some(paths.to_vec()))
            .build()
            .map_err(|e| build_error(&e))?;
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(reference)
            .build()
            .map_err(|e| build_error(&e))?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(error)?;
        Ok(out
            .invalidation()
            .map(|i| i.id().to_owned())
            .unwrap_or_default())
    }
}

fn build_error(e: &dyn std::error::Error) -> AwsError {
    AwsError {
        region: "global".to_owned(),
        operation: "CreateInvalidation",
        kind: allowlist_core::AwsErrorKind::Request,
        code: None,
        message: e.to_string(),
        status: None,
    }
}

/// The CloudFront path of an S3 key: `/` plus the key, with characters outside the URL-safe set
/// percent-encoded (CloudFront matches invalidation paths against encoded request paths).
pub fn invalidation_path(key: &str) -> String {
    let mut path = String::from("/");
    for byte in key.bytes() {
        let safe = byte.is_ascii_alphanumeric() || b"-._~/!$&'()+,;=:@".contains(&byte);
        if safe {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::invalidation_path;

    #[test]
    fn paths_are_rooted_and_encoded() {
        assert_eq!(invalidation_path("ip-ranges.json"), "/ip-ranges.json");
        assert_eq!(
            invalidation_path("v1/egress ips.txt"),
            "/v1/egress%20ips.txt"
        );
        assert_eq!(invalidation_path("a*b"), "/a%2Ab");
    }
}
