//! AWS client setup: the SDK configuration is loaded once per process (default credential chain,
//! profile, endpoint override), and one EC2 client per region is built on first use and reused.

use crate::call_log::CallLog;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Where and how to reach AWS. Every field is optional; unset fields fall back to the SDK's usual
/// sources (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, `~/.aws/config`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// The home region: used for calls that are not per-region (DescribeRegions).
    pub region: Option<String>,
    /// A named profile from the shared config files.
    pub profile: Option<String>,
    /// A custom endpoint for every service, e.g. a local emulator.
    pub endpoint_url: Option<String>,
    /// Time allowed for one AWS call, retries and backoff included (default 60 s). One attempt
    /// gets at most 20 s of it, and connecting at most 5 s.
    pub request_timeout: Option<Duration>,
}

/// Attempts per call, including the first: transient errors (throttling, 5xx, timeouts) are
/// retried with the SDK's bounded exponential backoff.
const MAX_ATTEMPTS: u32 = 4;
/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one attempt of one call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed for one call, all attempts and backoff included, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A loaded AWS configuration plus the per-region clients built from it.
#[derive(Debug)]
pub struct Aws {
    base: SdkConfig,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

impl Aws {
    /// Loads the SDK configuration. Credentials are resolved lazily, on the first call.
    pub async fn load(settings: &AwsSettings) -> Self {
        let operation = settings.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT.min(operation))
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(operation))
                    .operation_timeout(operation)
                    .build(),
            );
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Aws::from_config(loader.load().await)
    }

    /// Wraps an already loaded SDK configuration (tests and callers with their own setup).
    pub fn from_config(base: SdkConfig) -> Self {
        Aws {
            base,
            ec2: Mutex::new(HashMap::new()),
            sts: Mutex::new(HashMap::new()),
        }
    }

    /// The loaded SDK configuration, for building clients of other services.
    pub fn config(&self) -> &SdkConfig {
        &self.base
    }

    /// The home region, if one is configured.
    pub fn home_region(&self) -> Option<&str> {
        self.base.region().map(Region::as_ref)
    }

    /// The EC2 client for `region`, built on first use.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        cached(&self.ec2, region, || {
            let conf = aws_sdk_ec2::config::Builder::from(&self.base)
                .region(Region::new(region.to_owned()))
                .interceptor(CallLog::new(region))
                .build();
            aws_sdk_ec2::Client::from_conf(conf)
        })
    }

    /// The STS client for `region`, built on first use.
    pub fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        cached(&self.sts, region, || {
            let conf = aws_sdk_sts::config::Builder::from(&self.base)
                .region(Region::new(region.to_owned()))
                .interceptor(CallLog::new(region))
                .build();
            aws_sdk_sts::Client::from_conf(conf)
        })
    }
}

/// The client for `region` from `cache`, built with `build` on first use.
fn cached<C: Clone>(
    cache: &Mutex<HashMap<String, C>>,
    region: &str,
    build: impl FnOnce() -> C,
) -> C {
    let mut clients = match cache.lock() {
        Ok(guard) => guard,
        // A panic while holding the lock cannot leave the map half-written.
        Err(poisoned) => poisoned.into_inner(),
    };
    clients
        .entry(region.to_owned())
        .or_insert_with(build)
        .clone()
}
