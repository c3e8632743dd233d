//! One debug line per AWS call attempt (service, operation, region, attempt, latency, HTTP status
//! and AWS error code), so `TF_LOG_PROVIDER=debug` or `--log-level debug` shows what was asked of
//! AWS, retries included. Never a header, a body beyond the error code, or a credential.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::time::Instant;

/// The interceptor every client of [`crate::Aws`] (and the publisher's S3 and CloudFront
/// clients) carries; `region` is the one the client was built for.
#[derive(Debug, Clone)]
pub struct CallLog {
    region: String,
}

impl CallLog {
    pub fn new(region: impl Into<String>) -> Self {
        CallLog {
            region: region.into(),
        }
    }
}

/// When the current attempt started.
#[derive(Debug, Clone)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "allowlist-call-log"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg.load::<Metadata>();
        let response = context.response();
        tracing::debug!(
            service = metadata.map_or("?", Metadata::service),
            operation = metadata.map_or("?", Metadata::name),
            region = %self.region,
            attempt = cfg.load::<RequestAttempts>().map_or(1, RequestAttempts::attempts),
            latency_ms = cfg
                .load::<AttemptStart>()
                .map_or(0, |s| u64::try_from(s.0.elapsed().as_millis()).unwrap_or(u64::MAX)),
            status = response.map_or(0, |r| r.status().as_u16()),
            error_code = response.and_then(error_code).unwrap_or(""),
            "aws call"
        );
        Ok(())
    }
}

/// The AWS error code of an error response (`<Code>…</Code>` of the XML protocols EC2, S3, STS
/// and CloudFront speak), when the body is in memory.
fn error_code(response: &HttpResponse) -> Option<&str> {
    if response.status().is_success() {
        return None;
    }
    let body = std::str::from_utf8(response.body().bytes()?).ok()?;
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(&body[start..start + len]).filter(|c| c.len() <= 128)
}
