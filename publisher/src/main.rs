//! `allowlist-publisher`: parses the command line, sets up logging and the clock, and hands over
//! to [`app::execute`]. Exit codes: 0 success, 1 error, 2 bad usage, 3 refused by a guard.

use allowlist_core::clock::SystemClock;
use allowlist_publisher::{app, cli::Cli};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap prints help/version (exit 0) or the usage error naming the flag (exit 2) itself.
    let cli = Cli::parse();
    allowlist_core::logging::init(
        "allowlist_publisher",
        cli.global.log_format,
        cli.global.log_level,
    );
    let clock = match SystemClock::from_env() {
        Ok(clock) => clock,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(app::EXIT_USAGE);
        }
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
