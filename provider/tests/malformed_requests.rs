//! Protocol abuse: the provider's gRPC service, called in-process with requests Terraform would
//! never send: an unknown type name, a DynamicValue that is not msgpack (or not JSON), objects
//! missing attributes or carrying extra ones, wrong types, unknown values where known ones are
//! needed, empty bytes. Every such request must come back as a response (never a gRPC status, never
//! a panic) carrying an error diagnostic whose summary says what is wrong. Well-formed requests
//! are sent alongside, as controls, and must not be refused.
//!
//! No request here reaches AWS: each is refused before any call (the endpoint is a closed local
//! port anyway), and a case that takes longer than a few seconds fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use allowlist_core::clock::FixedClock;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use terraform_provider_allowlist::provider::AllowlistProvider;
use terraform_provider_allowlist::tfplugin::proto::tfplugin6 as pb;
use terraform_provider_allowlist::tfplugin::server::ProviderService;
use terraform_provider_allowlist::tfplugin::value::Number;
use terraform_provider_allowlist::tfplugin::{Provider, Value};
use tonic::Request;

use pb::provider_server::Provider as _;

const RESOURCE: &str = "allowlist_temporary_ingress";
const DATA_SOURCE: &str = "allowlist_egress_ips";
/// 2025-11-21T12:00:00Z, the fixed "now" of these tests.
const NOW: u64 = 1_763_726_400;

type Service = ProviderService<AllowlistProvider>;

fn provider() -> AllowlistProvider {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    AllowlistProvider::new(Arc::new(FixedClock(now)))
}

fn service() -> Arc<Service> {
    Arc::new(ProviderService::new(provider()))
}

// ------------------------------------------------------------------------------------------------
// Values: well-formed objects built from the schemas, and ways of spoiling them.

fn num(n: i64) -> Value {
    Value::Number(Number::Int(n))
}

/// An object with every attribute (and block) of `names` null, then `set` applied.
fn object(names: &[&str], set: &[(&str, Value)]) -> Value {
    let mut v = Value::object(names.iter().map(|n| (*n, Value::Null)));
    let map = v.as_map_mut().unwrap();
    for (k, val) in set {
        map.insert((*k).to_owned(), val.clone());
    }
    v
}

fn resource_names() -> Vec<&'static str> {
    let p = provider();
    let schema = p.resources()[0].schema();
    schema.block.attributes.iter().map(|a| a.name).collect()
}

fn data_source_names() -> Vec<&'static str> {
    let p = provider();
    let schema = p.data_sources()[0].schema();
    let block = schema.block;
    block
        .attributes
        .iter()
        .map(|a| a.name)
        .chain(block.blocks.iter().map(|b| b.type_name))
        .collect()
}

fn provider_names() -> Vec<&'static str> {
    provider()
        .schema()
        .block
        .attributes
        .iter()
        .map(|a| a.name)
        .collect()
}

/// A grant's configuration as Terraform sends it for a create.
fn resource_config() -> Value {
    object(
        &resource_names(),
        &[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("ports", Value::List(vec![num(22)])),
            ("cidr_blocks", Value::strings(["203.0.113.7/32"])),
            ("ttl", Value::string("1h")),
        ],
    )
}

/// A create plan's proposal: the config with an unknown region, so planning asks AWS nothing.
fn resource_proposed() -> Value {
    with(&resource_config(), &[("region", Value::unknown())])
}

/// A grant's state as the provider stored it.
fn resource_state() -> Value {
    object(
        &resource_names(),
        &[
            ("security_group_ids", Value::strings(["sg-0123abcd"])),
            ("region", Value::string("us-east-1")),
            ("ports", Value::List(vec![num(22)])),
            ("protocol", Value::string("tcp")),
            ("cidr_blocks", Value::strings(["203.0.113.7/32"])),
            ("ttl", Value::string("1h")),
            ("allow_world", Value::Bool(false)),
            ("id", Value::string("grant-00000000000000aa")),
            ("created_at", Value::string("2025-11-21T11:30:00Z")),
            ("expires_at", Value::string("2025-11-21T12:30:00Z")),
            ("rule_ids", Value::strings(["sgr-1"])),
            ("granted_by", Value::string("arn:aws:iam::1:user/a")),
        ],
    )
}

fn data_source_config() -> Value {
    object(
        &data_source_names(),
        &[
            ("regions", Value::strings(["us-east-1"])),
            ("filter", Value::List(vec![])),
            ("account", Value::List(vec![])),
            ("organization", Value::List(vec![])),
        ],
    )
}

fn provider_config() -> Value {
    object(
        &provider_names(),
        &[
            ("region", Value::string("us-east-1")),
            ("endpoint_url", Value::string("http://127.0.0.1:1")),
            ("request_timeout", Value::string("2s")),
            ("assume_role", Value::List(vec![])),
        ],
    )
}

/// `v` with attributes set (or added).
fn with(v: &Value, set: &[(&str, Value)]) -> Value {
    let mut v = v.clone();
    let map = v.as_map_mut().unwrap();
    for (k, val) in set {
        map.insert((*k).to_owned(), val.clone());
    }
    v
}

/// `v` without attribute `name`.
fn without(v: &Value, name: &str) -> Value {
    let mut v = v.clone();
    v.as_map_mut().unwrap().remove(name);
    v
}

fn mp(v: &Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: v.to_msgpack(),
        json: Vec::new(),
    })
}

fn raw(bytes: &[u8]) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: bytes.to_vec(),
        json: Vec::new(),
    })
}

fn json_dv(bytes: &[u8]) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: Vec::new(),
        json: bytes.to_vec(),
    })
}

fn empty() -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue::default())
}

/// msgpack that does not decode: a truncated array.
const TRUNCATED: &[u8] = &[0x92, 0x01];
/// msgpack that is not UTF-8 where a string is.
const BAD_UTF8: &[u8] = &[0x81, 0xa3, 0xff, 0xfe, 0xfd, 0xc0];
/// Plain text: a fixint followed by trailing bytes.
const TEXT: &[u8] = b"hello, provider";

fn state_json(v: &Value) -> Vec<u8> {
    fn to_json(v: &Value) -> serde_json::Value {
        match v {
            Value::Null | Value::Unknown(_) => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Number(Number::Int(i)) => (*i).into(),
            Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap(),
            Value::String(s) => s.clone().into(),
            Value::List(items) => items.iter().map(to_json).collect(),
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    to_json(v).to_string().into_bytes()
}

// ------------------------------------------------------------------------------------------------
// Calls: one request, its diagnostics, or how it failed (a gRPC status, a panic, a hang).

enum Call {
    ValidateProvider(Option<pb::DynamicValue>),
    Configure(Option<pb::DynamicValue>),
    ValidateResource(&'static str, Option<pb::DynamicValue>),
    ValidateData(&'static str, Option<pb::DynamicValue>),
    ReadData(&'static str, Option<pb::DynamicValue>),
    Plan {
        type_name: &'static str,
        prior: Option<pb::DynamicValue>,
        proposed: Option<pb::DynamicValue>,
        config: Option<pb::DynamicValue>,
    },
    Apply {
        type_name: &'static str,
        prior: Option<pb::DynamicValue>,
        planned: Option<pb::DynamicValue>,
        config: Option<pb::DynamicValue>,
    },
    Read(&'static str, Option<pb::DynamicValue>),
    Import(&'static str, &'static str),
    Upgrade(&'static str, i64, Option<pb::RawState>),
}

/// A response's diagnostics plus, where the response carries one, whether it has a value.
#[derive(Debug)]
struct Answer {
    diagnostics: Vec<pb::Diagnostic>,
    value: Option<Value>,
}

async fn call(svc: Arc<Service>, call: Call) -> Result<Answer, tonic::Status> {
    // (ReadResource echoes the state it was sent when it fails, malformed or not.)
    let decode = |dv: Option<pb::DynamicValue>| {
        dv.filter(|d| !d.msgpack.is_empty())
            .and_then(|d| Value::from_msgpack(&d.msgpack).ok())
    };
    Ok(match call {
        Call::ValidateProvider(config) => {
            let r = svc
                .validate_provider_config(Request::new(pb::validate_provider_config::Request {
                    config,
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: None,
            }
        }
        Call::Configure(config) => {
            let r = svc
                .configure_provider(Request::new(pb::configure_provider::Request {
                    terraform_version: "1.15.5".into(),
                    config,
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: None,
            }
        }
        Call::ValidateResource(type_name, config) => {
            let r = svc
                .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                    type_name: type_name.into(),
                    config,
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: None,
            }
        }
        Call::ValidateData(type_name, config) => {
            let r = svc
                .validate_data_resource_config(Request::new(
                    pb::validate_data_resource_config::Request {
                        type_name: type_name.into(),
                        config,
                    },
                ))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: None,
            }
        }
        Call::ReadData(type_name, config) => {
            let r = svc
                .read_data_source(Request::new(pb::read_data_source::Request {
                    type_name: type_name.into(),
                    config,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: decode(r.state),
            }
        }
        Call::Plan {
            type_name,
            prior,
            proposed,
            config,
        } => {
            let r = svc
                .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                    type_name: type_name.into(),
                    prior_state: prior,
                    proposed_new_state: proposed,
                    config,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: decode(r.planned_state),
            }
        }
        Call::Apply {
            type_name,
            prior,
            planned,
            config,
        } => {
            let r = svc
                .apply_resource_change(Request::new(pb::apply_resource_change::Request {
                    type_name: type_name.into(),
                    prior_state: prior,
                    planned_state: planned,
                    config,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: decode(r.new_state),
            }
        }
        Call::Read(type_name, current_state) => {
            let r = svc
                .read_resource(Request::new(pb::read_resource::Request {
                    type_name: type_name.into(),
                    current_state,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: decode(r.new_state),
            }
        }
        Call::Import(type_name, id) => {
            let r = svc
                .import_resource_state(Request::new(pb::import_resource_state::Request {
                    type_name: type_name.into(),
                    id: id.into(),
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: r
                    .imported_resources
                    .into_iter()
                    .next()
                    .and_then(|i| decode(i.state)),
            }
        }
        Call::Upgrade(type_name, version, raw_state) => {
            let r = svc
                .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
                    type_name: type_name.into(),
                    version,
                    raw_state,
                }))
                .await?
                .into_inner();
            Answer {
                diagnostics: r.diagnostics,
                value: decode(r.upgraded_state),
            }
        }
    })
}

/// What a case must produce: an error diagnostic with this summary, or (a control) no error.
#[derive(Debug, Clone, Copy)]
enum Want {
    Error(&'static str),
    NoError,
}

struct Case {
    label: &'static str,
    call: Call,
    want: Want,
}

fn case(label: &'static str, want: Want, call: Call) -> Case {
    Case { label, call, want }
}

fn error(summary: &'static str) -> Want {
    Want::Error(summary)
}

const ERROR: i32 = pb::diagnostic::Severity::Error as i32;

/// Runs every case on `svc`, or on a fresh unconfigured service each when None (each case in its
/// own task, so a panic is caught and reported), prints the outcomes, and fails listing every
/// case that did not do what it should.
async fn run(rpc: &str, svc: Option<Arc<Service>>, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for Case {
        label,
        call: request,
        want,
    } in cases
    {
        let svc = svc.clone().unwrap_or_else(service);
        let task = tokio::spawn(call(svc, request));
        let outcome = match tokio::time::timeout(Duration::from_secs(20), task).await {
            Err(_) => Err("no answer within 20s".to_owned()),
            Ok(Err(join)) if join.is_panic() => Err(format!("PANIC: {join}")),
            Ok(Err(join)) => Err(format!("task failed: {join}")),
            Ok(Ok(Err(status))) => Err(format!("gRPC status {status:?}")),
            Ok(Ok(Ok(answer))) => Ok(answer),
        };
        let shown = match &outcome {
            Ok(a) => a
                .diagnostics
                .iter()
                .map(|d| {
                    let sev = if d.severity == ERROR {
                        "error"
                    } else {
                        "warning"
                    };
                    format!("{sev} {:?} ({})", d.summary, d.detail)
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => e.clone(),
        };
        eprintln!(
            "{rpc} / {label}: {}",
            if shown.is_empty() { "ok" } else { &shown }
        );
        let good = match (&outcome, want) {
            (Err(_), _) => false,
            (Ok(a), Want::NoError) => a.diagnostics.iter().all(|d| d.severity != ERROR),
            (Ok(a), Want::Error(summary)) => {
                // A request refused before any work carries no new state (ReadResource hands
                // back the state it got, as it does on every failure).
                let refused = summary == "Invalid Request" || summary.starts_with("Unknown ");
                let no_state = !refused
                    || rpc == "ReadResource"
                    || a.value.as_ref().is_none_or(Value::is_null);
                no_state
                    && a.diagnostics.iter().any(|d| {
                        d.severity == ERROR && d.summary == summary && !d.detail.is_empty()
                    })
            }
        };
        if !good {
            failures.push(format!("{label}: wanted {want:?}, got {shown}"));
        }
    }
    assert!(failures.is_empty(), "{rpc}:\n{}", failures.join("\n"));
}

/// A service whose provider is configured (with an endpoint nothing listens on).
async fn configured() -> Arc<Service> {
    let svc = service();
    let answer = call(svc.clone(), Call::Configure(mp(&provider_config())))
        .await
        .expect("configure answers");
    assert!(answer.diagnostics.is_empty(), "{:?}", answer.diagnostics);
    svc
}

// ------------------------------------------------------------------------------------------------
// The RPCs.

#[tokio::test]
async fn validate_resource_config_refuses_malformed_requests() {
    let v = |config| Call::ValidateResource(RESOURCE, config);
    let cases = vec![
        case(
            "well-formed (control)",
            Want::NoError,
            v(mp(&resource_config())),
        ),
        case(
            "unknowns (control)",
            Want::NoError,
            v(mp(&with(
                &resource_config(),
                &[("ttl", Value::unknown()), ("ports", Value::unknown())],
            ))),
        ),
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::ValidateResource("allowlist_nope", mp(&resource_config())),
        ),
        case(
            "truncated msgpack",
            error("Invalid Request"),
            v(raw(TRUNCATED)),
        ),
        case(
            "string not UTF-8",
            error("Invalid Request"),
            v(raw(BAD_UTF8)),
        ),
        case("plain text", error("Invalid Request"), v(raw(TEXT))),
        case(
            "invalid JSON",
            error("Invalid Request"),
            v(json_dv(b"{\"ttl\":")),
        ),
        case(
            "missing attribute",
            error("Invalid Request"),
            v(mp(&without(&resource_config(), "description"))),
        ),
        case(
            "extra attribute",
            error("Invalid Request"),
            v(mp(&with(
                &resource_config(),
                &[("bogus", Value::string("x"))],
            ))),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            v(mp(&with(
                &resource_config(),
                &[("security_group_ids", num(5))],
            ))),
        ),
        case(
            "number for a string (computed)",
            error("Invalid Request"),
            v(mp(&with(&resource_config(), &[("granted_by", num(5))]))),
        ),
        case(
            "string in a number list",
            error("Invalid Request"),
            v(mp(&with(
                &resource_config(),
                &[("ports", Value::strings(["twenty-two"]))],
            ))),
        ),
        case("empty bytes", error("Invalid Request"), v(empty())),
        case("no value at all", error("Invalid Request"), v(None)),
        case(
            "not an object",
            error("Invalid Request"),
            v(mp(&Value::string("x"))),
        ),
        case(
            "wholly unknown",
            error("Invalid Request"),
            v(mp(&Value::unknown())),
        ),
        // Regression: this overflowed the stack of the (debug) provider and aborted it.
        case(
            "arrays nested 10,000 deep",
            error("Invalid Request"),
            v(raw(&[vec![0x91; 10_000], vec![0xc0]].concat())),
        ),
    ];
    run("ValidateResourceConfig", None, cases).await;
}

#[tokio::test]
async fn validate_data_resource_config_refuses_malformed_requests() {
    let v = |config| Call::ValidateData(DATA_SOURCE, config);
    let cases = vec![
        case(
            "well-formed (control)",
            Want::NoError,
            v(mp(&data_source_config())),
        ),
        case(
            "unknown regions (control)",
            Want::NoError,
            v(mp(&with(
                &data_source_config(),
                &[("regions", Value::unknown())],
            ))),
        ),
        case(
            "unknown type name",
            error("Unknown Data Source Type"),
            Call::ValidateData("allowlist_nope", mp(&data_source_config())),
        ),
        case(
            "truncated msgpack",
            error("Invalid Request"),
            v(raw(TRUNCATED)),
        ),
        case("plain text", error("Invalid Request"), v(raw(TEXT))),
        case(
            "missing attribute",
            error("Invalid Request"),
            v(mp(&without(&data_source_config(), "min_count"))),
        ),
        case(
            "extra attribute",
            error("Invalid Request"),
            v(mp(&with(
                &data_source_config(),
                &[("bogus", Value::Bool(true))],
            ))),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            v(mp(&with(&data_source_config(), &[("regions", num(5))]))),
        ),
        case(
            "block element missing attributes",
            error("Invalid Request"),
            v(mp(&with(
                &data_source_config(),
                &[(
                    "filter",
                    Value::List(vec![Value::object([("name", Value::string("vpc-id"))])]),
                )],
            ))),
        ),
        case(
            "block that is a string",
            error("Invalid Request"),
            v(mp(&with(
                &data_source_config(),
                &[("filter", Value::string("x"))],
            ))),
        ),
        case("empty bytes", error("Invalid Request"), v(empty())),
        case("not an object", error("Invalid Request"), v(mp(&num(1)))),
    ];
    run("ValidateDataResourceConfig", None, cases).await;
}

#[tokio::test]
async fn read_data_source_refuses_malformed_requests() {
    let r = |config| Call::ReadData(DATA_SOURCE, config);
    let cases = vec![
        case(
            "unknown type name",
            error("Unknown Data Source Type"),
            Call::ReadData("allowlist_nope", mp(&data_source_config())),
        ),
        case(
            "truncated msgpack",
            error("Invalid Request"),
            r(raw(TRUNCATED)),
        ),
        case("invalid JSON", error("Invalid Request"), r(json_dv(b"[1,"))),
        case(
            "missing attribute",
            error("Invalid Request"),
            r(mp(&without(&data_source_config(), "tags"))),
        ),
        case(
            "extra attribute",
            error("Invalid Request"),
            r(mp(&with(&data_source_config(), &[("bogus", Value::Null)]))),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            r(mp(&with(&data_source_config(), &[("regions", num(5))]))),
        ),
        case(
            "unknown region",
            error("Lookup Arguments Not Known"),
            r(mp(&with(
                &data_source_config(),
                &[("regions", Value::List(vec![Value::unknown()]))],
            ))),
        ),
        case("empty bytes", error("Invalid Request"), r(empty())),
        case(
            "not an object",
            error("Invalid Request"),
            r(mp(&Value::strings(["x"]))),
        ),
    ];
    run("ReadDataSource", Some(configured().await), cases).await;
}

#[tokio::test]
async fn plan_resource_change_refuses_malformed_requests() {
    let plan = |prior, proposed, config| Call::Plan {
        type_name: RESOURCE,
        prior,
        proposed,
        config,
    };
    let create = |proposed: Value| {
        plan(
            mp(&Value::Null),
            mp(&proposed),
            mp(&with(&proposed, &[("region", Value::unknown())])),
        )
    };
    let state = resource_state();
    let update = |prior: &Value, proposed: &Value| plan(mp(prior), mp(proposed), mp(proposed));
    // Config of an update: the state's arguments, computed attributes null.
    let update_config = with(
        &state,
        &[
            ("id", Value::Null),
            ("created_at", Value::Null),
            ("expires_at", Value::Null),
            ("rule_ids", Value::Null),
            ("granted_by", Value::Null),
        ],
    );
    let cases = vec![
        case(
            "create (control)",
            Want::NoError,
            create(resource_proposed()),
        ),
        case(
            "no-op update (control)",
            Want::NoError,
            update(&state, &state),
        ),
        case(
            "destroy (control)",
            Want::NoError,
            plan(mp(&state), mp(&Value::Null), mp(&Value::Null)),
        ),
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::Plan {
                type_name: "allowlist_nope",
                prior: mp(&Value::Null),
                proposed: mp(&resource_proposed()),
                config: mp(&resource_config()),
            },
        ),
        case(
            "config not msgpack",
            error("Invalid Request"),
            plan(mp(&Value::Null), mp(&resource_proposed()), raw(TEXT)),
        ),
        case(
            "prior state not msgpack",
            error("Invalid Request"),
            plan(raw(TRUNCATED), mp(&state), mp(&update_config)),
        ),
        case(
            "proposed missing attribute",
            error("Invalid Request"),
            create(without(&resource_proposed(), "tags")),
        ),
        case(
            "config with an extra attribute",
            error("Invalid Request"),
            plan(
                mp(&Value::Null),
                mp(&resource_proposed()),
                mp(&with(&resource_config(), &[("bogus", num(1))])),
            ),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            create(with(
                &resource_proposed(),
                &[("security_group_ids", num(5))],
            )),
        ),
        case(
            "prior state with wrong types",
            error("Invalid Request"),
            update(
                &with(
                    &state,
                    &[("rule_ids", Value::string("sgr-1")), ("expires_at", num(5))],
                ),
                &with(&state, &[("ttl", Value::string("2h"))]),
            ),
        ),
        case(
            "prior state created at the end of time",
            error("Invalid Stored State"),
            update(
                &with(
                    &state,
                    &[
                        ("created_at", Value::string("9999-12-31T23:00:00Z")),
                        ("expires_at", Value::string("9999-12-31T23:30:00Z")),
                    ],
                ),
                &with(&state, &[("ttl", Value::string("2h"))]),
            ),
        ),
        case(
            "nothing to plan (prior and proposed empty)",
            error("Invalid Request"),
            plan(empty(), empty(), empty()),
        ),
        case(
            "proposed without a config",
            error("Invalid Request"),
            plan(mp(&Value::Null), mp(&resource_proposed()), empty()),
        ),
        case(
            "proposed not an object",
            error("Invalid Request"),
            plan(
                mp(&Value::Null),
                mp(&Value::strings(["x"])),
                mp(&resource_config()),
            ),
        ),
    ];
    run("PlanResourceChange", Some(configured().await), cases).await;
}

#[tokio::test]
async fn apply_resource_change_refuses_malformed_requests() {
    let apply = |prior, planned| Call::Apply {
        type_name: RESOURCE,
        prior,
        planned,
        config: mp(&resource_config()),
    };
    let state = resource_state();
    let planned_create = with(
        &resource_proposed(),
        &[
            ("region", Value::string("us-east-1")),
            ("protocol", Value::string("tcp")),
            ("allow_world", Value::Bool(false)),
            ("id", Value::unknown()),
            ("created_at", Value::unknown()),
            ("expires_at", Value::unknown()),
            ("rule_ids", Value::unknown()),
            ("granted_by", Value::unknown()),
        ],
    );
    let cases = vec![
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::Apply {
                type_name: "allowlist_nope",
                prior: mp(&Value::Null),
                planned: mp(&planned_create),
                config: mp(&resource_config()),
            },
        ),
        case(
            "planned state not msgpack",
            error("Invalid Request"),
            apply(mp(&Value::Null), raw(TRUNCATED)),
        ),
        case(
            "prior state invalid JSON",
            error("Invalid Request"),
            apply(json_dv(b"{"), mp(&planned_create)),
        ),
        case(
            "planned missing attribute",
            error("Invalid Request"),
            apply(mp(&Value::Null), mp(&without(&planned_create, "ttl"))),
        ),
        case(
            "planned with an extra attribute",
            error("Invalid Request"),
            apply(
                mp(&Value::Null),
                mp(&with(&planned_create, &[("x", num(1))])),
            ),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            apply(
                mp(&Value::Null),
                mp(&with(&planned_create, &[("cidr_blocks", num(5))])),
            ),
        ),
        case(
            "ttl unknown at apply",
            error("Invalid Plan"),
            apply(
                mp(&Value::Null),
                mp(&with(&planned_create, &[("ttl", Value::unknown())])),
            ),
        ),
        case(
            "region unknown at apply (update)",
            error("Invalid State"),
            apply(
                mp(&state),
                mp(&with(&state, &[("region", Value::unknown())])),
            ),
        ),
        case(
            "nothing to apply (prior and planned empty)",
            error("Invalid Request"),
            apply(empty(), empty()),
        ),
        case(
            "delete of a state that is not an object",
            error("Invalid Request"),
            apply(mp(&num(3)), mp(&Value::Null)),
        ),
    ];
    run("ApplyResourceChange", Some(configured().await), cases).await;
}

#[tokio::test]
async fn read_resource_refuses_malformed_requests() {
    let read = |state| Call::Read(RESOURCE, state);
    let state = resource_state();
    let cases = vec![
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::Read("allowlist_nope", mp(&state)),
        ),
        case(
            "truncated msgpack",
            error("Invalid Request"),
            read(raw(TRUNCATED)),
        ),
        case(
            "invalid JSON",
            error("Invalid Request"),
            read(json_dv(b"nul")),
        ),
        case(
            "missing attribute",
            error("Invalid Request"),
            read(mp(&without(&state, "region"))),
        ),
        case(
            "extra attribute",
            error("Invalid Request"),
            read(mp(&with(&state, &[("bogus", Value::string("x"))]))),
        ),
        case(
            "number for a list of strings",
            error("Invalid Request"),
            read(mp(&with(&state, &[("security_group_ids", num(5))]))),
        ),
        case(
            "region unknown",
            error("Invalid State"),
            read(mp(&with(&state, &[("region", Value::unknown())]))),
        ),
        case("empty bytes", error("Invalid Request"), read(empty())),
        case(
            "not an object",
            error("Invalid Request"),
            read(mp(&Value::Bool(true))),
        ),
    ];
    run("ReadResource", Some(configured().await), cases).await;
}

#[tokio::test]
async fn import_resource_state_refuses_malformed_requests() {
    let import = |id| Call::Import(RESOURCE, id);
    let cases = vec![
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::Import("allowlist_nope", "us-east-1/grant-00000000000000aa"),
        ),
        case("empty id", error("Invalid Import ID"), import("")),
        case(
            "no slash",
            error("Invalid Import ID"),
            import("grant-00000000000000aa"),
        ),
        case(
            "bad region",
            error("Invalid Import ID"),
            import("moon-1/grant-1"),
        ),
        case(
            "unicode region",
            error("Invalid Import ID"),
            import("ús-east-1/grant-1"),
        ),
        case(
            "no grant id",
            error("Invalid Import ID"),
            import("us-east-1/"),
        ),
        case(
            "not a grant id",
            error("Invalid Import ID"),
            import("us-east-1/sgr-1"),
        ),
    ];
    run("ImportResourceState", Some(configured().await), cases).await;
}

#[tokio::test]
async fn upgrade_resource_state_refuses_malformed_requests() {
    let upgrade = |json: Vec<u8>| {
        Call::Upgrade(
            RESOURCE,
            0,
            Some(pb::RawState {
                json,
                ..Default::default()
            }),
        )
    };
    let state = resource_state();
    let cases = vec![
        case(
            "current state (control)",
            Want::NoError,
            upgrade(state_json(&state)),
        ),
        case(
            "state missing an attribute added since (control: filled with null)",
            Want::NoError,
            upgrade(state_json(&without(&state, "description"))),
        ),
        case(
            "state with an attribute removed since (control: dropped)",
            Want::NoError,
            upgrade(state_json(&with(&state, &[("legacy", Value::string("x"))]))),
        ),
        case(
            "unknown type name",
            error("Unknown Resource Type"),
            Call::Upgrade(
                "allowlist_nope",
                0,
                Some(pb::RawState {
                    json: state_json(&state),
                    ..Default::default()
                }),
            ),
        ),
        case(
            "invalid JSON",
            error("Invalid Stored State"),
            upgrade(b"{\"id\":".to_vec()),
        ),
        case(
            "number too large for JSON",
            error("Invalid Stored State"),
            upgrade(b"{\"ports\":[1e400]}".to_vec()),
        ),
        case(
            "empty bytes",
            error("Unsupported State Format"),
            upgrade(Vec::new()),
        ),
        case(
            "no raw state",
            error("Unsupported State Format"),
            Call::Upgrade(RESOURCE, 0, None),
        ),
        case(
            "newer schema version",
            error("Unsupported State Version"),
            Call::Upgrade(
                RESOURCE,
                99,
                Some(pb::RawState {
                    json: state_json(&state),
                    ..Default::default()
                }),
            ),
        ),
        case(
            "number for a list of strings",
            error("Invalid Stored State"),
            upgrade(state_json(&with(&state, &[("security_group_ids", num(5))]))),
        ),
        case(
            "null",
            error("Invalid Stored State"),
            upgrade(b"null".to_vec()),
        ),
        case(
            "a list",
            error("Invalid Stored State"),
            upgrade(b"[1,2]".to_vec()),
        ),
    ];
    run("UpgradeResourceState", None, cases).await;
}

#[tokio::test]
async fn configure_provider_refuses_malformed_requests() {
    let good = provider_config();
    let cases = vec![
        (
            "well-formed (control)",
            Want::NoError,
            Call::Configure(mp(&good)),
        ),
        (
            "truncated msgpack",
            error("Invalid Request"),
            Call::Configure(raw(TRUNCATED)),
        ),
        (
            "invalid JSON",
            error("Invalid Request"),
            Call::Configure(json_dv(b"{{")),
        ),
        (
            "missing attribute",
            error("Invalid Request"),
            Call::Configure(mp(&without(&good, "profile"))),
        ),
        (
            "extra attribute",
            error("Invalid Request"),
            Call::Configure(mp(&with(&good, &[("bogus", Value::Null)]))),
        ),
        (
            "number for a list of strings",
            error("Invalid Request"),
            Call::Configure(mp(&with(&good, &[("egress_regions", num(5))]))),
        ),
        (
            "unknown region",
            error("Provider Configuration Not Known"),
            Call::Configure(mp(&with(&good, &[("region", Value::unknown())]))),
        ),
        (
            "empty bytes",
            error("Invalid Request"),
            Call::Configure(empty()),
        ),
        (
            "not an object",
            error("Invalid Request"),
            Call::Configure(mp(&Value::string("us-east-1"))),
        ),
        (
            "validate: number for a string",
            error("Invalid Request"),
            Call::ValidateProvider(mp(&with(&good, &[("max_ttl", num(24))]))),
        ),
        (
            "validate: empty bytes",
            error("Invalid Request"),
            Call::ValidateProvider(empty()),
        ),
    ];
    // ConfigureProvider keeps the first configuration: each case gets a fresh provider.
    let cases = cases
        .into_iter()
        .map(|(label, want, c)| case(label, want, c))
        .collect();
    run("ConfigureProvider", None, cases).await;
}
