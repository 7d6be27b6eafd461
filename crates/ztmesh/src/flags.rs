//! Parsers of command-line flag values shared by several subcommands. A
//! leaf: subcommands use it, it uses none of them.

use std::time::Duration;

/// A duration flag that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not a duration (e.g. 500ms, 10s, 1h30m, 7d): {reason}")]
pub(crate) struct DurationFlagError {
    input: String,
    reason: humantime::DurationError,
}

/// Parses a duration flag as the proxy parses its own settings
/// ([`ztmesh_proxy::config::parse_duration`], `humantime`): `500ms`, `10s`,
/// `5m`, `1h30m`, `24h`, `7d`; a bare number is seconds.
pub(crate) fn duration(s: &str) -> Result<Duration, DurationFlagError> {
    ztmesh_proxy::config::parse_duration(s).map_err(|e| DurationFlagError {
        input: s.trim().into(),
        reason: e.reason().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        let ok: &[(&str, Duration)] = &[
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("10", Duration::from_secs(10)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("24h", Duration::from_secs(86_400)),
            ("8760h", Duration::from_secs(8760 * 3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("1.5s", Duration::from_millis(1500)),
            (" 2s ", Duration::from_secs(2)),
        ];
        for (s, want) in ok {
            assert_eq!(duration(s).unwrap_or_else(|e| panic!("{s}: {e}")), *want);
        }
        for bad in ["", "soon", "-1s", "10x", "s", "1h30"] {
            let e = duration(bad).expect_err(bad).to_string();
            assert!(
                e.starts_with(&format!(
                    "{bad:?} is not a duration (e.g. 500ms, 10s, 1h30m, 7d): "
                )),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            duration("10x").unwrap_err().to_string(),
            "\"10x\" is not a duration (e.g. 500ms, 10s, 1h30m, 7d): unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)"
        );
    }
}
