//! The command line: clap parses the flags (each also read from an `ALLOWLIST_KNOCK_…` variable),
//! then [`ServerArgs::settings`] reads and checks the doors, keys and OIDC settings into the
//! handler's [`Settings`]. Every problem names its flag, door or key; all end in exit code 2.

use crate::api::Settings;
use crate::doors::Doors;
use crate::keys::ApiKeys;
use crate::oidc::Oidc;
use allowlist_core::logging::{LogFormat, LogLevel};
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "allowlist-knock",
    version,
    about = "Knock for temporary ingress without AWS credentials: grants the caller's IP on a door's security groups, behind OIDC or API keys",
    long_about = "Knock for temporary ingress without AWS credentials.\n\n\
                  `serve` runs the HTTP API; on AWS Lambda (AWS_LAMBDA_RUNTIME_API set) the \
                  binary with no arguments serves function-URL events with the same handler, \
                  its flags read from the ALLOWLIST_KNOCK_... variables. `open` and `close` \
                  are the client.\n\n\
                  Every flag also reads the ALLOWLIST_KNOCK_... environment variable shown. \
                  AWS credentials come from the SDK's usual sources.\n\n\
                  Exit codes: 0 success, 1 error, 2 bad usage."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Region of doors that name none [default: the SDK's, from AWS_REGION]
    #[arg(
        long,
        global = true,
        env = "ALLOWLIST_KNOCK_REGION",
        value_name = "REGION"
    )]
    pub region: Option<String>,
    /// Custom endpoint for AWS, e.g. a local emulator [default: the SDK's, from AWS_ENDPOINT_URL]
    #[arg(
        long,
        global = true,
        env = "ALLOWLIST_KNOCK_ENDPOINT_URL",
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// Log format on stderr: human lines, or one JSON object per line (CloudWatch)
    #[arg(long, global = true, env = "ALLOWLIST_KNOCK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Most detailed log level shown
    #[arg(long, global = true, env = "ALLOWLIST_KNOCK_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the knock API over plain HTTP (put TLS in front)
    Serve(ServeArgs),
    /// Serve function-URL events on AWS Lambda (what the binary does with no arguments there)
    Lambda(ServerArgs),
    /// Knock: open DOOR for this machine's address and print the grant
    Open(ClientArgs),
    /// Close this machine's grant on DOOR
    Close(ClientArgs),
    /// Print the keys-file line for an API key read from stdin (`name = "sha256:…"`)
    HashKey {
        /// The key's name in the keys file
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080, [::]:8080 (port 0 picks one)
    #[arg(long, env = "ALLOWLIST_KNOCK_LISTEN", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM), with --tls-key; without both, plain HTTP
    /// for a load balancer or proxy that terminates TLS in front
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What the handler is built from (serve and Lambda alike).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The doors file (TOML)
    #[arg(long, env = "ALLOWLIST_KNOCK_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// The API keys file (TOML, name = "sha256:<hex>")
    #[arg(long, env = "ALLOWLIST_KNOCK_API_KEYS", value_name = "FILE")]
    pub api_keys: Option<PathBuf>,
    /// OIDC issuer whose tokens are accepted (https; http only on a loopback address)
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_OIDC_ISSUER",
        value_name = "URL",
        requires = "oidc_audience"
    )]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) tokens must carry
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_OIDC_AUDIENCE",
        value_name = "AUD",
        requires = "oidc_issuer"
    )]
    pub oidc_audience: Option<String>,
    /// A proxy whose X-Forwarded-For is believed (CIDR). Repeat or comma-separate
    #[arg(
        long = "trusted-proxy",
        env = "ALLOWLIST_KNOCK_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// Live grants one principal may hold at once (a re-knock that extends is not a new one)
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_MAX_GRANTS_PER_PRINCIPAL",
        default_value_t = 3,
        value_name = "N"
    )]
    pub max_grants_per_principal: usize,
    /// Requests per minute one principal may make (knock, close, list); 0 = no limit
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_RATE_PER_PRINCIPAL",
        default_value_t = 10,
        value_name = "N"
    )]
    pub rate_per_principal: u32,
    /// Requests per minute one source address (an IPv6 /64) may make, whatever the outcome; 0 = no
    /// limit
    #[arg(
        long,
        env = "ALLOWLIST_KNOCK_RATE_PER_IP",
        default_value_t = 60,
        value_name = "N"
    )]
    pub rate_per_ip: u32,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The door to open or close
    pub door: String,
    /// The knock service, e.g. https://knock.example.com
    #[arg(long, env = "ALLOWLIST_KNOCK_URL", value_name = "URL")]
    pub url: String,
    /// How long to stay open (open only; at most the door's max_ttl) [default: the door's]
    #[arg(long, env = "ALLOWLIST_KNOCK_TTL", value_name = "DURATION")]
    pub ttl: Option<String>,
    /// A command printing a bearer token on stdout, e.g. "gh auth token" (run with sh -c).
    /// Otherwise ALLOWLIST_KNOCK_TOKEN (a token) or ALLOWLIST_KNOCK_API_KEY (an API key)
    #[arg(long, env = "ALLOWLIST_KNOCK_TOKEN_COMMAND", value_name = "COMMAND")]
    pub token_command: Option<String>,
}

/// A bad flag value, named.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct UsageError {
    pub flag: String,
    pub message: String,
}

impl UsageError {
    pub fn new(flag: &str, message: impl Into<String>) -> Self {
        UsageError {
            flag: flag.to_owned(),
            message: message.into(),
        }
    }
}

impl ServerArgs {
    /// Reads the doors and keys files and checks them together: every door's way in must exist
    /// (keys it names, an issuer for its claims).
    pub fn settings(&self, default_region: Option<&str>) -> Result<Settings, UsageError> {
        let doors = Doors::load(&self.config, default_region)
            .map_err(|e| UsageError::new("--config", e.to_string()))?;
        let keys = match &self.api_keys {
            None => None,
            Some(path) => Some(
                ApiKeys::load(path).map_err(|e| UsageError::new("--api-keys", e.to_string()))?,
            ),
        };
        let oidc = match (&self.oidc_issuer, &self.oidc_audience) {
            (Some(issuer), Some(audience)) => {
                Some(Oidc::new(issuer, audience).map_err(|m| UsageError::new("--oidc-issuer", m))?)
            }
            _ => None,
        };
        for door in doors.doors.values() {
            for key in &door.allow_keys {
                if !keys.as_ref().is_some_and(|k| k.contains(key)) {
                    return Err(UsageError::new(
                        "--config",
                        format!(
                            "door {:?}: allow_keys names {key:?}, which is not in the API keys file{}",
                            door.name,
                            if keys.is_none() { " (no --api-keys given)" } else { "" }
                        ),
                    ));
                }
            }
            if !door.allow_claims.is_empty() && oidc.is_none() {
                return Err(UsageError::new(
                    "--config",
                    format!(
                        "door {:?}: allow_claims needs --oidc-issuer and --oidc-audience",
                        door.name
                    ),
                ));
            }
        }
        if self.max_grants_per_principal == 0 {
            return Err(UsageError::new(
                "--max-grants-per-principal",
                "must be at least 1",
            ));
        }
        Ok(Settings {
            doors,
            keys,
            oidc,
            trusted_proxies: self.trusted_proxies.iter().map(IpNet::trunc).collect(),
            rate_per_ip: self.rate_per_ip,
            rate_per_principal: self.rate_per_principal,
            max_grants_per_principal: self.max_grants_per_principal,
        })
    }
}
