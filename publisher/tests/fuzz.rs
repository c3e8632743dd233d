//! Property-based fuzzing of the publisher's command line: `Cli::try_parse_from` on arbitrary
//! argument vectors (flags, values, stray tokens, non-UTF-8 bytes) must return Ok or a clap error,
//! never panic; what parses must also survive the checks after clap (`options()`), and a clap
//! error must render and exit with 0 (help, version) or 2 (usage).
//! The committed corpus (`fuzz/corpus/publisher_args/`, one argument per line) is replayed too.
//!
//! The default case count keeps this file to a few seconds in a debug build; set `PROPTEST_CASES`
//! for a long run (see fuzz/README.md).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use allowlist_publisher::cli::{Cli, Command};
use clap::Parser;
use proptest::prelude::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[path = "../../fuzz/harness.rs"]
mod harness;
use harness::{config, corpus, expect, Expect};

/// What happened to one argument vector.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Parsed, and the checked options are fine too.
    Accepted,
    /// A clap error of usage (exit code 2) or a usage error from the checks after clap.
    Refused,
    /// `--help` or `--version`: clap's "error" that exits 0.
    Informational,
}

/// Parses `args` (after the program name) and checks everything that must hold.
fn check(args: Vec<OsString>) -> Outcome {
    let mut argv = vec![OsString::from("allowlist-publisher")];
    argv.extend(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => {
            assert!(!cli.global.request_timeout.is_zero());
            let checked = match &cli.command {
                Command::Publish(p) => p.options().map(|_| ()),
                Command::Sweep(s) => s.options().map(|_| ()),
                Command::Run(r) => {
                    // `run` logs it so (tokio caps the ticker's period itself).
                    assert!(!humantime::format_duration(r.every).to_string().is_empty());
                    r.publish.options().and(r.sweep_options()).map(|_| ())
                }
            };
            match checked {
                Ok(()) => Outcome::Accepted,
                Err(e) => {
                    assert!(e.flag.starts_with("--") && !e.message.is_empty());
                    Outcome::Refused
                }
            }
        }
        Err(e) => {
            // Rendering the message must not panic either.
            let message = e.to_string();
            assert!(!message.is_empty());
            match e.exit_code() {
                0 => Outcome::Informational,
                2 => Outcome::Refused,
                code => panic!("exit code {code} for {message}"),
            }
        }
    }
}

const FLAGS: &[&str] = &[
    "publish",
    "sweep",
    "run",
    "help",
    "--region",
    "--profile",
    "--endpoint-url",
    "--request-timeout",
    "--log-format",
    "--log-level",
    "--regions",
    "--tag",
    "--filter",
    "--bucket",
    "--key",
    "--text-key",
    "--cache-control",
    "--distribution-id",
    "--out",
    "--text-out",
    "--service",
    "--min-count",
    "--max-shrink",
    "--force",
    "--grace",
    "--dry-run",
    "--every",
    "--help",
    "--version",
    "-h",
    "-V",
    "--",
    "-",
];

const VALUES: &[&str] = &[
    "",
    " ",
    "b",
    "ip-ranges.json",
    "us-east-1",
    "us-east-1,eu-west-1",
    "all",
    "all,us-east-1",
    "US_EAST",
    "ús-east-1",
    "-1",
    "0",
    "1",
    "50",
    "100",
    "101",
    "150",
    "255",
    "256",
    "18446744073709551616",
    "0s",
    "1s",
    "500ms",
    "2m",
    "-5m",
    "99999999999999999h",
    "500000000000years",
    "584542046090years",
    "100years",
    "Name=*proxy*",
    "Name=",
    "=x",
    "novalue",
    "a=b,c=d,e",
    "vpc-id=vpc-1,vpc-2",
    "vpc-id=",
    "tag:=x",
    "tag:Name=a,,b",
    "state=available",
    "json",
    "human",
    "xml",
    "trace",
    "E1",
    "--bucket=b",
    "--max-shrink=-5",
    "--every=0s",
    "--regions=",
    "--tag==",
];

fn arg() -> impl Strategy<Value = OsString> {
    prop_oneof![
        4 => prop::sample::select(FLAGS).prop_map(OsString::from),
        4 => prop::sample::select(VALUES).prop_map(OsString::from),
        1 => any::<String>().prop_map(OsString::from),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(OsString::from_vec),
    ]
}

/// Argument vectors that start like a real command more often than not.
fn argv() -> impl Strategy<Value = Vec<OsString>> {
    let command = prop::sample::select(vec!["publish", "sweep", "run", ""]);
    (command, prop::collection::vec(arg(), 0..10)).prop_map(|(c, mut rest)| {
        if !c.is_empty() {
            rest.insert(0, OsString::from(c));
        }
        rest
    })
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn flag_parsing_never_panics(args in argv()) {
        check(args);
    }

    #[test]
    fn every_flag_with_any_value_is_accepted_or_refused_cleanly(
        command in prop::sample::select(vec!["publish", "sweep", "run"]),
        flag in prop::sample::select(FLAGS),
        value in prop_oneof![prop::sample::select(VALUES).prop_map(str::to_owned), any::<String>()],
    ) {
        let args = [command, "--bucket", "b", flag, &value];
        check(args.iter().map(OsString::from).collect());
    }
}

#[test]
fn publisher_args_corpus() {
    for (name, bytes) in corpus("publisher_args") {
        // One argument per line; a file that ends in a newline has no extra empty argument.
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let args: Vec<OsString> = bytes
            .split(|b| *b == b'\n')
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        let outcome = check(args);
        let want = match expect(&name) {
            Expect::Ok => Some(Outcome::Accepted),
            Expect::Err => Some(Outcome::Refused),
            Expect::Info => Some(Outcome::Informational),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(outcome, want, "{name}");
        }
    }
}
