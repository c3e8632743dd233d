//! AWS Lambda behind a function URL: a small loop over the Lambda Runtime API
//! (`$AWS_LAMBDA_RUNTIME_API`) with the HTTP client already in the build, rather than the
//! `lambda_runtime` crate and its tower/hyper stack. Each function-URL event (payload 2.0) becomes
//! an [`api::Request`] whose peer is `requestContext.http.sourceIp` — the function URL's own view
//! of the TCP peer — and the same handler's answer goes back as a function-URL response.

use crate::api::{self, Service, MAX_BODY};
use crate::gate::Gate;
use base64::Engine;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// The variable Lambda sets for custom runtimes: `host:port` of the Runtime API.
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
const API_VERSION: &str = "2018-06-01";

/// Why the runtime loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("{RUNTIME_API_ENV} is not set: not running on AWS Lambda")]
    NotLambda,
    #[error("the Lambda Runtime API failed: {0}")]
    Runtime(String),
}

/// A function-URL event reduced to what the handler reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    pub forwarded_for: Option<String>,
    pub source_ip: IpAddr,
    pub body: Vec<u8>,
}

impl Event {
    pub fn request(&self) -> api::Request<'_> {
        api::Request {
            method: &self.method,
            path: &self.path,
            authorization: self.authorization.as_deref(),
            api_key: self.api_key.as_deref(),
            forwarded_for: self.forwarded_for.as_deref(),
            peer: self.source_ip,
            body: &self.body,
        }
    }
}

/// Why an event is not a function-URL request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not a function URL event: {0}")]
    Shape(&'static str),
    #[error("the body is over {MAX_BODY} bytes")]
    TooLarge,
}

/// Reads a function-URL event (payload format 2.0).
pub fn parse_event(event: &Value) -> Result<Event, EventError> {
    let http = event
        .pointer("/requestContext/http")
        .ok_or(EventError::Shape("no requestContext.http"))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let method = text(http, "method").ok_or(EventError::Shape("no method"))?;
    let path = text(event, "rawPath")
        .or_else(|| text(http, "path"))
        .ok_or(EventError::Shape("no rawPath"))?;
    let source_ip = text(http, "sourceIp")
        .and_then(|s| s.parse().ok())
        .ok_or(EventError::Shape("no sourceIp"))?;
    // Function URLs give header names in lower case.
    let headers = event.get("headers");
    let header = |name: &str| headers.and_then(|h| text(h, name));
    let raw_body = text(event, "body").unwrap_or_default();
    let body = if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        if raw_body.len() > MAX_BODY * 4 / 3 + 4 {
            return Err(EventError::TooLarge);
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw_body.as_bytes())
            .map_err(|_| EventError::Shape("the body is not base64"))?
    } else {
        raw_body.into_bytes()
    };
    if body.len() > MAX_BODY {
        return Err(EventError::TooLarge);
    }
    Ok(Event {
        method,
        path,
        authorization: header("authorization"),
        api_key: header("x-api-key"),
        forwarded_for: header("x-forwarded-for"),
        source_ip,
        body,
    })
}

/// The function-URL response for an API response.
pub fn response_event(response: &api::Response) -> Value {
    let mut headers = serde_json::Map::new();
    if response.body.is_some() {
        headers.insert("content-type".into(), json!("application/json"));
    }
    if let Some(secs) = response.retry_after {
        headers.insert("retry-after".into(), json!(secs.to_string()));
    }
    json!({
        "statusCode": response.status,
        "headers": headers,
        "body": response.body_text(),
        "isBase64Encoded": false,
    })
}

/// Handles one raw event: a bad event is answered 400 (or 413), never an invocation error.
pub async fn invoke<G: Gate>(service: &Service<G>, event: &Value) -> Value {
    match parse_event(event) {
        Ok(event) => response_event(&service.handle(&event.request()).await),
        Err(e) => {
            let (status, code) = match e {
                EventError::TooLarge => (413, "payload_too_large"),
                EventError::Shape(_) => (400, "bad_request"),
            };
            tracing::warn!(error = %e, "unusable event");
            response_event(&api::Response {
                status,
                body: Some(json!({"code": code, "message": e.to_string()})),
                retry_after: None,
            })
        }
    }
}

/// Runs the Runtime API loop until the runtime goes away.
pub async fn run<G: Gate>(service: Arc<Service<G>>) -> Result<(), LambdaError> {
    let api = std::env::var(RUNTIME_API_ENV).map_err(|_| LambdaError::NotLambda)?;
    let base = format!("http://{api}/{API_VERSION}/runtime");
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| LambdaError::Runtime(e.to_string()))?;
    let runtime = |e: reqwest::Error| LambdaError::Runtime(e.without_url().to_string());
    tracing::info!("waiting for invocations");
    loop {
        let next = client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .map_err(runtime)?;
        if !next.status().is_success() {
            return Err(LambdaError::Runtime(format!(
                "invocation/next answered HTTP {}",
                next.status().as_u16()
            )));
        }
        let request_id = next
            .headers()
            .get("lambda-runtime-aws-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| LambdaError::Runtime("no Lambda-Runtime-Aws-Request-Id".into()))?;
        let body = next.bytes().await.map_err(runtime)?;
        let answer = match serde_json::from_slice::<Value>(&body) {
            Ok(event) => invoke(&service, &event).await,
            Err(_) => response_event(&api::Response {
                status: 400,
                body: Some(json!({"code": "bad_request", "message": "the event is not JSON"})),
                retry_after: None,
            }),
        };
        let posted = client
            .post(format!("{base}/invocation/{request_id}/response"))
            .header("content-type", "application/json")
            .body(answer.to_string())
            .send()
            .await
            .map_err(runtime)?;
        if !posted.status().is_success() {
            tracing::warn!(
                status = posted.status().as_u16(),
                "the runtime refused a response"
            );
        }
    }
}

/// Reports a failure to start to the Runtime API (best effort), so Lambda shows it.
pub async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var(RUNTIME_API_ENV) else {
        return;
    };
    let Ok(client) = reqwest::Client::builder().build() else {
        return;
    };
    let _ = client
        .post(format!("http://{api}/{API_VERSION}/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        .body(json!({"errorMessage": message, "errorType": "InitError"}).to_string())
        .send()
        .await;
}
