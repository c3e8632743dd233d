//! The fuzz targets' shared harness, included by `core/tests/fuzz.rs`, `provider/tests/fuzz.rs`
//! and `publisher/tests/fuzz.rs` (`#[path = "../../fuzz/harness.rs"] mod harness;`): case
//! counts, no failure files, the committed corpus and what its file names promise.
// Each crate's fuzz tests use a different subset of this.
#![allow(dead_code)]

use proptest::test_runner::Config;
use std::path::PathBuf;

/// `cases` unless `PROPTEST_CASES` asks for more (or fewer). Failures are not persisted: a real
/// regression is added to the corpus by hand, named for what it was.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// What a corpus file's name promises about its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `ok_…`: accepted.
    Ok,
    /// `err_…`: refused.
    Err,
    /// `world_…` (CIDRs only): accepted only with allow_world.
    World,
    /// `match_…` / `nomatch_…` (wildcards only).
    Match(bool),
    /// `info_…` (publisher arguments only): help or version.
    Info,
    /// Anything else (`any_…`): only "no panic".
    Any,
}

pub fn expect(name: &str) -> Expect {
    // A fixed crash is kept as `regression_<expectation>_<what it was>`.
    let name = name.strip_prefix("regression_").unwrap_or(name);
    match name.split('_').next() {
        Some("ok") => Expect::Ok,
        Some("err") => Expect::Err,
        Some("world") => Expect::World,
        Some("match") => Expect::Match(true),
        Some("nomatch") => Expect::Match(false),
        Some("info") => Expect::Info,
        _ => Expect::Any,
    }
}

/// Asserts what an `ok_`/`err_` name promises about whether its input was accepted.
pub fn check_accepted(name: &str, accepted: bool) {
    match expect(name) {
        Expect::Ok => assert!(accepted, "{name} was refused"),
        Expect::Err => assert!(!accepted, "{name} was accepted"),
        _ => {}
    }
}

pub fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Every file of `fuzz/corpus/<target>/`, sorted, with its name and bytes.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_root().join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("corpus file"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}
