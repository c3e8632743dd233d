//! Logs as hclog JSON lines on stderr, the format Terraform's plugin client parses, so
//! `TF_LOG=debug` / `TF_LOG_PROVIDER=debug` show them with their levels and fields.
//!
//! Terraform filters by level itself; we pre-filter with the same variables to save work. Only the
//! targets the caller names as its own (crate-name prefixes) log at every level; everything else
//! (the AWS SDK, HTTP and TLS stacks) is capped at INFO, so request details with signed headers
//! never reach the log at any level.

use std::fmt::Write as _;
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Who logs: the provider's name, which prefixes each line's `@module` (`name.module.path`), and
/// the crate-name prefixes whose events are its own and may be logged at any level.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub name: &'static str,
    pub own_targets: &'static [&'static str],
}

/// Installs the logger, at the level Terraform would show for this provider.
pub fn init(source: Source) {
    let level = level_from_env(
        std::env::var("TF_LOG_PROVIDER").ok().as_deref(),
        std::env::var("TF_LOG").ok().as_deref(),
    );
    if let Some(max) = level {
        // A second init (tests) keeps the first logger.
        let _ = tracing_subscriber::registry()
            .with(HclogLayer { max, source })
            .try_init();
    }
}

/// The level Terraform shows provider logs at: `TF_LOG_PROVIDER` if set, else `TF_LOG`.
/// `None` means off. Unrecognised non-empty values mean TRACE, as in Terraform.
pub fn level_from_env(provider: Option<&str>, global: Option<&str>) -> Option<Level> {
    let value = provider
        .filter(|v| !v.is_empty())
        .or(global)?
        .trim()
        .to_ascii_uppercase();
    match value.as_str() {
        "" | "OFF" => None,
        "ERROR" => Some(Level::ERROR),
        "WARN" => Some(Level::WARN),
        "INFO" => Some(Level::INFO),
        "DEBUG" => Some(Level::DEBUG),
        _ => Some(Level::TRACE),
    }
}

struct HclogLayer {
    max: Level,
    source: Source,
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        let own = self
            .source
            .own_targets
            .iter()
            .any(|t| metadata.target().starts_with(t));
        let cap = if own {
            self.max
        } else {
            self.max.min(Level::INFO)
        };
        *metadata.level() <= cap
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let module = module(self.source.name, event.metadata().target());
        let line = render(event.metadata().level(), &module, |v| event.record(v));
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    }
}

/// One hclog JSON line (with its newline) for an event.
fn render(level: &Level, module: &str, record: impl FnOnce(&mut dyn Visit)) -> String {
    let mut fields = Fields::default();
    record(&mut fields);
    let mut obj = serde_json::Map::new();
    obj.insert("@level".into(), level.as_str().to_ascii_lowercase().into());
    obj.insert("@message".into(), fields.message.into());
    obj.insert("@module".into(), module.into());
    obj.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_micros(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    for (k, v) in fields.extra {
        obj.insert(k, v);
    }
    let mut line = serde_json::Value::Object(obj).to_string();
    line.push('\n');
    line
}

/// The `@module` of an event: with name `example`, target `my_crate::egress::lookup` gives
/// `example.egress.lookup` (the crate name dropped) and `my_crate` alone gives `example`.
fn module(name: &str, target: &str) -> String {
    let rest = target.split_once("::").map_or("", |(_, r)| r);
    if rest.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{}", rest.replace("::", "."))
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.extra.push((field.name().to_owned(), value.into()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.push((field.name().to_owned(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.push((field.name().to_owned(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.push((field.name().to_owned(), value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_follows_terraform_rules() {
        assert_eq!(level_from_env(None, None), None);
        assert_eq!(level_from_env(None, Some("OFF")), None);
        assert_eq!(level_from_env(None, Some("debug")), Some(Level::DEBUG));
        assert_eq!(
            level_from_env(Some("WARN"), Some("TRACE")),
            Some(Level::WARN)
        );
        assert_eq!(level_from_env(Some(""), Some("INFO")), Some(Level::INFO));
        assert_eq!(level_from_env(None, Some("JSON")), Some(Level::TRACE));
        assert_eq!(level_from_env(None, Some("verbose")), Some(Level::TRACE));
    }

    #[test]
    fn lines_are_hclog_json_with_microsecond_timestamps() {
        let module = module("example", "my_crate::egress");
        let line = render(&Level::WARN, &module, |_| {});
        assert!(line.ends_with('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed["@level"], "warn");
        assert_eq!(parsed["@module"], "example.egress");
        assert_eq!(super::module("example", "my_crate"), "example");
        let ts = parsed["@timestamp"].as_str().expect("timestamp");
        // 2026-11-21T12:03:21.730764Z: exactly six fractional digits, as go-plugin requires.
        let frac = ts.split('.').nth(1).expect("fraction");
        assert_eq!(frac.len(), 7, "{ts}");
        assert!(frac.ends_with('Z'));
    }
}
