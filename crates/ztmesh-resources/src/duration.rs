//! Durations as Kubernetes resources write them (Go's `time.ParseDuration`
//! and the Gateway API's subset): `10s`, `1m30s`, `1h30m`, `500ms`, `1.5s`.
//!
//! The value is `humantime`'s; the syntax is Go's: units `h`, `m`, `s`,
//! `ms`, `us` / `µs`, `ns`, terms written together. What humantime accepts
//! beyond that (`1d`, `2 weeks`, `1h 30m`) is refused, because Linkerd
//! would refuse the same manifest.

use std::time::Duration;

/// Go's duration units.
const UNITS: [&str; 7] = ["h", "m", "s", "ms", "us", "µs", "ns"];

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{input:?} is not a duration (e.g. 500ms, 10s, 1h30m): {reason}")]
    Syntax { input: String, reason: String },
    #[error(
        "{input:?} is not a duration (e.g. 500ms, 10s, 1h30m): unit {unit:?} is not one of h, m, s, ms, us, ns"
    )]
    Unit { input: String, unit: String },
}

pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let syntax = |reason: &str| DurationError::Syntax {
        input: s.into(),
        reason: reason.into(),
    };
    if s.is_empty() {
        return Err(syntax("empty"));
    }
    if s.contains(char::is_whitespace) {
        return Err(syntax("no spaces between terms"));
    }
    for unit in s.split(|c: char| c.is_ascii_digit() || c == '.') {
        if !unit.is_empty() && !UNITS.contains(&unit) {
            return Err(DurationError::Unit {
                input: s.into(),
                unit: unit.into(),
            });
        }
    }
    humantime::parse_duration(s).map_err(|e| syntax(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::DurationError;

    #[test]
    fn table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("10s", Some(10_000)),
            ("5s", Some(5_000)),
            ("500ms", Some(500)),
            ("1m30s", Some(90_000)),
            ("1h30m", Some(5_400_000)),
            ("1h", Some(3_600_000)),
            ("1.5s", Some(1_500)),
            ("0s", Some(0)),
            ("1500us", Some(1)),
            ("", None),
            ("10", None),
            ("s", None),
            ("10x", None),
            ("-1s", None),
            ("1h 30m", None),
            ("1d", None),
            ("2weeks", None),
            // Each term fits, the sum does not: this panicked.
            ("5000000000000000h5000000000000000h", None),
        ];
        for (s, want) in cases {
            assert_eq!(
                super::parse(s).ok().map(|d| d.as_millis() as u64),
                *want,
                "{s}"
            );
        }
    }

    #[test]
    fn errors_name_the_input_and_the_reason() {
        assert_eq!(
            super::parse("1d").unwrap_err(),
            DurationError::Unit {
                input: "1d".into(),
                unit: "d".into()
            }
        );
        assert_eq!(
            super::parse("1d").unwrap_err().to_string(),
            "\"1d\" is not a duration (e.g. 500ms, 10s, 1h30m): unit \"d\" is not one of h, m, s, ms, us, ns"
        );
        let soon = super::parse("soon").unwrap_err().to_string();
        assert!(soon.starts_with("\"soon\" is not a duration"), "{soon}");
        let bare = super::parse("10").unwrap_err().to_string();
        assert!(
            bare.starts_with("\"10\" is not a duration (e.g. 500ms, 10s, 1h30m): "),
            "{bare}"
        );
    }
}
