//! Durations as people write them (`90m`, `24h`, `1h30m`, `7days`): the one parser, the one cap
//! and the one compact format, shared by Terraform attributes (`ttl`, `max_ttl`,
//! `request_timeout`) and the publisher's flags (`--every`, `--grace`, `--request-timeout`).
//!
//! The cap keeps every accepted duration addable to any instant up to the year 9000 and still
//! writable as RFC 3339 (past the year 9999, writing an expiry crashed the provider once).

use std::time::Duration;

/// The longest duration accepted anywhere: 100 (Julian) years.
pub const MAX: Duration = Duration::from_secs(100 * 31_557_600);

/// Why a text is not an acceptable duration. The messages are sentences for a human; the caller
/// says which attribute or flag the value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("{value:?} is not a duration: write a whole number and a unit (s, m, h, d), e.g. \"90m\", \"24h\", \"7d\" or \"1h30m\".")]
    Malformed { value: String },
    /// Longer than [`MAX`].
    #[error("{value:?} is longer than 100 years, the longest duration accepted.")]
    TooLong { value: String },
    /// Zero where only a positive duration makes sense.
    #[error("The duration must be greater than zero.")]
    Zero,
}

/// Parses a duration of zero or more, at most [`MAX`].
pub fn parse(value: &str) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(value).map_err(|_| DurationError::Malformed {
        value: value.to_owned(),
    })?;
    if d > MAX {
        return Err(DurationError::TooLong {
            value: value.to_owned(),
        });
    }
    Ok(d)
}

/// Parses a duration greater than zero and at most [`MAX`].
pub fn parse_positive(value: &str) -> Result<Duration, DurationError> {
    match parse(value)? {
        d if d.is_zero() => Err(DurationError::Zero),
        d => Ok(d),
    }
}

/// Whether two texts name the same duration (`24h` and `1day`); false when either is malformed.
pub fn same(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Formats a duration in whole seconds in the largest unit that writes it exactly, hours at most
/// (`36h`, `90m`, `45s`): one number, one unit, as people write a ttl. Zero is `0s`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_people_write() {
        assert_eq!(parse("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("100years"), Ok(MAX));
    }

    #[test]
    fn refuses_zero_too_long_and_garbage_with_a_sentence() {
        assert_eq!(parse_positive("0s"), Err(DurationError::Zero));
        assert_eq!(
            parse("101years"),
            Err(DurationError::TooLong {
                value: "101years".into()
            })
        );
        let err = parse("soon").expect_err("not a duration").to_string();
        assert!(err.starts_with("\"soon\" is not a duration: "), "{err}");
        assert!(err.contains("\"90m\"") && err.contains("\"7d\""), "{err}");
        // What is accepted, not the parser's internals.
        let err = parse("-1h").expect_err("negative").to_string();
        assert!(!err.contains("expected"), "{err}");
    }

    #[test]
    fn same_compares_meaning_not_spelling() {
        assert!(same("24h", "1day"));
        assert!(!same("24h", "12h"));
        assert!(!same("soon", "soon"));
    }

    #[test]
    fn formats_in_one_compact_unit() {
        assert_eq!(format(Duration::from_millis(5_400_900)), "90m");
        assert_eq!(format(Duration::from_secs(86_400)), "24h");
        assert_eq!(format(Duration::from_secs(129_600)), "36h");
        assert_eq!(format(Duration::from_secs(3_601)), "3601s");
        assert_eq!(format(Duration::ZERO), "0s");
        // What it writes reads back as the same duration.
        for secs in [1, 59, 60, 3_599, 3_600, 5_400, 86_400, 3_153_600_000] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)), Ok(d), "{secs}");
        }
    }
}
