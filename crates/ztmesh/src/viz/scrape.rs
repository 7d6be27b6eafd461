//! Prometheus text exposition: samples with their labels, and a proxy's
//! `/metrics` fetched ([`fetch`]).

use super::client::{GetError, get_text};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the exposition; comments and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.into(),
                labels: BTreeMap::new(),
                value: v.trim().split(' ').next()?.parse().ok()?,
            });
        }
    };
    // Labels: key="value" pairs, values with \" \\ \n escapes.
    let mut labels = BTreeMap::new();
    let bytes: Vec<char> = rest[1..].chars().collect();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == ',' || bytes[i] == ' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == '}' {
            i += 1;
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != '=' {
            i += 1;
        }
        let key: String = bytes[key_start..i].iter().collect();
        i += 1;
        if bytes.get(i) != Some(&'"') {
            return None;
        }
        i += 1;
        let mut value = String::new();
        while i < bytes.len() && bytes[i] != '"' {
            if bytes[i] == '\\' && i + 1 < bytes.len() {
                i += 1;
                value.push(match bytes[i] {
                    'n' => '\n',
                    c => c,
                });
            } else {
                value.push(bytes[i]);
            }
            i += 1;
        }
        i += 1;
        labels.insert(key.trim().to_string(), value);
    }
    let tail: String = bytes[i..].iter().collect();
    Some(Sample {
        name: name.to_string(),
        labels,
        value: tail.split_whitespace().next()?.parse().ok()?,
    })
}

/// GET http://addr/metrics, bounded in time.
pub async fn fetch(addr: std::net::SocketAddr, timeout: Duration) -> Result<String, GetError> {
    get_text(&addr.to_string(), "/metrics", timeout).await
}

/// A sample, for tests.
#[cfg(test)]
pub fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let text = "# HELP request_total Total.\n# TYPE request_total counter\nrequest_total{direction=\"inbound\",authority=\"a\\\"b,c\",tls=\"true\"} 12\nprocess_open_fds 9\nbroken{x=\"1\" \nresponse_latency_ms_bucket{le=\"+Inf\"} 3 1700000000\n";
        let s = parse(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].name, "request_total");
        assert_eq!(s[0].labels["authority"], "a\"b,c");
        assert_eq!(s[0].labels["tls"], "true");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].name, "process_open_fds");
        assert_eq!(s[1].value, 9.0);
        assert_eq!(s[2].labels["le"], "+Inf");
        assert_eq!(s[2].value, 3.0);
    }
}
