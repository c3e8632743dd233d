//! The client: `open DOOR --url URL` knocks and returns the grant, `close DOOR` closes it. The
//! credential comes from `--token-command` (its stdout, e.g. `gh auth token`), else
//! `ALLOWLIST_KNOCK_TOKEN` (a bearer token), else `ALLOWLIST_KNOCK_API_KEY`; it is sent only in
//! its header and never printed.

use serde_json::Value;
use std::time::Duration;

pub const TOKEN_ENV: &str = "ALLOWLIST_KNOCK_TOKEN";
pub const API_KEY_ENV: &str = "ALLOWLIST_KNOCK_API_KEY";
const TIMEOUT: Duration = Duration::from_secs(60);

/// A credential to send.
pub enum Credential {
    Bearer(String),
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Bearer(_) => "Bearer(..)",
            Credential::ApiKey(_) => "ApiKey(..)",
        })
    }
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no credential: give --token-command, or set {TOKEN_ENV} or {API_KEY_ENV}")]
    NoCredential,
    #[error("--token-command failed: {0}")]
    TokenCommand(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("HTTP {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// The credential to use.
pub fn credential(token_command: Option<&str>) -> Result<Credential, ClientError> {
    if let Some(command) = token_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| ClientError::TokenCommand(e.to_string()))?;
        if !out.status.success() {
            return Err(ClientError::TokenCommand(format!(
                "it exited with {}",
                out.status
            )));
        }
        let token = String::from_utf8(out.stdout)
            .map_err(|_| ClientError::TokenCommand("its output is not UTF-8".into()))?
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(ClientError::TokenCommand("it printed nothing".into()));
        }
        return Ok(Credential::Bearer(token));
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(token) = env(TOKEN_ENV) {
        return Ok(Credential::Bearer(token.trim().to_owned()));
    }
    if let Some(key) = env(API_KEY_ENV) {
        return Ok(Credential::ApiKey(key.trim().to_owned()));
    }
    Err(ClientError::NoCredential)
}

/// `POST` (open, with `ttl`) or `DELETE` (close) on the door's knock path; the answer's JSON
/// (Null for 204).
pub async fn knock(
    base_url: &str,
    door: &str,
    credential: &Credential,
    open: bool,
    ttl: Option<&str>,
) -> Result<Value, ClientError> {
    let url = format!("{}/v1/doors/{door}/knock", base_url.trim_end_matches('/'));
    let shown = allowlist_core::url::redacted(&url);
    let http = |e: reqwest::Error| ClientError::Http {
        url: shown.clone(),
        message: e.without_url().to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(http)?;
    let mut request = if open {
        let body = match ttl {
            Some(ttl) => serde_json::json!({ "ttl": ttl }).to_string(),
            None => "{}".to_owned(),
        };
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    } else {
        client.delete(&url)
    };
    request = match credential {
        Credential::Bearer(token) => request.header("authorization", format!("Bearer {token}")),
        Credential::ApiKey(key) => request.header("x-api-key", key.as_str()),
    };
    let response = request.send().await.map_err(http)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(http)?;
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    if (200..300).contains(&status) {
        return Ok(json);
    }
    let field = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Err(ClientError::Refused {
        status,
        code: field("code"),
        message: field("message"),
    })
}
