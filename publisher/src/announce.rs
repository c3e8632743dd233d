//! Announcing a change on SNS, the way AWS announces `ip-ranges.json` changes on its
//! `AmazonIpSpaceChanged` topic: one message whose body is JSON with exactly AWS's four fields
//! (`create-time`, `synctoken`, `md5`, `url`), plus message attributes subscribers can filter on.

use allowlist_core::clock::format_instant;
use allowlist_core::error::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use md5::{Digest, Md5};
use std::time::{Duration, UNIX_EPOCH};

/// The subject of every message (email subscribers see it).
pub const SUBJECT: &str = "allowlist: the published IP ranges changed";

/// One announcement of one published document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The document's `syncToken` (Unix seconds of the change).
    pub sync_token: u64,
    /// Hex MD5 of the document's bytes as written.
    pub md5: String,
    /// Where customers fetch the document (`--public-url`).
    pub url: String,
    /// Prefixes in the document, added and removed by the change.
    pub prefixes: usize,
    pub added: usize,
    pub removed: usize,
}

impl Announcement {
    /// The announcement of `bytes`, the document as written.
    pub fn of(
        bytes: &[u8],
        sync_token: u64,
        url: &str,
        prefixes: usize,
        added: usize,
        removed: usize,
    ) -> Self {
        Announcement {
            sync_token,
            md5: hex::encode(Md5::digest(bytes)),
            url: url.to_owned(),
            prefixes,
            added,
            removed,
        }
    }

    /// `create-time` as AWS writes it: RFC 3339, UTC, `+00:00`.
    pub fn create_time(&self) -> String {
        let t = UNIX_EPOCH
            + Duration::from_secs(
                self.sync_token
                    .min(allowlist_core::clock::LATEST_INSTANT_SECS),
            );
        let z = format_instant(t);
        match z.strip_suffix('Z') {
            Some(base) => format!("{base}+00:00"),
            None => z,
        }
    }

    /// The message body: exactly AWS's four fields, in AWS's order.
    pub fn body(&self) -> String {
        let field = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        format!(
            "{{\"create-time\":{},\"synctoken\":{},\"md5\":{},\"url\":{}}}",
            field(&self.create_time()),
            field(&self.sync_token.to_string()),
            field(&self.md5),
            field(&self.url)
        )
    }

    /// Message attributes, as (name, SNS data type, value): `synctoken` (String, for dedup and
    /// filters), `prefixes`, `added`, `removed` (Number).
    pub fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        vec![
            ("synctoken", "String", self.sync_token.to_string()),
            ("prefixes", "Number", self.prefixes.to_string()),
            ("added", "Number", self.added.to_string()),
            ("removed", "Number", self.removed.to_string()),
        ]
    }
}

/// Something that delivers announcements.
#[async_trait]
pub trait Announcer: Send + Sync + std::fmt::Debug {
    /// Publishes one announcement; returns the message id.
    async fn announce(&self, announcement: &Announcement) -> Result<String, AwsError>;
    /// The topic, for messages.
    fn topic(&self) -> &str;
}

/// An SNS topic.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: aws_sdk_sns::Client,
    arn: String,
    region: String,
}

impl SnsTopic {
    pub fn new(client: aws_sdk_sns::Client, arn: impl Into<String>) -> Self {
        let arn = arn.into();
        let region = topic_region(&arn).unwrap_or("-").to_owned();
        SnsTopic {
            client,
            arn,
            region,
        }
    }
}

#[async_trait]
impl Announcer for SnsTopic {
    async fn announce(&self, announcement: &Announcement) -> Result<String, AwsError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.arn)
            .subject(SUBJECT)
            .message(announcement.body());
        for (name, data_type, value) in announcement.attributes() {
            let attribute = MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| AwsError {
                    region: self.region.clone(),
                    operation: "Publish",
                    kind: AwsErrorKind::Request,
                    code: None,
                    message: e.to_string(),
                    status: None,
                })?;
            request = request.message_attributes(name, attribute);
        }
        let out = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&self.region, "Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    fn topic(&self) -> &str {
        &self.arn
    }
}

/// The region of an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`), when it is one.
pub fn topic_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty() =>
        {
            Some(region)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement() -> Announcement {
        Announcement::of(
            b"{\"syncToken\": \"1763726400\"}\n",
            1_763_726_400,
            "https://ips.example.com/ip-ranges.json",
            4,
            1,
            2,
        )
    }

    #[test]
    fn body_has_exactly_aws_four_fields() {
        let a = announcement();
        let body: serde_json::Value = serde_json::from_str(&a.body()).unwrap();
        let object = body.as_object().unwrap();
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["create-time", "md5", "synctoken", "url"]
        );
        assert_eq!(body["create-time"], "2025-11-21T12:00:00+00:00");
        assert_eq!(body["synctoken"], "1763726400");
        assert_eq!(body["url"], "https://ips.example.com/ip-ranges.json");
        // AWS's order on the wire.
        assert!(a.body().starts_with("{\"create-time\":"), "{}", a.body());
        assert!(a.body().find("\"synctoken\"") < a.body().find("\"md5\""));
    }

    #[test]
    fn md5_is_of_the_bytes_as_written() {
        // md5("") and md5("abc"), from RFC 1321's test suite.
        assert_eq!(
            Announcement::of(b"", 1, "u", 0, 0, 0).md5,
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Announcement::of(b"abc", 1, "u", 0, 0, 0).md5,
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn attributes_carry_the_counts() {
        let attrs = announcement().attributes();
        assert!(attrs.contains(&("synctoken", "String", "1763726400".into())));
        assert!(attrs.contains(&("added", "Number", "1".into())));
        assert!(attrs.contains(&("removed", "Number", "2".into())));
        assert!(attrs.contains(&("prefixes", "Number", "4".into())));
    }

    #[test]
    fn topic_arns_name_their_region() {
        assert_eq!(
            topic_region("arn:aws:sns:eu-west-1:123456789012:ip-ranges"),
            Some("eu-west-1")
        );
        for bad in [
            "ip-ranges",
            "arn:aws:sqs:eu-west-1:123456789012:q",
            "arn:aws:sns::123456789012:t",
            "arn:aws:sns:eu-west-1:1234:t",
            "arn:aws:sns:eu-west-1:123456789012:",
        ] {
            assert_eq!(topic_region(bad), None, "{bad}");
        }
    }
}
