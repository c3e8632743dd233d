//! Property-based fuzzing of the parsers in allowlist-core: CIDRs, port ranges, security group
//! ids, tag keys, region names, wildcard patterns and the ip-ranges document. Each target must
//! never panic, on any input, and must keep the invariants stated next to it. The committed
//! corpus (`fuzz/corpus/<target>/`) is replayed first, with the outcome its file name promises.
//!
//! The default case counts keep this file to a few seconds in a debug build; set
//! `PROPTEST_CASES` for a long run (see fuzz/README.md).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use allowlist_core::document::{Entry, IpRanges, MAX_SYNC_TOKEN};
use allowlist_core::ingress::{self, PortRange, MIN_PREFIX_V4, MIN_PREFIX_V6};
use allowlist_core::region;
use allowlist_core::wildcard::Pattern;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

#[path = "../../fuzz/harness.rs"]
mod harness;
use harness::{config, corpus, corpus_root, expect, Expect};

// ------------------------------------------------------------------------------------------------
// The corpus of this file's targets (case counts and corpus reading: fuzz/harness.rs).

/// The corpus of a text target: the file's bytes, exactly, as a string.
fn text_corpus(target: &str) -> Vec<(String, String)> {
    corpus(target)
        .into_iter()
        .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// Every target that has a corpus directory, whichever crate's tests replay it.
const TARGETS: &[&str] = &[
    // core (this file)
    "cidr",
    "ports",
    "group_id",
    "tag_key",
    "region",
    "wildcard",
    "ip_ranges",
    // provider/tests/fuzz.rs
    "msgpack",
    "json",
    "ttl",
    "plan",
    // publisher/tests/fuzz.rs
    "publisher_args",
];

#[test]
fn every_corpus_directory_has_a_target() {
    let mut dirs: Vec<String> = std::fs::read_dir(corpus_root())
        .expect("fuzz/corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut known: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    known.sort();
    assert_eq!(dirs, known, "fuzz/corpus/ and the fuzz targets disagree");
}

/// Some arbitrary text: any Unicode, or printable ASCII that is likelier to get past a parser.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,24}"]
}

// ------------------------------------------------------------------------------------------------
// check_cidr: never panics; what it accepts is canonical (no host bits), round-trips through its
// own Display, is accepted again, and respects the /16 and /48 limits unless allow_world.

fn check_cidr_invariants(s: &str) {
    let narrow = ingress::check_cidr(s, false);
    let world = ingress::check_cidr(s, true);
    if let Ok(net) = &narrow {
        assert_eq!(world.as_ref(), Ok(net), "{s:?}: narrow OK but world not");
        let min = match net {
            IpNet::V4(_) => MIN_PREFIX_V4,
            IpNet::V6(_) => MIN_PREFIX_V6,
        };
        assert!(net.prefix_len() >= min, "{s:?} is broader than /{min}");
    }
    match &world {
        Ok(net) => {
            assert_eq!(*net, net.trunc(), "{s:?} accepted with host bits");
            assert_eq!(
                ingress::check_cidr(&net.to_string(), true).as_ref(),
                Ok(net),
                "{s:?}: its canonical form {net} is refused"
            );
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
}

fn cidr_like() -> impl Strategy<Value = String> {
    let octet = prop_oneof![0u32..=255, 0u32..=999, Just(256u32)];
    let v4 = (
        prop::collection::vec(octet, 1..=5),
        prop::option::of(0u32..=40),
    )
        .prop_map(|(octets, prefix)| {
            let addr: Vec<String> = octets.iter().map(u32::to_string).collect();
            match prefix {
                Some(p) => format!("{}/{p}", addr.join(".")),
                None => addr.join("."),
            }
        });
    let v6 = (any::<[u16; 8]>(), 0u32..=140, 0usize..8).prop_map(|(groups, prefix, zeros)| {
        let addr = Ipv6Addr::from(groups).to_string();
        // Sometimes hand-abbreviate wrongly: too many groups, or a second "::".
        let addr = match zeros {
            0 => format!("{addr}::1"),
            1 => format!("::{addr}"),
            _ => addr,
        };
        format!("{addr}/{prefix}")
    });
    let junk = "[0-9a-fx:./ +-]{0,24}";
    prop_oneof![v4, v6, junk, text()]
}

fn any_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap())),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), p).unwrap())),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn check_cidr_never_panics_and_accepts_only_canonical_networks(s in cidr_like()) {
        check_cidr_invariants(&s);
    }

    #[test]
    fn check_cidr_accepts_every_network_in_canonical_form(net in any_net()) {
        let canonical = net.trunc();
        prop_assert_eq!(ingress::check_cidr(&canonical.to_string(), true), Ok(canonical));
        if net != canonical {
            let err = ingress::check_cidr(&net.to_string(), true).unwrap_err();
            prop_assert!(err.contains(&canonical.to_string()), "{}", err);
        }
    }
}

#[test]
fn cidr_corpus() {
    for (name, s) in text_corpus("cidr") {
        check_cidr_invariants(&s);
        let (narrow, world) = (
            ingress::check_cidr(&s, false).is_ok(),
            ingress::check_cidr(&s, true).is_ok(),
        );
        match expect(&name) {
            Expect::Ok => assert!(narrow && world, "{name}: {s:?} refused"),
            Expect::World => assert!(!narrow && world, "{name}: {s:?}"),
            Expect::Err => assert!(!world, "{name}: {s:?} accepted"),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------------
// PortRange::parse: never panics; what it accepts is 0 <= from <= to <= 65535 and parses again
// from "FROM-TO"; every pair of ports in range parses, in order, and nothing else does.

fn check_ports_invariants(s: &str) {
    if let Ok(r) = PortRange::parse(s) {
        assert!(
            0 <= r.from && r.from <= r.to && r.to <= 65535,
            "{s:?} gave {r:?}"
        );
        assert_eq!(PortRange::parse(&format!("{}-{}", r.from, r.to)), Ok(r));
    }
}

fn port_like() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0i64..=70000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("4294967296".to_owned()),
        Just("99999999999999999999999".to_owned()),
        "[0+ -]{0,3}[0-9]{0,6}",
    ];
    prop_oneof![
        (number.clone(), number.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        number,
        "[0-9 -]{0,12}",
        text(),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn port_range_parse_never_panics(s in port_like()) {
        check_ports_invariants(&s);
    }

    #[test]
    fn port_range_parse_is_exact(a in 0u32..=70000, b in 0u32..=70000) {
        let parsed = PortRange::parse(&format!("{a}-{b}"));
        let valid = a <= 65535 && b <= 65535 && a <= b;
        prop_assert_eq!(parsed.is_ok(), valid, "{}-{}", a, b);
        if valid {
            prop_assert_eq!(parsed, Ok(PortRange { from: a as i32, to: b as i32 }));
        }
        if let Ok(single) = u16::try_from(a) {
            prop_assert_eq!(PortRange::parse(&a.to_string()), Ok(PortRange::single(single)));
        } else {
            prop_assert!(PortRange::parse(&a.to_string()).is_err());
        }
    }
}

#[test]
fn ports_corpus() {
    for (name, s) in text_corpus("ports") {
        check_ports_invariants(&s);
        match expect(&name) {
            Expect::Ok => assert!(PortRange::parse(&s).is_ok(), "{name}: {s:?}"),
            Expect::Err => assert!(PortRange::parse(&s).is_err(), "{name}: {s:?}"),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------------
// check_group_id and check_user_tag_key agree with a reference written independently.

fn group_id_reference(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sg-") else {
        return false;
    };
    let n = rest.chars().count();
    (n == 8 || n == 17) && rest.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

fn tag_key_reference(s: &str) -> bool {
    !s.is_empty() && !s.starts_with("allowlist:") && !s.starts_with("aws:")
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn check_group_id_agrees_with_the_reference(
        s in prop_oneof!["(sg-)?[0-9a-fA-Fg]{0,20}", "sg-[0-9a-f]{8}", "sg-[0-9a-f]{17}", text()]
    ) {
        prop_assert_eq!(ingress::check_group_id(&s).is_ok(), group_id_reference(&s), "{:?}", s);
    }

    #[test]
    fn check_user_tag_key_agrees_with_the_reference(
        s in prop_oneof!["(allowlist|aws|Aws|allowlist-)?:?[a-z:]{0,6}", text()]
    ) {
        prop_assert_eq!(ingress::check_user_tag_key(&s).is_ok(), tag_key_reference(&s), "{:?}", s);
    }
}

#[test]
fn group_id_corpus() {
    for (name, s) in text_corpus("group_id") {
        let ok = ingress::check_group_id(&s).is_ok();
        assert_eq!(ok, group_id_reference(&s), "{name}: {s:?}");
        match expect(&name) {
            Expect::Ok => assert!(ok, "{name}: {s:?}"),
            Expect::Err => assert!(!ok, "{name}: {s:?}"),
            _ => {}
        }
    }
}

#[test]
fn tag_key_corpus() {
    for (name, s) in text_corpus("tag_key") {
        let ok = ingress::check_user_tag_key(&s).is_ok();
        assert_eq!(ok, tag_key_reference(&s), "{name}: {s:?}");
        match expect(&name) {
            Expect::Ok => assert!(ok, "{name}: {s:?}"),
            Expect::Err => assert!(!ok, "{name}: {s:?}"),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------------
// region::check_name: never panics (Unicode included) and agrees with a reference: two lower-case
// letters, one or more dash-separated lower-case words, a dash and a one- or two-digit number.

fn region_reference(s: &str) -> bool {
    let Some((head, number)) = s.rsplit_once('-') else {
        return false;
    };
    let number_ok = (1..=2).contains(&number.len()) && number.chars().all(|c| c.is_ascii_digit());
    let words: Vec<&str> = head.split('-').collect();
    number_ok
        && words.len() >= 2
        && words[0].len() == 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn region_check_name_agrees_with_the_reference(
        s in prop_oneof![
            "[a-z]{2}(-[a-z]{1,9}){1,3}-[0-9]{1,2}",
            "[a-zA-Z_]{0,3}(-[a-zé]{0,5}){0,4}-?[0-9]{0,3}",
            text(),
        ]
    ) {
        let ok = region::check_name(&s).is_ok();
        prop_assert_eq!(ok, region_reference(&s), "{:?}", s);
        if let Err(msg) = region::check_name(&s) {
            prop_assert!(msg.contains("is not an AWS region name"));
        }
    }
}

#[test]
fn region_corpus() {
    for (name, s) in text_corpus("region") {
        let ok = region::check_name(&s).is_ok();
        assert_eq!(ok, region_reference(&s), "{name}: {s:?}");
        match expect(&name) {
            Expect::Ok => assert!(ok, "{name}: {s:?}"),
            Expect::Err => assert!(!ok, "{name}: {s:?}"),
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------------
// wildcard::Pattern: every string compiles, matching never panics, and agrees with a reference
// matcher (dynamic programming over the same tokens); an escaped string matches itself exactly.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Any,
}

fn reference_tokens(pattern: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    out
}

fn reference_matches(pattern: &str, text: &str) -> bool {
    let toks = reference_tokens(pattern);
    let text: Vec<char> = text.chars().collect();
    // m[i][j]: the first i tokens match the first j characters.
    let mut m = vec![vec![false; text.len() + 1]; toks.len() + 1];
    m[0][0] = true;
    for i in 1..=toks.len() {
        for j in 0..=text.len() {
            m[i][j] = match toks[i - 1] {
                Tok::Any => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                Tok::One => j > 0 && m[i - 1][j - 1],
                Tok::Lit(c) => j > 0 && text[j - 1] == c && m[i - 1][j - 1],
            };
        }
    }
    m[toks.len()][text.len()]
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '*' | '?' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn wildcard_agrees_with_the_reference(
        pattern in prop_oneof!["[ab*?\\\\]{0,10}", text()],
        text in prop_oneof!["[ab*?\\\\]{0,12}", text()],
    ) {
        let compiled = Pattern::new(&pattern);
        prop_assert_eq!(compiled.as_str(), pattern.as_str());
        prop_assert_eq!(compiled.matches(&text), reference_matches(&pattern, &text),
            "{:?} vs {:?}", pattern, text);
    }

    #[test]
    fn an_escaped_string_matches_itself_only(s in text(), other in text()) {
        let p = Pattern::new(&escape(&s));
        prop_assert!(p.matches(&s), "{:?}", s);
        prop_assert_eq!(p.matches(&other), other == s);
        prop_assert!(Pattern::new("*").matches(&s));
    }
}

#[test]
fn wildcard_corpus() {
    for (name, input) in text_corpus("wildcard") {
        // Line 1 is the pattern, the rest is the text.
        let (pattern, text) = input.split_once('\n').unwrap_or((&input, ""));
        let got = Pattern::new(pattern).matches(text);
        assert_eq!(got, reference_matches(pattern, text), "{name}");
        if let Expect::Match(want) = expect(&name) {
            assert_eq!(got, want, "{name}: {pattern:?} vs {text:?}");
        }
    }
}

#[test]
fn wildcard_worst_case_is_quadratic_not_exponential() {
    // a*a*a*…b against aaaa…: a backtracking matcher without memory would take forever.
    let pattern = "a*".repeat(2000) + "b";
    let text = "a".repeat(4000);
    let started = std::time::Instant::now();
    assert!(!Pattern::new(&pattern).matches(&text));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

// ------------------------------------------------------------------------------------------------
// IpRanges::parse: never panics on any bytes; what it accepts renders again and parses to the same
// document; every generated document round-trips: parse(to_json(doc)) == doc.

fn check_ip_ranges_invariants(bytes: &[u8]) -> bool {
    match IpRanges::parse(bytes) {
        Ok(doc) => {
            assert!(doc.sync_token <= MAX_SYNC_TOKEN);
            assert_eq!(IpRanges::parse(&doc.to_json()), Ok(doc.clone()));
            let text = doc.to_text();
            assert_eq!(text.lines().count(), doc.prefix_count());
            true
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            false
        }
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    (any_net(), text(), text(), text()).prop_map(|(prefix, region, service, border)| Entry {
        prefix,
        region,
        service,
        network_border_group: border,
    })
}

fn document() -> impl Strategy<Value = IpRanges> {
    (
        prop_oneof![0..=MAX_SYNC_TOKEN, Just(MAX_SYNC_TOKEN), Just(0)],
        prop::collection::btree_set(entry(), 0..6),
    )
        .prop_map(|(sync_token, entries)| IpRanges {
            sync_token,
            entries,
        })
}

/// A JSON value of a random type, for fields that expect something else.
fn json_scalar() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n.to_string())),
        Just(json!("18446744073709551616")),
        Just(json!("99999999999999999999")),
        Just(json!("253402300800")),
        any::<f64>().prop_map(|f| json!(f)),
        cidr_like().prop_map(|s| json!(s)),
        text().prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Documents of roughly the right shape with wrong types, wrong families and odd tokens.
fn document_like() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::json;
    let prefix = |field: &'static str| {
        (
            json_scalar(),
            json_scalar(),
            prop::option::of(json_scalar()),
            any::<bool>(),
        )
            .prop_map(move |(p, r, extra, drop_region)| {
                let mut o = json!({field: p, "service": "EGRESS", "network_border_group": "x"});
                if !drop_region {
                    o["region"] = r;
                }
                if let Some(extra) = extra {
                    o["extra"] = extra;
                }
                o
            })
    };
    (
        json_scalar(),
        prop::collection::vec(prefix("ip_prefix"), 0..4),
        prop::collection::vec(prefix("ipv6_prefix"), 0..4),
        any::<bool>(),
    )
        .prop_map(|(token, v4, v6, swap)| {
            let (a, b) = if swap { (v6, v4) } else { (v4, v6) };
            json!({"syncToken": token, "createDate": "x", "prefixes": a, "ipv6_prefixes": b})
                .to_string()
                .into_bytes()
        })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn ip_ranges_round_trip(doc in document()) {
        let json = doc.to_json();
        prop_assert_eq!(IpRanges::parse(&json), Ok(doc.clone()));
        prop_assert!(json.ends_with(b"}\n"), "no final newline");
    }

    #[test]
    fn ip_ranges_parse_never_panics(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            document_like(),
        ]
    ) {
        check_ip_ranges_invariants(&bytes);
    }

    #[test]
    fn ip_ranges_rendering_never_panics(token in any::<u64>(), doc in document()) {
        // Documents built in memory may carry any token; rendering must still not panic.
        let doc = IpRanges { sync_token: token, ..doc };
        let _ = doc.to_json();
        let _ = allowlist_core::document::create_date(token);
    }
}

#[test]
fn ip_ranges_corpus() {
    for (name, bytes) in corpus("ip_ranges") {
        let ok = check_ip_ranges_invariants(&bytes);
        match expect(&name) {
            Expect::Ok => assert!(ok, "{name}: {:?}", IpRanges::parse(&bytes)),
            Expect::Err => assert!(!ok, "{name} parsed"),
            _ => {}
        }
    }
}

#[test]
fn generated_entries_cover_both_families() {
    // A guard on the generator itself: both lists of the document get exercised.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut families = BTreeSet::new();
    for _ in 0..200 {
        let net = any_net().new_tree(&mut runner).unwrap().current();
        families.insert(matches!(net, IpNet::V4(_)));
    }
    assert_eq!(families.len(), 2);
}
