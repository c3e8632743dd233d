//! AWS client setup: the SDK configuration is loaded once per process (default credential chain,
//! profile, endpoint override, an optional base role), one client per service and region is built
//! on first use and reused, and each other account is reached through one assumed role whose
//! credentials and clients are kept for the life of the process. Every client of every region
//! and account shares one HTTPS client ([`shared_https_client`]).

use crate::accounts::{AssumeRole, CachedCredentials, DEFAULT_SESSION_NAME};
use crate::call_log::CallLog;
use crate::error::AwsError;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Builder as HttpClientBuilder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// A role to assume with the credentials found: every call is then made as that role (the
    /// base credentials of every account lookup too).
    pub assume_role: Option<AssumeRole>,
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

/// A loaded AWS configuration plus the per-region clients built from it, and the accounts
/// reached from it by assuming a role.
#[derive(Debug)]
pub struct Aws {
    base: SdkConfig,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
    organizations: Mutex<HashMap<String, aws_sdk_organizations::Client>>,
    /// Set when these credentials come from AssumeRole: fetched once, refreshed before expiry.
    assumed: Option<Arc<CachedCredentials>>,
    /// This configuration's credentials, cached, as the base of the roles assumed from it.
    base_credentials: Option<SharedCredentialsProvider>,
    /// One `Aws` per role assumed from this one.
    roles: Mutex<HashMap<AssumeRole, Arc<Aws>>>,
}

/// The one HTTPS client of the process: what the SDK builds by default (rustls with aws-lc, the
/// proxy from `HTTPS_PROXY`/`NO_PROXY`), built once. Without it every service client (one per
/// region and account: 170 for 10 accounts × 17 regions) builds its own, with its own connection
/// pool and TLS configuration; shared, the clients with the same timeouts share one connector and
/// its pool (the SDK caches connectors by timeouts).
fn shared_https_client() -> SharedHttpClient {
    HttpClientBuilder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

impl Aws {
    /// Loads the SDK configuration. Credentials are resolved lazily, on the first call.
    pub async fn load(settings: &AwsSettings) -> Self {
        let operation = settings.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(shared_https_client())
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
        let loaded = loader.load().await;
        match &settings.assume_role {
            None => Aws::from_config(loaded),
            Some(role) => {
                let from = loaded.credentials_provider();
                Aws::with_role(&loaded, from, role).await
            }
        }
    }

    /// Wraps an already loaded SDK configuration (tests and callers with their own setup).
    pub fn from_config(base: SdkConfig) -> Self {
        Aws::new(base, None)
    }

    fn new(base: SdkConfig, assumed: Option<Arc<CachedCredentials>>) -> Self {
        let base_credentials = base
            .credentials_provider()
            .map(|p| SharedCredentialsProvider::new(CachedCredentials::new(p)));
        Aws {
            base,
            ec2: Mutex::new(HashMap::new()),
            sts: Mutex::new(HashMap::new()),
            organizations: Mutex::new(HashMap::new()),
            assumed,
            base_credentials,
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// `config` acting as `role`, assumed with the credentials `from` (STS in the home region,
    /// else us-east-1, through the same endpoint as every other client).
    async fn with_role(
        config: &SdkConfig,
        from: Option<SharedCredentialsProvider>,
        role: &AssumeRole,
    ) -> Aws {
        let sts_region = config
            .region()
            .cloned()
            .unwrap_or_else(|| Region::from_static(STS_FALLBACK_REGION));
        let mut builder = AssumeRoleProvider::builder(&role.role_arn)
            .configure(config)
            .region(sts_region)
            .session_name(role.session_name.as_deref().unwrap_or(DEFAULT_SESSION_NAME));
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id);
        }
        let provider = match from {
            Some(from) => builder.build_from_provider(from).await,
            None => builder.build().await,
        };
        let cached = Arc::new(CachedCredentials::new(SharedCredentialsProvider::new(
            provider,
        )));
        let assumed = config
            .clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(SharedCached(cached.clone())))
            .build();
        Aws::new(assumed, Some(cached))
    }

    /// The account reached by assuming `role` with these credentials: built on first use and kept,
    /// so AssumeRole runs once per role per process and its clients are reused.
    pub async fn assumed(&self, role: &AssumeRole) -> Arc<Aws> {
        if let Some(found) = lock(&self.roles).get(role) {
            return found.clone();
        }
        // Built outside the lock (building awaits); a concurrent twin is dropped unused.
        let built = Arc::new(Aws::with_role(&self.base, self.base_credentials.clone(), role).await);
        lock(&self.roles)
            .entry(role.clone())
            .or_insert(built)
            .clone()
    }

    /// For an assumed role: gets its credentials now (one AssumeRole, then cached), so a refused
    /// AssumeRole is one error naming the role rather than one per call. Nothing to do otherwise.
    pub async fn check_assumed(&self) -> Result<(), AwsError> {
        let Some(cached) = &self.assumed else {
            return Ok(());
        };
        let region = self.home_region().unwrap_or(STS_FALLBACK_REGION).to_owned();
        cached
            .get()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_assume_role(&region, &e))
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

impl Aws {
    /// The Organizations client for `region`, built on first use.
    pub fn organizations(&self, region: &str) -> aws_sdk_organizations::Client {
        cached(&self.organizations, region, || {
            let conf = aws_sdk_organizations::config::Builder::from(&self.base)
                .region(Region::new(region.to_owned()))
                .interceptor(CallLog::new(region))
                .build();
            aws_sdk_organizations::Client::from_conf(conf)
        })
    }
}

/// Where STS is asked when no home region is set.
const STS_FALLBACK_REGION: &str = "us-east-1";

/// A shared [`CachedCredentials`] as a credentials provider.
#[derive(Debug)]
struct SharedCached(Arc<CachedCredentials>);

impl aws_credential_types::provider::ProvideCredentials for SharedCached {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.0.get())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        // A panic while holding the lock cannot leave the map half-written.
        Err(poisoned) => poisoned.into_inner(),
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
