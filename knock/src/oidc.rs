//! OIDC bearer tokens: the issuer's keys found through `<issuer>/.well-known/openid-configuration`
//! and its `jwks_uri`, cached, fetched again when a token names a key id we do not have (at most
//! once per [`REFRESH_MIN`]) or when they are older than [`KEYS_MAX_AGE`]. Only RS256 and ES256,
//! each only with a key of its own type; `iss` and `aud` must be ours; `exp` (required) and `nbf`
//! are checked against the injected clock with [`LEEWAY`]. The principal is `<issuer>#<sub>`.
//! Neither a token nor any part of it is ever logged or echoed in an error.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// Fewest seconds between two fetches of the keys (an unknown `kid` cannot make us hammer the
/// issuer).
pub const REFRESH_MIN: Duration = Duration::from_secs(10);
/// Keys older than this are fetched again before use (the old ones stay if that fails).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Largest discovery or JWKS document read.
const MAX_DOCUMENT: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a bearer token is refused (the messages are safe to return: they hold nothing of the
/// token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a JWT")]
    Malformed,
    #[error("tokens signed with {0} are not accepted (RS256 and ES256 only)")]
    Algorithm(String),
    #[error("the token's signing key is not one of the issuer's keys")]
    UnknownKey,
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The issuer's keys could not be fetched: not the caller's fault.
    #[error("the identity provider's keys are unavailable: {0}")]
    Unavailable(String),
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub claims: Map<String, Value>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct KeyCache {
    keys: Arc<Vec<Key>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

/// One issuer's token verifier.
pub struct Oidc {
    issuer: String,
    audience: String,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Checks an issuer URL: `https://`, or `http://` on a loopback address only (tests).
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(issuer)
        .map_err(|_| format!("{issuer:?} is not a URL such as \"https://accounts.example.com\""))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "{issuer:?} is plain http: only https issuers are accepted (http only on a loopback address)"
        )),
        _ => Err(format!("{issuer:?} is not an https:// URL")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

impl Oidc {
    /// A verifier for tokens of `issuer` for `audience` (the issuer URL checked first).
    pub fn new(issuer: &str, audience: &str) -> Result<Oidc, String> {
        check_issuer(issuer)?;
        if audience.is_empty() {
            return Err("the audience is empty".to_owned());
        }
        let loopback = reqwest::Url::parse(issuer).is_ok_and(|u| is_loopback(&u));
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!loopback)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Oidc {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            http,
            cache: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// A verifier whose keys are `jwks` (a JWK set document), as if just fetched: tests and the
    /// benchmark use it to verify without an issuer to ask.
    pub fn preloaded(issuer: &str, audience: &str, jwks: &Value) -> Result<Oidc, String> {
        let oidc = Oidc::new(issuer, audience)?;
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no keys array")?
            .iter()
            .filter_map(key_from_jwk)
            .collect();
        if let Ok(mut c) = oidc.cache.write() {
            c.keys = Arc::new(keys);
            c.fetched = Some(Instant::now());
            c.attempted = Some(Instant::now());
        }
        Ok(oidc)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetches the keys now (at start, so the first knock finds them warm).
    pub async fn warm(&self) {
        if let Err(e) = self.refresh(true).await {
            tracing::warn!(issuer = %self.issuer, error = %e, "could not fetch the issuer's keys yet");
        }
    }

    /// Verifies `token` at `now`.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Verified, TokenError> {
        // An `alg` outside jsonwebtoken's list ("none") fails here too.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.as_deref();
        let stale = self.read_cache(|c| c.fetched.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE));
        if stale {
            // On failure the old keys (if any) are still tried below.
            if let Err(e) = self.refresh(false).await {
                if self.read_cache(|c| c.keys.is_empty()) {
                    return Err(e);
                }
            }
        }
        let key = match self.find(kid, header.alg) {
            Some(key) => key,
            None => {
                self.refresh(false).await?;
                self.find(kid, header.alg).ok_or(TokenError::UnknownKey)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false; // checked below against our clock
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                TokenError::Invalid(match e.kind() {
                    K::InvalidSignature => "the signature does not verify",
                    K::InvalidAudience => "it is for another audience",
                    K::InvalidIssuer => "it is from another issuer",
                    K::InvalidAlgorithm => "its algorithm does not fit the key",
                    K::MissingRequiredClaim(_) => "it lacks exp, iss, aud or sub",
                    _ => "it cannot be read",
                })
            })?;
        let claims = data.claims;
        let now_secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = LEEWAY.as_secs_f64();
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(TokenError::Invalid("its exp is not a number"))?;
        if now_secs > exp + leeway {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_f64()
                .ok_or(TokenError::Invalid("its nbf is not a number"))?;
            if nbf > now_secs + leeway {
                return Err(TokenError::NotYetValid);
            }
        }
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::Invalid("its sub is not a string")),
        };
        Ok(Verified { subject, claims })
    }

    fn read_cache<T>(&self, f: impl FnOnce(&KeyCache) -> T) -> T {
        match self.cache.read() {
            Ok(c) => f(&c),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The key for `kid` and `alg`; without a `kid`, the one key of that algorithm if there is
    /// exactly one.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.read_cache(|c| c.keys.clone());
        let mut of_alg = keys.iter().filter(|k| k.alg == alg);
        match kid {
            Some(kid) => of_alg
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| k.key.clone()),
            None => {
                let only = of_alg.next()?;
                of_alg.next().is_none().then(|| only.key.clone())
            }
        }
    }

    /// Fetches the keys again, unless another fetch happened less than [`REFRESH_MIN`] ago (and
    /// `force` is off). Concurrent callers wait for one fetch.
    async fn refresh(&self, force: bool) -> Result<(), TokenError> {
        let started = Instant::now();
        let _one_at_a_time = self.refresh.lock().await;
        let recent = self.read_cache(|c| {
            c.attempted
                .is_some_and(|t| t >= started || t.elapsed() < REFRESH_MIN)
        });
        if recent && !force {
            return Ok(());
        }
        if let Ok(mut c) = self.cache.write() {
            c.attempted = Some(Instant::now());
        }
        let keys = self.fetch_keys().await.map_err(|e| {
            tracing::warn!(issuer = %self.issuer, error = %e, "fetching the issuer's keys failed");
            TokenError::Unavailable(e)
        })?;
        tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's keys");
        if let Ok(mut c) = self.cache.write() {
            c.keys = Arc::new(keys);
            c.fetched = Some(Instant::now());
        }
        Ok(())
    }

    async fn fetch_keys(&self) -> Result<Vec<Key>, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery = self.get_json(&discovery_url).await?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the discovery document names another issuer".to_owned());
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the discovery document has no jwks_uri")?;
        check_issuer(jwks_uri).map_err(|m| format!("jwks_uri: {m}"))?;
        let jwks = self.get_json(jwks_uri).await?;
        let entries = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no keys array")?;
        Ok(entries.iter().filter_map(key_from_jwk).collect())
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let shown = allowlist_core::url::redacted(url);
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{shown}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!(
                "{shown} answered HTTP {}",
                response.status().as_u16()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{shown}: {}", e.without_url()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(format!("{shown} sent more than {MAX_DOCUMENT} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("{shown} is not JSON: {e}"))
    }
}

/// A usable signing key from one JWKS entry: RSA for RS256, P-256 for ES256; anything else
/// (encryption keys, other curves, symmetric keys, a declared `alg` that does not fit) is skipped.
fn key_from_jwk(entry: &Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?,
        ),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?,
        ),
        _ => return None,
    };
    if let Some(declared) = jwk.common.key_algorithm {
        if format!("{declared:?}") != format!("{alg:?}") {
            return None;
        }
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}
