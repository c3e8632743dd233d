//! The handler with a stub gate that counts calls: every refusal is checked to happen before any
//! (would-be AWS) call, with ES256 keys generated here.

use super::*;
use crate::doors::Doors;
use crate::gate::{GateError, Knocked};
use crate::keys::hash_line;
use allowlist_core::clock::FixedClock;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

const ISSUER: &str = "http://127.0.0.1:9/issuer";
const AUDIENCE: &str = "allowlist-knock";
const T0: u64 = 1_763_726_400;

#[derive(Debug, Default)]
struct StubGate {
    calls: Mutex<Vec<String>>,
    live: Mutex<BTreeMap<(String, String), u64>>,
}

impl StubGate {
    fn calls(&self) -> usize {
        self.calls.lock().map(|c| c.len()).unwrap_or(0)
    }
    fn last(&self) -> String {
        self.calls
            .lock()
            .ok()
            .and_then(|c| c.last().cloned())
            .unwrap_or_default()
    }
}

impl Gate for StubGate {
    fn knock(
        &self,
        r: KnockRequest<'_>,
    ) -> impl std::future::Future<Output = Result<Knocked, GateError>> + Send {
        let key = (r.granted_by.to_owned(), r.cidr.to_string());
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("knock {} {} {}", r.door.name, r.granted_by, r.cidr));
        }
        let created = self
            .live
            .lock()
            .map(|mut l| l.insert(key, r.ttl.as_secs()).is_none())
            .unwrap_or(false);
        let grant = GrantView {
            grant_id: "grant-0000000000000001".into(),
            cidr: r.cidr.to_string(),
            expires_at: "2025-11-21T13:00:00Z".into(),
            rule_ids: vec!["sgr-1".into()],
        };
        std::future::ready(Ok(Knocked { grant, created }))
    }

    fn close(
        &self,
        door: &Door,
        granted_by: &str,
        cidr: IpNet,
        _now: SystemTime,
    ) -> impl std::future::Future<Output = Result<bool, GateError>> + Send {
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("close {} {granted_by} {cidr}", door.name));
        }
        std::future::ready(Ok(true))
    }

    fn list(
        &self,
        doors: &[&Door],
        _granted_by: &str,
        _now: SystemTime,
    ) -> impl std::future::Future<Output = Result<BTreeMap<String, Vec<GrantView>>, GateError>> + Send
    {
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("list {}", doors.len()));
        }
        std::future::ready(Ok(BTreeMap::new()))
    }
}

const DOORS: &str = r#"
[doors.bastion]
region             = "us-east-1"
security_group_ids = ["sg-0123456789abcdef0"]
ports              = [22]
default_ttl        = "1h"
max_ttl            = "8h"
allow_claims       = { email = "*@example.com" }
allow_keys         = ["contractor-a"]

[doors.db]
region             = "us-east-1"
security_group_ids = ["sg-0123abcd"]
ports              = [5432]
allow_keys         = ["ci"]
"#;

struct Keys {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn new_key() -> Keys {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let pkcs8 = pair.to_pkcs8v1().expect("pkcs8").as_ref().to_vec();
    Keys { pair, pkcs8 }
}

fn jwk(keys: &Keys, kid: &str) -> Value {
    let point = keys.pair.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
           "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

fn token(keys: &Keys, kid: &str, claims: Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, &claims, &EncodingKey::from_ec_der(&keys.pkcs8)).expect("token")
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "email": format!("{sub}@example.com"),
           "iat": T0, "exp": T0 + 300})
}

fn service(keys: &Keys, rate_per_ip: u32, rate_per_principal: u32) -> Service<StubGate> {
    let jwks = json!({"keys": [jwk(keys, "k1")]});
    let api_keys = format!(
        "contractor-a = \"{}\"\nci = \"{}\"\n",
        hash_line("key-a"),
        hash_line("key-ci")
    );
    let settings = Settings {
        doors: Doors::parse(DOORS, "doors.toml", None).expect("doors"),
        keys: Some(ApiKeys::parse(&api_keys, "keys.toml").expect("keys")),
        oidc: Some(Oidc::preloaded(ISSUER, AUDIENCE, &jwks).expect("oidc")),
        trusted_proxies: vec![],
        rate_per_ip,
        rate_per_principal,
        max_grants_per_principal: 3,
    };
    let clock = Arc::new(FixedClock(SystemTime::UNIX_EPOCH + Duration::from_secs(T0)));
    Service::new(settings, clock, StubGate::default())
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    bearer: Option<String>,
    key: Option<&'a str>,
    xff: Option<&'a str>,
    body: &'a [u8],
}

fn call<'a>(method: &'a str, path: &'a str) -> Call<'a> {
    Call {
        method,
        path,
        bearer: None,
        key: None,
        xff: None,
        body: b"",
    }
}

async fn send(s: &Service<StubGate>, c: &Call<'_>) -> Response {
    let auth = c.bearer.as_ref().map(|t| format!("Bearer {t}"));
    s.handle(&Request {
        method: c.method,
        path: c.path,
        authorization: auth.as_deref(),
        api_key: c.key,
        forwarded_for: c.xff,
        peer: "198.51.100.7".parse().expect("ip"),
        body: c.body,
    })
    .await
}

fn code(r: &Response) -> &str {
    r.body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

const KNOCK: &str = "/v1/doors/bastion/knock";

#[tokio::test]
async fn a_valid_token_opens_then_extends_then_closes() {
    let keys = new_key();
    let s = service(&keys, 60, 10);
    let t = token(&keys, "k1", claims("ann"));
    let first = send(
        &s,
        &Call {
            bearer: Some(t.clone()),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(
        first.body.as_ref().and_then(|b| b.get("cidr")),
        Some(&json!("198.51.100.7/32"))
    );
    assert_eq!(
        s.gate.last(),
        format!("knock bastion knock:{ISSUER}#ann 198.51.100.7/32")
    );
    let again = send(
        &s,
        &Call {
            bearer: Some(t.clone()),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(again.status, 200);
    let closed = send(
        &s,
        &Call {
            bearer: Some(t.clone()),
            ..call("DELETE", KNOCK)
        },
    )
    .await;
    assert_eq!((closed.status, closed.body.clone()), (204, None));
    let doors = send(
        &s,
        &Call {
            bearer: Some(t),
            ..call("GET", "/v1/doors")
        },
    )
    .await;
    assert_eq!(doors.status, 200);
    let names: Vec<&str> = doors
        .body
        .as_ref()
        .and_then(|b| b["doors"].as_array())
        .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["bastion"], "only the doors this token may open");
    assert_eq!(s.gate.calls(), 4);
}

#[tokio::test]
async fn every_bad_token_is_401_before_any_aws_call() {
    let keys = new_key();
    let other = new_key();
    let s = service(&keys, 0, 0);
    let hs256 = {
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        encode(
            &h,
            &claims("ann"),
            &EncodingKey::from_secret(keys.pair.public_key().as_ref()),
        )
        .expect("hs256")
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("ann").to_string().as_bytes())
    );
    let mut expired = claims("ann");
    expired["exp"] = json!(T0 - 31);
    let mut within_leeway = claims("ann");
    within_leeway["exp"] = json!(T0 - 29);
    let mut early = claims("ann");
    early["nbf"] = json!(T0 + 120);
    let mut wrong_aud = claims("ann");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("ann");
    wrong_iss["iss"] = json!("http://127.0.0.1:9/other");
    let mut no_sub = claims("ann");
    no_sub.as_object_mut().map(|m| m.remove("sub"));
    let cases = [
        ("forged", token(&other, "k1", claims("ann"))),
        ("expired", token(&keys, "k1", expired)),
        ("not yet valid", token(&keys, "k1", early)),
        ("wrong audience", token(&keys, "k1", wrong_aud)),
        ("wrong issuer", token(&keys, "k1", wrong_iss)),
        ("no sub", token(&keys, "k1", no_sub)),
        ("unknown kid", token(&keys, "k2", claims("ann"))),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, t) in cases {
        let r = send(
            &s,
            &Call {
                bearer: Some(t),
                ..call("POST", KNOCK)
            },
        )
        .await;
        assert_eq!((r.status, code(&r)), (401, "unauthorized"), "{what}: {r:?}");
    }
    for key in ["key-b", "", "sha256:whatever"] {
        let r = send(
            &s,
            &Call {
                key: Some(key),
                ..call("POST", KNOCK)
            },
        )
        .await;
        assert_eq!(r.status, 401, "key {key:?}");
    }
    let r = send(&s, &call("POST", KNOCK)).await;
    assert_eq!(r.status, 401, "no credential");
    let r = send(
        &s,
        &Call {
            key: Some("key-a"),
            bearer: Some(token(&keys, "k1", claims("ann"))),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(r.status, 401, "two credentials");
    assert_eq!(s.gate.calls(), 0, "no AWS call for any of them");
    // Within the leeway an expired token still works.
    let r = send(
        &s,
        &Call {
            bearer: Some(token(&keys, "k1", within_leeway)),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn refusals_after_authentication_make_no_aws_call() {
    let keys = new_key();
    let s = service(&keys, 0, 0);
    let ci = |method, path| Call {
        key: Some("key-ci"),
        ..call(method, path)
    };
    let r = send(&s, &ci("POST", KNOCK)).await;
    assert_eq!(
        (r.status, code(&r)),
        (403, "forbidden"),
        "ci may only open db"
    );
    let mut outsider = claims("eve");
    outsider["email"] = json!("eve@example.org");
    let r = send(
        &s,
        &Call {
            bearer: Some(token(&keys, "k1", outsider)),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(r.status, 403, "claims do not match");
    let r = send(
        &s,
        &Call {
            bearer: Some(token(&keys, "k1", claims("ann"))),
            ..call("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(
        r.status, 403,
        "db has no allow_claims: closed to every token"
    );
    let r = send(&s, &ci("POST", "/v1/doors/nope/knock")).await;
    assert_eq!((r.status, code(&r)), (404, "not_found"));
    let big = vec![b' '; MAX_BODY + 1];
    let r = send(
        &s,
        &Call {
            body: &big,
            ..ci("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 413);
    let r = send(
        &s,
        &Call {
            body: br#"{"ttl": "9h"}"#,
            ..ci("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 400);
    let message = r
        .body
        .as_ref()
        .and_then(|b| b["message"].as_str())
        .unwrap_or("");
    assert!(message.contains("max_ttl of 8h"), "{message}");
    let r = send(
        &s,
        &Call {
            body: br#"{"ttl": 3}"#,
            ..ci("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 400);
    let r = send(
        &s,
        &Call {
            body: br#"{"tll": "1h"}"#,
            ..ci("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 400, "unknown fields are refused");
    let r = send(&s, &ci("PUT", "/v1/doors/db/knock")).await;
    assert_eq!(r.status, 405);
    let r = send(&s, &call("GET", "/healthz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.gate.calls(), 0);
    let r = send(
        &s,
        &Call {
            body: br#"{"ttl": "2h"}"#,
            ..ci("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn rate_limits_per_ip_and_per_principal() {
    let keys = new_key();
    let s = service(&keys, 5, 2);
    let ci = Call {
        key: Some("key-ci"),
        ..call("POST", "/v1/doors/db/knock")
    };
    assert_eq!(send(&s, &ci).await.status, 201);
    assert_eq!(send(&s, &ci).await.status, 200);
    let r = send(&s, &ci).await;
    assert_eq!((r.status, code(&r)), (429, "rate_limited"));
    assert!(r.retry_after.is_some());
    // The address has used 3 of 5; bad keys use up the rest, then even a good key waits.
    for _ in 0..2 {
        assert_eq!(
            send(
                &s,
                &Call {
                    key: Some("guess"),
                    ..call("POST", KNOCK)
                }
            )
            .await
            .status,
            401
        );
    }
    let r = send(
        &s,
        &Call {
            key: Some("key-a"),
            ..call("POST", KNOCK)
        },
    )
    .await;
    assert_eq!(r.status, 429, "per-IP limit counts every outcome");
    assert_eq!(s.gate.calls(), 2);
    assert_eq!(
        send(&s, &call("GET", "/healthz")).await.status,
        200,
        "health is not limited"
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let keys = new_key();
    let s = service(&keys, 0, 0);
    let r = send(
        &s,
        &Call {
            key: Some("key-ci"),
            xff: Some("203.0.113.9"),
            ..call("POST", "/v1/doors/db/knock")
        },
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(s.gate.last(), "knock db knock:key:ci 198.51.100.7/32");
}

#[tokio::test]
async fn function_url_events_go_through_the_same_handler() {
    let keys = new_key();
    let s = service(&keys, 0, 0);
    let event = json!({
        "version": "2.0",
        "rawPath": "/v1/doors/db/knock",
        "rawQueryString": "",
        "headers": {"x-api-key": "key-ci", "x-forwarded-for": "6.6.6.6", "content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/v1/doors/db/knock", "sourceIp": "2001:db8::7"}},
        "body": base64::engine::general_purpose::STANDARD.encode(br#"{"ttl":"30m"}"#),
        "isBase64Encoded": true,
    });
    let out = crate::lambda::invoke(&s, &event).await;
    assert_eq!(out["statusCode"], json!(201), "{out}");
    assert_eq!(out["headers"]["content-type"], json!("application/json"));
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap_or("")).expect("json body");
    assert_eq!(
        body["cidr"],
        json!("2001:db8::7/128"),
        "sourceIp, not X-Forwarded-For"
    );
    let mut bad = event.clone();
    bad["headers"]["x-api-key"] = json!("nope");
    assert_eq!(
        crate::lambda::invoke(&s, &bad).await["statusCode"],
        json!(401)
    );
    let mut big = event.clone();
    big["body"] = json!("x".repeat(MAX_BODY + 1));
    big["isBase64Encoded"] = json!(false);
    assert_eq!(
        crate::lambda::invoke(&s, &big).await["statusCode"],
        json!(413)
    );
    let shapeless = json!({"hello": "world"});
    assert_eq!(
        crate::lambda::invoke(&s, &shapeless).await["statusCode"],
        json!(400)
    );
    assert_eq!(s.gate.calls(), 1);
}
