//! Logs on stderr: human lines by default, one JSON object per line with `--log-format json`
//! (CloudWatch). Our crates log at the chosen level; dependencies (the AWS SDK, HTTP, TLS) at most
//! at INFO and by default only warnings, so request signatures, headers and credentials never
//! reach the log. The handler itself logs principals, never tokens or keys.

use crate::cli::{LogFormat, LogLevel};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat, level: LogLevel) {
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
        .with_target("allowlist_knock", ours)
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
