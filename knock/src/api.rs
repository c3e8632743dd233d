//! The HTTP API, apart from any transport: [`Service::handle`] takes a [`Request`] (what serve's
//! HTTP server and the Lambda function-URL event both reduce to) and returns a [`Response`].
//!
//! Order of checks, so that refusals cost nothing: body size (413), the route (404/405; `/healthz`
//! answers here), the source address (400 for a trusted proxy's malformed `X-Forwarded-For`), the
//! per-IP rate limit (429), the credentials (401), the door (404), the door's policy (403), the
//! per-principal rate limit (429), the body (400), and only then AWS.

use crate::claims;
use crate::doors::{Door, Doors};
use crate::gate::{Gate, GateError, GrantView, KnockRequest};
use crate::keys::ApiKeys;
use crate::limits::RateLimiter;
use crate::oidc::{Oidc, TokenError};
use crate::source::{host_cidr, source_ip};
use allowlist_core::clock::Clock;
use allowlist_core::duration;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request body accepted.
pub const MAX_BODY: usize = 4096;
/// Longest principal: its holder tag (`<created>/<expires> knock:<principal>`) must fit AWS's 256
/// characters whole, or the principal could not find its grant again.
pub const MAX_PRINCIPAL: usize = 200;

/// A request, as any transport reduces it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub forwarded_for: Option<&'a str>,
    /// The TCP peer, or the function URL's `sourceIp`.
    pub peer: IpAddr,
    pub body: &'a [u8],
}

/// A response: a status, a JSON body (none for 204) and, on 429, seconds to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<u64>,
}

impl Response {
    fn json(status: u16, body: Value) -> Self {
        Response {
            status,
            body: Some(body),
            retry_after: None,
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Response::json(status, json!({"code": code, "message": message.into()}))
    }

    fn limited(message: &str, wait: Duration) -> Self {
        Response {
            retry_after: Some(wait.as_secs().max(1)),
            ..Response::error(429, "rate_limited", message)
        }
    }

    /// The body as text ("" for none).
    pub fn body_text(&self) -> String {
        self.body.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

/// Everything the handler is configured with.
#[derive(Debug)]
pub struct Settings {
    pub doors: Doors,
    pub keys: Option<ApiKeys>,
    pub oidc: Option<Oidc>,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_per_ip: u32,
    pub rate_per_principal: u32,
    pub max_grants_per_principal: usize,
}

/// Who is knocking.
#[derive(Debug, Clone)]
enum Principal {
    Key {
        name: String,
    },
    Token {
        issuer: String,
        subject: String,
        claims: serde_json::Map<String, Value>,
    },
}

impl Principal {
    fn id(&self) -> String {
        match self {
            Principal::Key { name } => format!("key:{name}"),
            Principal::Token {
                issuer, subject, ..
            } => format!("{issuer}#{subject}"),
        }
    }

    fn may_open(&self, door: &Door) -> bool {
        match self {
            Principal::Key { name } => door.allow_keys.iter().any(|k| k == name),
            Principal::Token { claims, .. } => claims::all_match(&door.allow_claims, claims),
        }
    }
}

/// The handler: settings, rate limiters, the clock and the AWS side.
#[derive(Debug)]
pub struct Service<G> {
    settings: Settings,
    per_ip: RateLimiter,
    per_principal: RateLimiter,
    clock: Arc<dyn Clock>,
    gate: G,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KnockBody {
    ttl: Option<String>,
}

enum Route<'a> {
    Health,
    Doors,
    Knock(&'a str),
}

impl<G: Gate> Service<G> {
    pub fn new(settings: Settings, clock: Arc<dyn Clock>, gate: G) -> Self {
        Service {
            per_ip: RateLimiter::new(settings.rate_per_ip),
            per_principal: RateLimiter::new(settings.rate_per_principal),
            settings,
            clock,
            gate,
        }
    }

    pub fn oidc(&self) -> Option<&Oidc> {
        self.settings.oidc.as_ref()
    }

    /// Handles one request; logs one line (never a credential).
    pub async fn handle(&self, request: &Request<'_>) -> Response {
        let started = Instant::now();
        let mut log = LogLine::default();
        let response = self.respond(request, &mut log).await;
        let status = response.status;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (method, path) = (request.method, request.path);
        let source = log.source.map(|s| s.to_string()).unwrap_or_default();
        let principal = log.principal.as_deref().unwrap_or("");
        let grant = log.grant.as_deref().unwrap_or("");
        let reason = log.reason.as_deref().unwrap_or("");
        if status >= 500 {
            tracing::warn!(method, path, status, source, principal, grant, reason, ms, "request");
        } else if path == "/healthz" {
            tracing::debug!(method, path, status, ms, "request");
        } else {
            tracing::info!(method, path, status, source, principal, grant, reason, ms, "request");
        }
        response
    }

    async fn respond(&self, request: &Request<'_>, log: &mut LogLine) -> Response {
        if request.body.len() > MAX_BODY {
            return Response::error(
                413,
                "payload_too_large",
                format!("the body is over {MAX_BODY} bytes"),
            );
        }
        let route = match route(request.path) {
            Some(route) => route,
            None => return Response::error(404, "not_found", "no such path; see GET /v1/doors"),
        };
        let allowed = match route {
            Route::Health => "GET",
            Route::Doors => "GET",
            Route::Knock(_) => "POST, DELETE",
        };
        if !allowed.split(", ").any(|m| m == request.method) {
            return Response::error(
                405,
                "method_not_allowed",
                format!("{} takes {allowed}", request.path),
            );
        }
        if let Route::Health = route {
            return Response::json(200, json!({"status": "ok"}));
        }
        let source = match source_ip(
            request.peer,
            request.forwarded_for,
            &self.settings.trusted_proxies,
        ) {
            Ok(ip) => ip,
            Err(e) => return Response::error(400, "bad_request", e.to_string()),
        };
        log.source = Some(source);
        let now = self.clock.now();
        if let Err(wait) = self.per_ip.check(&crate::source::rate_key(source), now) {
            log.reason = Some("per-ip rate".into());
            return Response::limited("too many requests from this address; slow down", wait);
        }
        let principal = match self.authenticate(request, now).await {
            Ok(p) => p,
            Err(response) => {
                log.reason = response
                    .body
                    .as_ref()
                    .and_then(|b| b.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                return response;
            }
        };
        let id = principal.id();
        log.principal = Some(id.clone());
        let granted_by = format!("knock:{id}");
        let door_name = match route {
            Route::Knock(name) => name,
            _ => {
                if let Err(wait) = self.per_principal.check(&id, now) {
                    return Response::limited("too many requests; slow down", wait);
                }
                return self.list(&principal, &granted_by, now).await;
            }
        };
        let Some(door) = self.settings.doors.get(door_name) else {
            return Response::error(404, "not_found", format!("there is no door {door_name:?}"));
        };
        if !principal.may_open(door) {
            return Response::error(
                403,
                "forbidden",
                format!("{id} may not open door {door_name:?}"),
            );
        }
        if let Err(wait) = self.per_principal.check(&id, now) {
            log.reason = Some("per-principal rate".into());
            return Response::limited("too many knocks; slow down", wait);
        }
        let cidr = host_cidr(source);
        if request.method == "DELETE" {
            return match self.gate.close(door, &granted_by, cidr, now).await {
                Ok(_) => Response {
                    status: 204,
                    body: None,
                    retry_after: None,
                },
                Err(e) => gate_error(e, log),
            };
        }
        let ttl = match knock_ttl(request.body, door) {
            Ok(ttl) => ttl,
            Err(message) => return Response::error(400, "bad_request", message),
        };
        let all_doors: Vec<&Door> = self.settings.doors.doors.values().collect();
        let knock = KnockRequest {
            door,
            all_doors: &all_doors,
            granted_by: &granted_by,
            cidr,
            ttl,
            now,
            max_live: self.settings.max_grants_per_principal,
        };
        match self.gate.knock(knock).await {
            Ok(knocked) => {
                log.grant = Some(knocked.grant.grant_id.clone());
                let status = if knocked.created { 201 } else { 200 };
                Response::json(status, grant_json(&knocked.grant))
            }
            Err(e) => gate_error(e, log),
        }
    }

    /// The caller, from exactly one credential; 401 otherwise. No AWS call happens before this.
    async fn authenticate(
        &self,
        request: &Request<'_>,
        now: std::time::SystemTime,
    ) -> Result<Principal, Response> {
        let unauthorized = |m: String| Response::error(401, "unauthorized", m);
        let bearer = request
            .authorization
            .map(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")));
        let principal = match (bearer, request.api_key) {
            (Some(_), Some(_)) => {
                return Err(unauthorized(
                    "send one credential: Authorization or X-Api-Key, not both".into(),
                ))
            }
            (None, None) => {
                return Err(unauthorized(
                    "credentials required: Authorization: Bearer <token> or X-Api-Key: <key>"
                        .into(),
                ))
            }
            (Some(None), None) => {
                return Err(unauthorized(
                    "the Authorization header must be \"Bearer <token>\"".into(),
                ))
            }
            (Some(Some(token)), None) => {
                let Some(oidc) = &self.settings.oidc else {
                    return Err(unauthorized(
                        "tokens are not accepted here; use an API key".into(),
                    ));
                };
                match oidc.verify(token.trim(), now).await {
                    Ok(v) => Principal::Token {
                        issuer: oidc.issuer().to_owned(),
                        subject: v.subject,
                        claims: v.claims,
                    },
                    Err(TokenError::Unavailable(m)) => {
                        return Err(Response::error(
                            503,
                            "unavailable",
                            format!("cannot check tokens right now: {m}"),
                        ))
                    }
                    Err(e) => return Err(unauthorized(e.to_string())),
                }
            }
            (None, Some(key)) => {
                let name = self
                    .settings
                    .keys
                    .as_ref()
                    .and_then(|keys| keys.verify(key.trim()));
                match name {
                    Some(name) => Principal::Key {
                        name: name.to_owned(),
                    },
                    None => return Err(unauthorized("the API key is not valid".into())),
                }
            }
        };
        if principal.id().len() > MAX_PRINCIPAL {
            return Err(unauthorized(format!(
                "the principal is longer than {MAX_PRINCIPAL} characters"
            )));
        }
        // The holder tag separates the caller from the marks after it with spaces: a principal
        // with whitespace could read as another's (`a ephemeral` as `a`).
        if principal
            .id()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(unauthorized(
                "the principal (token subject or key name) contains whitespace or control characters"
                    .to_owned(),
            ));
        }
        Ok(principal)
    }

    async fn list(
        &self,
        principal: &Principal,
        granted_by: &str,
        now: std::time::SystemTime,
    ) -> Response {
        let doors: Vec<&Door> = self
            .settings
            .doors
            .doors
            .values()
            .filter(|d| principal.may_open(d))
            .collect();
        let mut grants = match self.gate.list(&doors, granted_by, now).await {
            Ok(g) => g,
            Err(e) => return gate_error(e, &mut LogLine::default()),
        };
        let doors: Vec<Value> = doors
            .iter()
            .map(|d| {
                json!({
                    "name": d.name,
                    "region": d.region,
                    "protocol": d.protocol.as_str(),
                    "ports": d.ports.iter().map(|p| if p.from == p.to { p.from.to_string() } else { format!("{}-{}", p.from, p.to) }).collect::<Vec<_>>(),
                    "default_ttl": duration::format(d.default_ttl),
                    "max_ttl": duration::format(d.max_ttl),
                    "grants": grants.remove(&d.name).unwrap_or_default().iter().map(grant_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        Response::json(200, json!({"principal": principal.id(), "doors": doors}))
    }
}

#[derive(Default)]
struct LogLine {
    source: Option<IpAddr>,
    principal: Option<String>,
    grant: Option<String>,
    reason: Option<String>,
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/healthz" => Some(Route::Health),
        "/v1/doors" | "/v1/doors/" => Some(Route::Doors),
        _ => {
            let door = path.strip_prefix("/v1/doors/")?.strip_suffix("/knock")?;
            (!door.is_empty() && !door.contains('/')).then_some(Route::Knock(door))
        }
    }
}

/// The ttl of a knock: the body's, else the door's default; above the door's max is refused.
fn knock_ttl(body: &[u8], door: &Door) -> Result<Duration, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    if text.trim().is_empty() {
        return Ok(door.default_ttl);
    }
    let parsed: KnockBody = serde_json::from_str(text)
        .map_err(|e| format!("the body must be JSON like {{\"ttl\": \"2h\"}}: {e}"))?;
    let Some(ttl) = parsed.ttl else {
        return Ok(door.default_ttl);
    };
    let ttl = duration::parse_positive(&ttl).map_err(|e| format!("ttl: {e}"))?;
    if ttl > door.max_ttl {
        return Err(format!(
            "ttl {} is above door {:?}'s max_ttl of {}",
            duration::format(ttl),
            door.name,
            duration::format(door.max_ttl)
        ));
    }
    Ok(ttl)
}

fn grant_json(g: &GrantView) -> Value {
    json!({
        "grant_id": g.grant_id,
        "cidr": g.cidr,
        "expires_at": g.expires_at,
        "rule_ids": g.rule_ids,
    })
}

fn gate_error(e: GateError, log: &mut LogLine) -> Response {
    log.reason = Some(e.to_string());
    match e {
        GateError::Foreign { .. } => Response::error(409, "conflict", e.to_string()),
        GateError::TooMany { .. } => Response::error(429, "too_many_grants", e.to_string()),
        GateError::Busy => Response {
            retry_after: Some(2),
            ..Response::error(503, "busy", e.to_string())
        },
        GateError::Aws(_) => Response::error(
            502,
            "aws_error",
            "AWS refused or failed the change; the service log has the details",
        ),
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
