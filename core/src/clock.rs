//! Time, injected: grant expiry and the sweep ask a [`Clock`], never the system directly, so tests
//! can move time forward between real Terraform runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds of the last instant RFC 3339 can write, 9999-12-31T23:59:59Z: [`format_instant`]
/// panics past it.
pub const LATEST_INSTANT_SECS: u64 = 253_402_300_799;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system clock, optionally shifted by a fixed offset (for tests that need "25 hours later").
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    offset: Duration,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock::default()
    }

    /// A clock running `offset` ahead of the system clock.
    pub fn ahead_by(offset: Duration) -> Self {
        SystemClock { offset }
    }

    /// The system clock, run ahead by [`OFFSET_ENV`] when it is set (a testing aid, logged as a
    /// warning). Err says why the variable's value is not a duration.
    pub fn from_env() -> Result<Self, String> {
        let Ok(offset) = std::env::var(OFFSET_ENV) else {
            return Ok(SystemClock::new());
        };
        let d = crate::duration::parse(&offset).map_err(|err| format!("{OFFSET_ENV}: {err}"))?;
        tracing::warn!(%offset, "{OFFSET_ENV} is set: the clock runs ahead (testing only)");
        Ok(SystemClock::ahead_by(d))
    }
}

/// Testing aid shared by the provider and the publisher: runs their clock ahead by this duration
/// (e.g. `25h`), so tests can see grants expire without waiting. Never needed in normal use.
pub const OFFSET_ENV: &str = "ALLOWLIST_CLOCK_OFFSET";

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset
    }
}

/// A clock that always says the same instant (unit tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Formats an instant the way tags and attributes carry it: RFC 3339, UTC, whole seconds.
pub fn format_instant(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `t + d`, when [`format_instant`] can write the result (1970 to [`LATEST_INSTANT_SECS`]).
pub fn checked_add(t: SystemTime, d: Duration) -> Option<SystemTime> {
    t.checked_add(d).filter(|r| {
        r.duration_since(UNIX_EPOCH)
            .is_ok_and(|s| s.as_secs() <= LATEST_INSTANT_SECS)
    })
}

/// Parses an RFC 3339 instant (as written by [`format_instant`]).
pub fn parse_instant(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_in_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_726_400);
        assert_eq!(format_instant(t), "2025-11-21T12:00:00Z");
        assert_eq!(parse_instant("2025-11-21T12:00:00Z"), Some(t));
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn offset_clock_runs_ahead() {
        let ahead = SystemClock::ahead_by(Duration::from_secs(3600)).now();
        let now = SystemClock::new().now();
        let diff = ahead.duration_since(now).unwrap_or_default();
        assert!(diff > Duration::from_secs(3590) && diff <= Duration::from_secs(3600));
    }
}
