//! Typed errors for calls to AWS: which region, which operation, and the AWS error code as data.
//!
//! Callers match on [`AwsError::code`] (e.g. `InvalidPermission.NotFound`) to treat some failures
//! as success; diagnostics and CLI messages are built from the fields, never from parsing text.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use std::fmt;

/// What kind of failure an AWS call ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AWS (or the emulator) answered with an error code.
    Service,
    /// The call did not finish within the configured timeout (after retries).
    Timeout,
    /// The request could not be sent or the connection failed (DNS, refused, reset, TLS).
    Network,
    /// The response could not be understood.
    Response,
    /// The request could not be built (bad input or missing credentials/region).
    Request,
}

/// One failed AWS call.
#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    /// The region the call was made in.
    pub region: String,
    /// The API operation, e.g. `DescribeNatGateways`.
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    /// The AWS error code, e.g. `UnauthorizedOperation`, when AWS gave one.
    pub code: Option<String>,
    /// A human-readable message (AWS's message, or the transport error).
    pub message: String,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {} failed: ", self.operation, self.region)?;
        match (&self.code, self.kind) {
            (Some(code), _) => write!(f, "{code}: {}", self.message),
            (None, AwsErrorKind::Timeout) => write!(f, "timed out: {}", self.message),
            (None, AwsErrorKind::Network) => write!(f, "could not reach AWS: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }?;
        if let (None, Some(status)) = (&self.code, self.status) {
            write!(f, " (HTTP {status})")?;
        }
        Ok(())
    }
}

impl AwsError {
    /// Converts an SDK error, keeping the AWS error code and HTTP status as data.
    pub fn from_sdk<E>(
        region: &str,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self::from_sdk_ref(region, operation, &err)
    }

    fn from_sdk_ref<E>(
        region: &str,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (kind, code, message) = match err {
            SdkError::ServiceError(service) => {
                let meta = service.err();
                let code = meta.code().map(str::to_owned);
                let message = meta
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| chain(err));
                (AwsErrorKind::Service, code, message)
            }
            SdkError::TimeoutError(_) => (AwsErrorKind::Timeout, None, context(err)),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => {
                (AwsErrorKind::Timeout, None, context(err))
            }
            SdkError::DispatchFailure(_) => (AwsErrorKind::Network, None, context(err)),
            SdkError::ResponseError(_) => (AwsErrorKind::Response, None, context(err)),
            _ => (AwsErrorKind::Request, None, context(err)),
        };
        AwsError {
            region: region.to_owned(),
            operation,
            kind,
            code,
            message,
            status,
        }
    }

    /// Credentials of an assumed role that could not be had: the STS AssumeRole error (code,
    /// message, status) when that is what failed, else what the credentials chain said. `region`
    /// is where STS was asked.
    pub fn from_assume_role(region: &str, err: &CredentialsError) -> Self {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = next {
            if let Some(sdk) = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
                return Self::from_sdk_ref(region, "AssumeRole", sdk);
            }
            next = e.source();
        }
        let kind = match err {
            CredentialsError::ProviderTimedOut(_) => AwsErrorKind::Timeout,
            _ => AwsErrorKind::Request,
        };
        AwsError {
            region: region.to_owned(),
            operation: "AssumeRole",
            kind,
            code: None,
            message: chain(err),
            status: None,
        }
    }

    /// True when AWS answered with exactly this error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// The SDK's error chain in one line, each cause once, e.g. "dispatch failure: io error:
/// connection refused" (without the Debug dump `DisplayErrorContext` appends).
fn context<E: std::error::Error + 'static>(err: &SdkError<E, HttpResponse>) -> String {
    chain(err)
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their cause's text; keep each piece once.
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: Option<&str>, kind: AwsErrorKind, status: Option<u16>) -> AwsError {
        AwsError {
            region: "eu-central-1".into(),
            operation: "DescribeNatGateways",
            kind,
            code: code.map(str::to_owned),
            message: "boom".into(),
            status,
        }
    }

    #[test]
    fn display_names_operation_region_and_code() {
        let e = error(
            Some("UnauthorizedOperation"),
            AwsErrorKind::Service,
            Some(403),
        );
        assert_eq!(
            e.to_string(),
            "DescribeNatGateways in eu-central-1 failed: UnauthorizedOperation: boom"
        );
        assert!(e.has_code("UnauthorizedOperation"));
        assert!(!e.has_code("Throttling"));
    }

    #[test]
    fn chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Leaf;
        impl fmt::Display for Leaf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connection refused")
            }
        }
        impl std::error::Error for Leaf {}
        #[derive(Debug)]
        struct Wrap(Leaf, &'static str);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.1)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(
            chain(&Wrap(Leaf, "dispatch failure")),
            "dispatch failure: connection refused"
        );
        // A wrapper that already quotes its cause does not repeat it.
        assert_eq!(
            chain(&Wrap(Leaf, "io error: connection refused")),
            "io error: connection refused"
        );
    }

    #[test]
    fn display_without_code_says_what_happened() {
        let e = error(None, AwsErrorKind::Timeout, None);
        assert_eq!(
            e.to_string(),
            "DescribeNatGateways in eu-central-1 failed: timed out: boom"
        );
        let e = error(None, AwsErrorKind::Response, Some(500));
        assert_eq!(
            e.to_string(),
            "DescribeNatGateways in eu-central-1 failed: boom (HTTP 500)"
        );
    }
}
