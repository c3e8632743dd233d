//! Logging for the command-line binaries (the publisher, the knock service): human lines on
//! stderr by default, one JSON object per line with `--log-format json` (CloudWatch).
//!
//! The binary's crate and core log at the chosen level; dependencies (the AWS SDK, HTTP, TLS) at
//! most at INFO and by default only warnings, so request signatures, headers and credentials never
//! reach the log. (The provider logs to Terraform in its own format: `provider/src/tfplugin/log.rs`.)

use clap::ValueEnum;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// `--log-level`: the most detailed level shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Installs the global subscriber for the binary whose crate (its `tracing` target, e.g.
/// `allowlist_publisher`) is `binary`. Call once, before anything logs.
pub fn init(binary: &'static str, format: LogFormat, level: LogLevel) {
    let ours = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let dependencies = if level >= LogLevel::Debug {
        LevelFilter::INFO
    } else {
        ours.min(LevelFilter::WARN)
    };
    let filter = Targets::new()
        .with_default(dependencies)
        .with_target(binary, ours)
        .with_target("allowlist_core", ours);
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => registry.with(layer.with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init(),
    };
}
