//! `allowlist-publisher`: parses the command line, sets up logging and the clock, and hands over
//! to [`app::execute`]. Exit codes: 0 success, 1 error, 2 bad usage, 3 refused by a guard.

use allowlist_core::clock::SystemClock;
use allowlist_publisher::{app, cli::Cli, log};
use clap::Parser;
use std::process::ExitCode;

/// Testing aid, as in the provider: runs the clock ahead by this duration (e.g. `2h`), so tests
/// can see grants expire without waiting. Never needed in normal use.
const CLOCK_OFFSET_ENV: &str = "ALLOWLIST_CLOCK_OFFSET";

fn main() -> ExitCode {
    // clap prints help/version (exit 0) or the usage error naming the flag (exit 2) itself.
    let cli = Cli::parse();
    log::init(cli.global.log_format, cli.global.log_level);
    let clock = match std::env::var(CLOCK_OFFSET_ENV) {
        Ok(offset) => match humantime::parse_duration(&offset) {
            Ok(d) => {
                tracing::warn!(%offset, "{CLOCK_OFFSET_ENV} is set: the clock runs ahead (testing only)");
                SystemClock::ahead_by(d)
            }
            Err(err) => {
                eprintln!("error: {CLOCK_OFFSET_ENV}={offset:?} is not a duration: {err}");
                return ExitCode::from(app::EXIT_USAGE);
            }
        },
        Err(_) => SystemClock::new(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(app::EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(app::execute(&cli, &clock)))
}
