//! `lookup`: times `allowlist_core::egress::lookup` across regions (used by `bench/fanout.py`)
//! and accounts (`bench/estate.py`).
//!
//! ```text
//! cargo run --release --example lookup -p allowlist-core -- \
//!     --regions us-west-2,eu-central-1 --tag Name='*proxy*' [--tag K=V ...] [--repeat 5] [--warmup 0] \
//!     [--assume-role ARN ...]
//! ```
//!
//! With `--assume-role`, the accounts of those roles are looked in instead of the caller's own
//! (one AssumeRole per role for the whole process).
//!
//! Loads `Aws` once (endpoint from `AWS_ENDPOINT_URL`, region and credentials from the usual AWS
//! environment), then runs the same lookup `--warmup` + `--repeat` times, one after another, on a
//! two-worker tokio runtime like the provider's. Each run prints one JSON line on stdout:
//!
//! ```text
//! {"run":0,"warmup":false,"regions":3,"wall_ms":231.412,"addresses":3,"cidrs":3}
//! ```
//!
//! `wall_ms` is the time of the `lookup` call alone (client construction for a region happens
//! inside the first call that uses it, so a process's first run is "cold"). A failed run prints
//! `{"run":N,"warmup":..,"regions":..,"wall_ms":..,"error":"..."}` and the exit code is 1.
#![allow(clippy::print_stdout)]

use allowlist_core::accounts::{Accounts, AssumeRole};
use allowlist_core::egress::{lookup, EgressQuery};
use allowlist_core::{Aws, AwsSettings};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str =
    "usage: lookup --regions a,b,c [--tag KEY=PATTERN ...] [--repeat N] [--warmup N] [--assume-role ARN ...]";

#[derive(Debug)]
struct Args {
    regions: Vec<String>,
    tags: BTreeMap<String, String>,
    repeat: usize,
    warmup: usize,
    roles: Vec<String>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        regions: Vec::new(),
        tags: BTreeMap::new(),
        repeat: 1,
        warmup: 0,
        roles: Vec::new(),
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--regions" => {
                args.regions = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--tag" => {
                let tag = value()?;
                let (key, pattern) = tag
                    .split_once('=')
                    .ok_or_else(|| format!("--tag {tag:?}: expected KEY=PATTERN"))?;
                args.tags.insert(key.to_owned(), pattern.to_owned());
            }
            "--repeat" => {
                args.repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?;
            }
            "--warmup" => {
                args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?;
            }
            "--assume-role" => args.roles.push(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.regions.is_empty() {
        return Err(format!("--regions is required\n{USAGE}"));
    }
    Ok(args)
}

/// A JSON string literal (the std library has no JSON encoder and this example adds no deps).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let settings = AwsSettings {
        endpoint_url: std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        ..AwsSettings::default()
    };
    let aws = Aws::load(&settings).await;
    let query = EgressQuery {
        regions: args.regions.clone(),
        tags: args.tags.clone(),
        accounts: Accounts {
            current: args.roles.is_empty(),
            roles: args.roles.iter().map(AssumeRole::new).collect(),
            organization: None,
        },
        ..EgressQuery::default()
    };

    let mut failed = false;
    for run in 0..args.warmup + args.repeat {
        let warmup = run < args.warmup;
        let start = Instant::now();
        let result = lookup(&aws, &query).await;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let head = format!(
            "{{\"run\":{},\"warmup\":{warmup},\"regions\":{},\"wall_ms\":{wall_ms:.3}",
            if warmup { run } else { run - args.warmup },
            args.regions.len()
        );
        match result {
            Ok(found) => println!(
                "{head},\"addresses\":{},\"cidrs\":{}}}",
                found.addresses.len(),
                found.cidrs().len()
            ),
            Err(err) => {
                failed = true;
                println!("{head},\"error\":{}}}", json_string(&err.to_string()));
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
