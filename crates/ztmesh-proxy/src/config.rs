//! Reading configuration: one small [`Env`] trait (the process environment in
//! production, a map in tests) and parsers for Linkerd's value formats.

use std::collections::HashMap;
use std::time::Duration;

/// Where settings come from.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
    /// Every variable name (to warn about unknown Linkerd settings).
    fn keys(&self) -> Vec<String>;
}

/// The process environment.
pub struct OsEnv;

impl Env for OsEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    fn keys(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }

    fn keys(&self) -> Vec<String> {
        HashMap::keys(self).cloned().collect()
    }
}

/// Everything wrong with a configuration, reported at once.
#[derive(Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    pub missing: Vec<&'static str>,
    pub invalid: Vec<(&'static str, String)>,
}

impl ConfigError {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing required settings: {}",
                self.missing.join(", ")
            ));
        }
        for (key, reason) in &self.invalid {
            parts.push(format!("{key}: {reason}"));
        }
        parts.join("; ")
    }
}

/// A reader that collects every problem instead of stopping at the first.
pub(crate) struct Settings<'a> {
    env: &'a dyn Env,
    errors: ConfigError,
}

impl<'a> Settings<'a> {
    pub(crate) fn new(env: &'a dyn Env) -> Self {
        Self {
            env,
            errors: ConfigError::default(),
        }
    }

    /// A non-empty value, or `None` when unset or empty.
    pub(crate) fn optional(&self, key: &'static str) -> Option<String> {
        self.env.get(key).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn required(&mut self, key: &'static str) -> Option<String> {
        let value = self.optional(key);
        if value.is_none() {
            self.errors.missing.push(key);
        }
        value
    }

    pub(crate) fn duration(&mut self, key: &'static str, default: Duration) -> Duration {
        match self.optional(key) {
            None => default,
            Some(v) => match parse_duration(&v) {
                Ok(d) => d,
                Err(e) => {
                    self.invalid(key, e.to_string());
                    default
                }
            },
        }
    }

    pub(crate) fn invalid(&mut self, key: &'static str, reason: impl Into<String>) {
        self.errors.invalid.push((key, reason.into()));
    }

    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// Why a value is not a duration; it names the value and humantime's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{value:?} is not a duration (e.g. 500ms, 10s, 5m, 24h, 1h30m): {reason}")]
pub struct DurationError {
    value: String,
    reason: humantime::DurationError,
}

impl DurationError {
    /// Why humantime refused it.
    pub fn reason(&self) -> &humantime::DurationError {
        &self.reason
    }
}

/// Parses durations with `humantime`: Linkerd's forms (`500ms`, `10s`, `5m`,
/// `24h`, `7d`) and compound ones (`1h30m`); a bare number is seconds, as
/// linkerd2-proxy reads it.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(secs) = s.parse::<u64>()
    {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|reason| DurationError {
        value: s.into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("10s", Some(10_000)),
            ("10", Some(10_000)),
            ("5m", Some(300_000)),
            ("24h", Some(86_400_000)),
            ("8760h", Some(31_536_000_000)),
            ("2d", Some(172_800_000)),
            ("1h30m", Some(5_400_000)),
            ("1m30s", Some(90_000)),
            (" 3s ", Some(3_000)),
            ("", None),
            ("s", None),
            ("1.5s", Some(1_500)),
            ("-1s", None),
            ("10parsecs", None),
            ("99999999999999999999s", None),
        ];
        for (input, ms) in cases {
            let got = parse_duration(input);
            assert_eq!(
                got.as_ref().ok().map(|d| d.as_millis() as u64),
                *ms,
                "{input:?}: {got:?}"
            );
            if let Err(e) = got {
                let e = e.to_string();
                assert!(e.contains(input.trim()) || input.trim().is_empty(), "{e}");
            }
        }
    }

    #[test]
    fn settings_collect_every_problem() {
        let env: HashMap<String, String> = [("A", "x"), ("EMPTY", " "), ("D", "soon")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Settings::new(&env);
        assert_eq!(s.required("A").as_deref(), Some("x"));
        assert_eq!(s.required("EMPTY"), None);
        assert_eq!(s.required("MISSING"), None);
        assert_eq!(
            s.duration("D", Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        let err = s.finish().unwrap_err();
        assert_eq!(err.missing, vec!["EMPTY", "MISSING"]);
        assert_eq!(
            err.to_string(),
            "missing required settings: EMPTY, MISSING; D: \"soon\" is not a duration (e.g. 500ms, 10s, 5m, 24h, 1h30m): expected number at 0"
        );
    }
}
