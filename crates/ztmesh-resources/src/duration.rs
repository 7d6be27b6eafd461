//! Durations as Kubernetes resources write them (Go's `time.ParseDuration`
//! and the Gateway API's subset): `10s`, `1m30s`, `500ms`, `1h`.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 10s, 1m30s)");
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let term = Duration::try_from_secs_f64(number * secs).map_err(|_| bad())?;
        // Each term fits, their sum may not (`+=` would panic).
        total = total.checked_add(term).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("10s", Some(10_000)),
            ("5s", Some(5_000)),
            ("500ms", Some(500)),
            ("1m30s", Some(90_000)),
            ("1h", Some(3_600_000)),
            ("1.5s", Some(1_500)),
            ("", None),
            ("10", None),
            ("s", None),
            ("10x", None),
            ("-1s", None),
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
}
