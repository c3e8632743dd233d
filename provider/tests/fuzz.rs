//! Property-based fuzzing of the provider's protocol layer: msgpack `DynamicValue`s (ext types and
//! unknowns, deep nesting, huge declared lengths, truncation), the JSON of `UpgradeResourceState`,
//! typed reads ([`FromValue`]), the schema checks (`check_value`, `conform`, `prune`), the TTL and
//! duration parser, and the gRPC service itself fed near-schema values. Each target must never
//! panic, on any input, and must keep the invariants stated next to it. The committed corpus
//! (`fuzz/corpus/{msgpack,json,ttl,plan}/`) is replayed too.
//!
//! The default case counts keep this file to a few seconds in a debug build; set
//! `PROPTEST_CASES` for a long run (see fuzz/README.md).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use allowlist_core::clock::{self, FixedClock};
use allowlist_core::duration::MAX as MAX_DURATION;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use terraform_provider_allowlist::provider::AllowlistProvider;
use terraform_provider_allowlist::tfplugin::proto::tfplugin6 as pb;
use terraform_provider_allowlist::tfplugin::server::ProviderService;
use terraform_provider_allowlist::tfplugin::value::{FromValue, Number};
use terraform_provider_allowlist::tfplugin::{AttributePath, Block, Provider, Tri, Type, Value};
use terraform_provider_allowlist::validators::positive_duration as parse_positive_duration;
use tonic::Request;

use pb::provider_server::Provider as _;

#[path = "../../fuzz/harness.rs"]
mod harness;
use harness::{check_accepted, config, corpus};

// ------------------------------------------------------------------------------------------------
// The provider and its schemas (case counts and corpus reading: fuzz/harness.rs).

fn provider() -> AllowlistProvider {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
    AllowlistProvider::new(Arc::new(FixedClock(now)))
}

/// The three schemas: provider, data source, resource.
fn blocks() -> Vec<Block> {
    let p = provider();
    vec![
        p.schema().block,
        p.data_sources()[0].schema().block,
        p.resources()[0].schema().block,
    ]
}

// ------------------------------------------------------------------------------------------------
// Value generators.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,16}"]
}

fn ext_bytes(ext_type: i8, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Ext(ext_type, payload)).unwrap();
    out
}

/// An unknown value, as any msgpack extension type with any payload.
fn unknown() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::unknown()),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(t, p)| Value::from_msgpack(&ext_bytes(t, p)).unwrap()),
    ]
}

/// Numbers as the decoder produces them: unsigned only past i64, floats never NaN (NaN is not
/// equal to itself, so it cannot round-trip by value; it is covered byte-wise below).
fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Number::UInt),
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Number::Float),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        unknown(),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ]
}

/// Any value the decoder can produce (up to a few levels deep).
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::btree_map(text(), inner, 0..6).prop_map(Value::Map),
        ]
    })
}

/// Strings that mean something to some attribute, and some that are nearly right.
const INTERESTING: &[&str] = &[
    "",
    "sg-0123abcd",
    "sg-0123456789abcdef0",
    "sg-0123ABCD",
    "us-east-1",
    "us-gov-west-1",
    "ús-east-1",
    "all",
    "24h",
    "1h",
    "0s",
    "100years",
    "101years",
    "99999999999999999h",
    "1day",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "6",
    "203.0.113.7/32",
    "2001:db8::/64",
    "0.0.0.0/0",
    "::/0",
    "1.2.3.4/33",
    "0x7f.1/8",
    "8000-8100",
    "1-0",
    "-1",
    "65536",
    "grant-00000000000000aa",
    "2025-11-21T11:30:00Z",
    "2025-11-21T12:30:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "vpc-id",
    "tag:Name",
    "state",
    "*proxy*",
    "http://127.0.0.1:1",
    "https://checkip.amazonaws.com",
    "allowlist:grant-id",
    "aws:x",
    "1e400",
    "18446744073709551616",
];

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(INTERESTING).prop_map(str::to_owned),
        1 => text(),
    ]
}

fn interesting_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![-1i64, 0, 1, 22, 443, 65535, 65536, i64::MIN, i64::MAX])
            .prop_map(|n| Value::Number(Number::Int(n))),
        number().prop_map(Value::Number),
        Just(Value::Number(Number::Float(f64::NAN))),
        // cty sends numbers no msgpack number holds as decimal strings.
        prop::sample::select(vec!["22", "1e400", "-0", "nan", "x"]).prop_map(Value::string),
    ]
}

/// A value of type `ty`, mostly; sometimes null, unknown, or anything at all.
fn typed(ty: &Type) -> BoxedStrategy<Value> {
    let right: BoxedStrategy<Value> = match ty {
        Type::String => interesting_string().prop_map(Value::String).boxed(),
        Type::Number => interesting_number().boxed(),
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::List(t) | Type::Set(t) => prop::collection::vec(typed(t), 0..4)
            .prop_map(Value::List)
            .boxed(),
        Type::Map(t) => prop::collection::btree_map(interesting_string(), typed(t), 0..3)
            .prop_map(Value::Map)
            .boxed(),
        Type::Object(attrs) => {
            let fields: Vec<BoxedStrategy<(String, Value)>> = attrs
                .iter()
                .map(|(k, t)| {
                    let k = k.clone();
                    typed(t).prop_map(move |v| (k.clone(), v)).boxed()
                })
                .collect();
            fields
                .prop_map(|pairs| Value::Map(pairs.into_iter().collect()))
                .boxed()
        }
    };
    prop_oneof![
        8 => right,
        1 => Just(Value::Null),
        1 => unknown(),
        1 => value(),
    ]
    .boxed()
}

/// An object near `block`: every attribute of (mostly) its type; now and then one missing, one
/// extra, or not an object at all.
fn near(block: &Block) -> BoxedStrategy<Value> {
    let mut fields: Vec<BoxedStrategy<(String, Value)>> = block
        .attributes
        .iter()
        .map(|a| {
            let name = a.name.to_owned();
            typed(&a.ty).prop_map(move |v| (name.clone(), v)).boxed()
        })
        .collect();
    for nested in &block.blocks {
        let name = nested.type_name.to_owned();
        let items = prop_oneof![
            6 => prop::collection::vec(near(&nested.block), 0..3).prop_map(Value::List),
            1 => Just(Value::Null),
            1 => unknown(),
            1 => value(),
        ];
        fields.push(items.prop_map(move |v| (name.clone(), v)).boxed());
    }
    let object = fields.prop_map(|pairs| Value::Map(pairs.into_iter().collect()));
    (object, 0u8..20, any::<prop::sample::Index>(), text())
        .prop_map(|(mut v, spoil, index, extra)| {
            let map = v.as_map_mut().unwrap();
            match spoil {
                0 if !map.is_empty() => {
                    let key = map.keys().nth(index.index(map.len())).unwrap().clone();
                    map.remove(&key);
                }
                1 => {
                    map.insert(extra, Value::Null);
                }
                2 => return Value::string("not an object"),
                _ => {}
            }
            v
        })
        .boxed()
}

// ------------------------------------------------------------------------------------------------
// msgpack → Value: never panics; what decodes re-encodes to bytes that decode to the same bytes
// again; generated values round-trip exactly.

/// msgpack fragments: headers with odd or huge lengths, extension types of every size, maps with
/// non-string keys, reserved markers, and whole small values.
fn msgpack_token() -> impl Strategy<Value = Vec<u8>> {
    let be16 = |m: u8, n: u16| [vec![m], n.to_be_bytes().to_vec()].concat();
    let be32 = |m: u8, n: u32| [vec![m], n.to_be_bytes().to_vec()].concat();
    prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        (
            0xd4u8..=0xd8,
            any::<i8>(),
            prop::collection::vec(any::<u8>(), 0..17)
        )
            .prop_map(|(m, t, p)| [vec![m, t as u8], p].concat()),
        (
            any::<u8>(),
            any::<i8>(),
            prop::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(len, t, p)| [vec![0xc7, len, t as u8], p].concat()),
        (any::<u16>(), any::<i8>())
            .prop_map(move |(len, t)| [be16(0xc8, len), vec![t as u8]].concat()),
        (any::<u32>(), any::<i8>())
            .prop_map(move |(len, t)| [be32(0xc9, len), vec![t as u8]].concat()),
        (
            prop::sample::select(vec![0xdcu8, 0xde, 0xda, 0xc5]),
            any::<u16>()
        )
            .prop_map(move |(m, n)| be16(m, n)),
        (
            prop::sample::select(vec![0xddu8, 0xdf, 0xdb, 0xc6]),
            any::<u32>()
        )
            .prop_map(move |(m, n)| be32(m, n)),
        (0x80u8..=0xbf).prop_map(|m| vec![m]),
        prop::sample::select(vec![
            vec![0x81, 0x01, 0xc0],
            vec![0x81, 0xc0, 0xc0],
            vec![0x81, 0x91, 0xc0, 0xc0],
            vec![0x81, 0xd4, 0x00, 0x00, 0xc0],
            vec![0xc1],
            vec![0xd4, 0x00, 0x00],
            vec![0xc7, 0x00, 0x0c],
        ]),
        leaf().prop_map(|v| v.to_msgpack()),
    ]
}

fn msgpack_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(msgpack_token(), 0..10).prop_map(|parts| parts.concat()),
        // A valid encoding, then truncated, overwritten at one byte, or with a byte inserted.
        (value(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(
            |(v, at, byte, how)| {
                let mut b = v.to_msgpack();
                let i = at.index(b.len());
                match how {
                    0 => b.truncate(i),
                    1 => b[i] = byte,
                    _ => b.insert(i, byte),
                }
                b
            }
        ),
    ]
}

/// What must hold for any bytes.
fn check_msgpack(bytes: &[u8]) -> bool {
    match Value::from_msgpack(bytes) {
        Ok(v) => {
            let encoded = v.to_msgpack();
            let again = Value::from_msgpack(&encoded).expect("our own encoding decodes");
            assert_eq!(again.to_msgpack(), encoded, "re-encoding is stable");
            check_reads(&v);
            for block in blocks() {
                let _ = block.check_value(&v);
                let mut conformed = v.clone();
                let _ = block.conform(&mut conformed);
                block.prune(&mut conformed);
            }
            true
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            false
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn msgpack_decode_never_panics(bytes in msgpack_bytes()) {
        check_msgpack(&bytes);
    }

    #[test]
    fn msgpack_round_trips(v in value()) {
        let bytes = v.to_msgpack();
        let decoded = Value::from_msgpack(&bytes);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        prop_assert_eq!(decoded.unwrap(), v);
    }
}

#[test]
fn msgpack_corpus() {
    for (name, bytes) in corpus("msgpack") {
        let accepted = on_small_stack(move || check_msgpack(&bytes));
        check_accepted(&name, accepted);
    }
}

/// Runs `f` on a thread with the 2 MiB stack of a tokio worker (where the gRPC handlers decode).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn msgpack_nesting_10k_deep_is_an_error_not_a_stack_overflow() {
    for (open, close) in [
        (vec![0x91u8], vec![0xc0u8]),         // [[[…nil…]]]
        (vec![0x81, 0xa1, b'a'], vec![0xc0]), // {"a":{"a":…nil…}}
        (vec![0x91], vec![0xd4, 0x0c, 0x00]), // […unknown…]
        (vec![0xdd, 0, 0, 0, 1], vec![0xa0]), // array32 of length 1 …
        (vec![0x81, 0x91], vec![0xc0, 0xc0]), // non-string keys, nested in the key
    ] {
        let bytes: Vec<u8> = [open.repeat(10_000), close].concat();
        let result = on_small_stack(move || Value::from_msgpack(&bytes).map(|_| ()));
        assert!(result.is_err());
    }
    // Regression: from 512 deep, rmpv's default depth limit let the decoder overflow a 2 MiB
    // stack in a debug build. Now the limit is 128 (about 64 levels).
    for depth in [63, 64, 65, 100, 511, 512] {
        let bytes: Vec<u8> = [vec![0x91u8; depth], vec![0xc0]].concat();
        let decoded = on_small_stack(move || check_msgpack(&bytes));
        assert_eq!(decoded, depth < 64, "{depth} deep");
    }
}

#[test]
fn msgpack_huge_declared_lengths_fail_fast() {
    // Lengths of 4 Gi elements or bytes with nothing behind them: an error, without allocating.
    for bytes in [
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],
        vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x0c],
    ] {
        let started = std::time::Instant::now();
        assert!(Value::from_msgpack(&bytes).is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

// ------------------------------------------------------------------------------------------------
// JSON → Value (UpgradeResourceState): never panics; never produces unknowns; agrees with a
// reference conversion of serde_json's own parse.

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        text().prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The reference: what each JSON value must become.
fn from_serde_reference(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(if let Some(i) = n.as_i64() {
            Number::Int(i)
        } else if let Some(u) = n.as_u64() {
            Number::UInt(u)
        } else {
            Number::Float(n.as_f64().unwrap())
        }),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            Value::List(items.iter().map(from_serde_reference).collect())
        }
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), from_serde_reference(v)))
                .collect(),
        ),
    }
}

/// How many lists and maps deep `v` is.
fn depth(v: &Value) -> usize {
    match v {
        Value::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Map(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn json_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "null",
            "true",
            "1e400",
            "-1e400",
            "1E-400",
            "18446744073709551616",
            "-9223372036854775809",
            "-0",
            "0.1e",
            "\\u0000",
            "\\ud800",
            "\"\\ud83d\\ude00\"",
            "NaN",
            "Infinity",
            "\u{feff}",
            " ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(token, 0..16).prop_map(|parts| parts.concat()),
        json_value().prop_map(|j| j.to_string().into_bytes()),
    ]
}

fn check_json(bytes: &[u8]) -> bool {
    match Value::from_json(bytes) {
        Ok(v) => {
            assert!(v.is_wholly_known(), "JSON has no unknowns");
            // JSON may nest deeper (128) than the msgpack decoder accepts (about 64).
            let encoded = v.to_msgpack();
            if depth(&v) < 64 {
                let again = Value::from_msgpack(&encoded).expect("decodes");
                assert_eq!(again.to_msgpack(), encoded);
            }
            check_reads(&v);
            true
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            false
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn json_decode_never_panics(bytes in json_bytes()) {
        check_json(&bytes);
    }

    #[test]
    fn json_decode_agrees_with_the_reference(json in json_value()) {
        let bytes = serde_json::to_vec(&json).unwrap();
        let decoded = Value::from_json(&bytes);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        // (Parsed again rather than `json` itself: serde_json's float parsing may differ from
        // the value it printed by one unit in the last place.)
        let reparsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(decoded.unwrap(), from_serde_reference(&reparsed));
    }
}

#[test]
fn json_corpus() {
    for (name, bytes) in corpus("json") {
        let accepted = on_small_stack(move || check_json(&bytes));
        check_accepted(&name, accepted);
    }
}

// ------------------------------------------------------------------------------------------------
// Typed reads: never panic; a known result is the value itself; a refusal points at the path.

fn check_read<T: FromValue + std::fmt::Debug>(v: &Value, expect: impl Fn(&T) -> bool) {
    let path = AttributePath::root().attr("a");
    match T::read(v, &path) {
        Ok(Tri::Null) => assert!(v.is_null()),
        Ok(Tri::Unknown) => assert!(v.is_unknown()),
        Ok(Tri::Known(t)) => assert!(expect(&t), "{v:?} read as {t:?}"),
        Err(d) => {
            assert!(!v.is_null() && !v.is_unknown());
            assert!(!d.summary.is_empty() && !d.detail.is_empty());
            let at = d.path.expect("a refusal points at an attribute");
            assert!(at.steps().starts_with(path.steps()));
        }
    }
}

fn check_reads(v: &Value) {
    check_read::<String>(v, |s| v == &Value::String(s.clone()));
    check_read::<bool>(v, |b| v == &Value::Bool(*b));
    check_read::<i64>(v, |n| match v {
        Value::Number(x) => x.as_i64() == Some(*n),
        Value::String(s) => s.parse::<i64>().ok() == Some(*n),
        _ => false,
    });
    check_read::<Vec<Tri<String>>>(
        v,
        |l| matches!(v, Value::List(items) if items.len() == l.len()),
    );
    check_read::<Vec<Tri<i64>>>(
        v,
        |l| matches!(v, Value::List(items) if items.len() == l.len()),
    );
    check_read::<BTreeMap<String, Tri<String>>>(
        v,
        |m| matches!(v, Value::Map(items) if items.len() == m.len()),
    );
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn typed_reads_never_panic(v in value()) {
        check_reads(&v);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn schema_checks_never_panic_and_agree(
        (index, v) in (0usize..3).prop_flat_map(|i| (Just(i), near(&blocks()[i])))
    ) {
        let block = &blocks()[index];
        let checked = block.check_value(&v);
        let mut conformed = v.clone();
        let conform = block.conform(&mut conformed);
        if checked.is_ok() {
            // What passes the check is complete already: conform only turns null blocks into [].
            prop_assert!(conform.is_ok());
            prop_assert!(block.check_value(&conformed).is_ok());
        }
        if conform.is_ok() && conformed.as_map_mut().is_some() {
            for attr in &block.attributes {
                prop_assert!(matches!(&conformed, Value::Map(m) if m.contains_key(attr.name)));
            }
        }
        let mut pruned = v.clone();
        block.prune(&mut pruned);
        if let Value::Map(m) = &pruned {
            for key in m.keys() {
                prop_assert!(
                    block.find(key).is_some() || block.blocks.iter().any(|b| b.type_name == key)
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// validators::positive_duration (ttl, max_ttl, request_timeout): never panics; what it accepts is
// greater than zero, at most MAX_DURATION, agrees with humantime, and can be added to any instant
// up to the year 9000 and written as RFC 3339 (a longer one used to crash the provider).

fn check_ttl(s: &str) -> bool {
    let path = AttributePath::root().attr("ttl");
    match parse_positive_duration(s, &path) {
        Ok(d) => {
            assert!(!d.is_zero() && d <= MAX_DURATION, "{s:?} gave {d:?}");
            assert_eq!(humantime::parse_duration(s).ok(), Some(d));
            let year_9000 = SystemTime::UNIX_EPOCH + Duration::from_secs(221_845_392_000);
            let expiry = clock::checked_add(year_9000, d).expect("representable");
            assert!(!clock::format_instant(expiry).is_empty());
            true
        }
        Err(d) => {
            assert_eq!(d.summary, "Invalid Duration");
            assert_eq!(d.path, Some(path));
            false
        }
    }
}

fn ttl_like() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "ns", "us", "ms", "s", "sec", "m", "min", "h", "hr", "d", "day", "days", "w", "week", "M",
        "month", "y", "year", "years", "", "x", "é",
    ]);
    let amount = prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("99999999999999999".to_owned()),
        "[0-9]{0,25}",
        "-?[0-9]{1,3}\\.[0-9]{0,3}",
    ];
    prop_oneof![
        prop::collection::vec((amount, unit), 1..4).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(a, u)| format!("{a}{u}"))
                .collect::<Vec<_>>()
                .join(" ")
        }),
        text(),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn durations_are_positive_bounded_and_agree_with_humantime(s in ttl_like()) {
        check_ttl(&s);
    }
}

#[test]
fn ttl_corpus() {
    for (name, bytes) in corpus("ttl") {
        let s = String::from_utf8_lossy(&bytes);
        check_accepted(&name, check_ttl(&s));
    }
}

// ------------------------------------------------------------------------------------------------
// The gRPC service fed near-schema values: never a panic or a gRPC status; every diagnostic has a
// summary and a detail; a value that does not fit the schema is refused as "Invalid Request";
// a plan or an upgrade without errors fits the schema. (No request reaches AWS: creates are
// planned with an unknown region, and apply, read and import are left to malformed_requests.rs.)

type Service = ProviderService<AllowlistProvider>;

fn dv(v: &Value) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: v.to_msgpack(),
        json: Vec::new(),
    })
}

const ERROR: i32 = pb::diagnostic::Severity::Error as i32;

fn check_diagnostics(diags: &[pb::Diagnostic]) {
    for d in diags {
        assert!(!d.summary.is_empty() && !d.detail.is_empty(), "{d:?}");
    }
}

fn refused_as_invalid(diags: &[pb::Diagnostic]) -> bool {
    diags
        .iter()
        .any(|d| d.severity == ERROR && d.summary == "Invalid Request")
}

fn json_of(v: &Value) -> Vec<u8> {
    fn conv(v: &Value) -> serde_json::Value {
        match v {
            Value::Null | Value::Unknown(_) => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Number(Number::Int(i)) => (*i).into(),
            Value::Number(Number::UInt(u)) => (*u).into(),
            Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Number(Number::Decimal(s)) | Value::String(s) => s.clone().into(),
            Value::List(items) => items.iter().map(conv).collect(),
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), conv(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    conv(v).to_string().into_bytes()
}

async fn exercise(svc: &Service, which: u8, a: Value, b: Value, c: Value) {
    let p = provider();
    let resource = p.resources()[0].schema().block;
    let data_source = p.data_sources()[0].schema().block;
    let provider_block = p.schema().block;
    let type_name = |b: bool| {
        if b {
            "allowlist_temporary_ingress"
        } else {
            "allowlist_egress_ips"
        }
    };
    match which {
        0 => {
            let r = svc
                .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                    type_name: type_name(true).into(),
                    config: dv(&a),
                }))
                .await
                .expect("a response")
                .into_inner();
            check_diagnostics(&r.diagnostics);
            if resource.check_value(&a).is_err() {
                assert!(refused_as_invalid(&r.diagnostics), "{:?}", r.diagnostics);
            }
        }
        1 => {
            let r = svc
                .validate_data_resource_config(Request::new(
                    pb::validate_data_resource_config::Request {
                        type_name: type_name(false).into(),
                        config: dv(&a),
                    },
                ))
                .await
                .expect("a response")
                .into_inner();
            check_diagnostics(&r.diagnostics);
            if data_source.check_value(&a).is_err() {
                assert!(refused_as_invalid(&r.diagnostics), "{:?}", r.diagnostics);
            }
        }
        2 => {
            let r = svc
                .validate_provider_config(Request::new(pb::validate_provider_config::Request {
                    config: dv(&a),
                }))
                .await
                .expect("a response")
                .into_inner();
            check_diagnostics(&r.diagnostics);
            if provider_block.check_value(&a).is_err() {
                assert!(refused_as_invalid(&r.diagnostics), "{:?}", r.diagnostics);
            }
        }
        3 | 4 => {
            // 3: an update (prior a, proposed b, config b); 4: a create (prior null).
            let (prior, proposed) = if which == 3 { (a, b) } else { (Value::Null, a) };
            let mut config = if which == 3 { proposed.clone() } else { c };
            if prior.is_null() {
                if let Some(map) = config.as_map_mut() {
                    map.insert("region".into(), Value::unknown());
                }
            }
            let r = svc
                .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                    type_name: type_name(true).into(),
                    prior_state: dv(&prior),
                    proposed_new_state: dv(&proposed),
                    config: dv(&config),
                    ..Default::default()
                }))
                .await
                .expect("a response")
                .into_inner();
            check_diagnostics(&r.diagnostics);
            let malformed = [&prior, &proposed]
                .iter()
                .any(|v| !v.is_null() && resource.check_value(v).is_err())
                || resource.check_value(&config).is_err();
            if malformed {
                assert!(refused_as_invalid(&r.diagnostics), "{:?}", r.diagnostics);
            }
            if !r.diagnostics.iter().any(|d| d.severity == ERROR) {
                let planned = Value::from_msgpack(&r.planned_state.unwrap().msgpack).unwrap();
                assert!(resource.check_value(&planned).is_ok(), "{planned:?}");
                for path in r.requires_replace {
                    assert_eq!(path.steps.len(), 1);
                }
            }
        }
        _ => {
            let r = svc
                .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
                    type_name: type_name(true).into(),
                    version: 0,
                    raw_state: Some(pb::RawState {
                        json: json_of(&a),
                        ..Default::default()
                    }),
                }))
                .await
                .expect("a response")
                .into_inner();
            check_diagnostics(&r.diagnostics);
            if r.diagnostics.is_empty() {
                let state = Value::from_msgpack(&r.upgraded_state.unwrap().msgpack).unwrap();
                assert!(resource.check_value(&state).is_ok() && state.is_wholly_known());
            } else {
                assert!(r.upgraded_state.is_none());
            }
        }
    }
}

/// A runtime and a service configured with an endpoint nothing listens on and the longest
/// max_ttl there is.
fn configured_service() -> (tokio::runtime::Runtime, Service) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let svc = ProviderService::new(provider());
    let configure = pb::configure_provider::Request {
        terraform_version: "1.15.5".into(),
        config: dv(&Value::object([
            ("region", Value::string("us-east-1")),
            ("profile", Value::Null),
            ("egress_regions", Value::Null),
            ("endpoint_url", Value::string("http://127.0.0.1:1")),
            ("max_ttl", Value::string("100years")),
            ("request_timeout", Value::string("2s")),
            ("ip_lookup_url", Value::Null),
            ("assume_role", Value::List(vec![])),
        ])),
    };
    let configured = rt
        .block_on(svc.configure_provider(Request::new(configure)))
        .unwrap()
        .into_inner();
    assert!(
        configured.diagnostics.is_empty(),
        "{:?}",
        configured.diagnostics
    );
    (rt, svc)
}

#[test]
fn service_never_panics_on_near_schema_requests() {
    let (rt, svc) = configured_service();
    let blocks = blocks();
    let strategy = (0u8..6).prop_flat_map(move |which| {
        let block = match which {
            1 => &blocks[1],
            2 => &blocks[0],
            _ => &blocks[2],
        };
        (Just(which), near(block), near(block), near(block))
    });
    let mut runner = TestRunner::new(config(600));
    runner
        .run(&strategy, |(which, a, b, c)| {
            rt.block_on(exercise(&svc, which, a, b, c));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `fuzz/corpus/plan/`: each file is a msgpack map of `prior`, `proposed` and `config`, sent as a
/// PlanResourceChange; `ok_` plans without errors, `err_` is refused with an error diagnostic.
#[test]
fn plan_corpus() {
    let (rt, svc) = configured_service();
    for (name, bytes) in corpus("plan") {
        let parts = Value::from_msgpack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let request = pb::plan_resource_change::Request {
            type_name: "allowlist_temporary_ingress".into(),
            prior_state: dv(parts.attr("prior")),
            proposed_new_state: dv(parts.attr("proposed")),
            config: dv(parts.attr("config")),
            ..Default::default()
        };
        let r = rt
            .block_on(svc.plan_resource_change(Request::new(request)))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            .into_inner();
        check_diagnostics(&r.diagnostics);
        let accepted = !r.diagnostics.iter().any(|d| d.severity == ERROR);
        check_accepted(&name, accepted);
    }
}
