//! `allowlist-knock`: parses the command line (on AWS Lambda, with no arguments, the `lambda`
//! command with flags from the environment), sets up logging and the clock, and hands over to
//! [`app::execute`]. Exit codes: 0 success, 1 error, 2 bad usage.

use allowlist_core::clock::SystemClock;
use allowlist_knock::{app, cli::Cli, lambda};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let on_lambda = std::env::var_os(lambda::RUNTIME_API_ENV).is_some();
    let cli = if on_lambda && std::env::args_os().len() == 1 {
        Cli::parse_from(["allowlist-knock", "lambda"])
    } else {
        Cli::parse()
    };
    allowlist_core::logging::init(
        "allowlist_knock",
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
    // Lambda gives one vCPU or less per environment: one thread there.
    let mut builder = if on_lambda {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(app::EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(app::execute(&cli, Arc::new(clock))))
}
