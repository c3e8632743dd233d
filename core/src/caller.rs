//! Who is asking, and from where: the caller's ARN from STS (the audit trail on every grant) and
//! the caller's public IP from a "what is my IP" URL (the default CIDR of a grant).

use crate::aws::Aws;
use crate::error::AwsError;
use std::net::IpAddr;
use std::time::Duration;

/// The ARN of the credentials in use (STS GetCallerIdentity).
pub async fn caller_arn(aws: &Aws, region: &str) -> Result<String, AwsError> {
    Ok(caller_identity(aws, region).await?.arn)
}

/// Who the credentials in use are: their ARN and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub arn: String,
    pub account_id: String,
}

/// STS GetCallerIdentity in `region`.
pub async fn caller_identity(aws: &Aws, region: &str) -> Result<Identity, AwsError> {
    let out = aws
        .sts(region)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(region, "GetCallerIdentity", e))?;
    Ok(Identity {
        arn: out.arn().unwrap_or("unknown").to_owned(),
        account_id: out.account().unwrap_or_default().to_owned(),
    })
}

/// Why the caller's IP could not be detected.
#[derive(Debug, thiserror::Error)]
pub enum IpLookupError {
    #[error("could not reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered {body:?}, which is not an IP address")]
    NotAnIp { url: String, body: String },
}

/// Longest answer accepted from the IP lookup service.
const MAX_BODY: usize = 256;
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks `url` for the caller's public IP: a plain-text body holding one IPv4 or IPv6 address.
/// Errors name the URL with any credentials in it hidden ([`crate::url::redacted`]).
pub async fn public_ip(url: &str) -> Result<IpAddr, IpLookupError> {
    let shown = crate::url::redacted(url);
    let unreachable = |e: reqwest::Error| IpLookupError::Unreachable {
        url: shown.clone(),
        message: e.without_url().to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(LOOKUP_TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let response = client.get(url).send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(IpLookupError::Status {
            url: shown,
            status: status.as_u16(),
        });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)])
        .trim()
        .to_owned();
    text.parse().map_err(|_| IpLookupError::NotAnIp {
        url: shown,
        body: text,
    })
}
