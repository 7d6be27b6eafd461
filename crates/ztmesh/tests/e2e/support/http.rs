//! Plain HTTP for probes: a blocking GET of a proxy's admin port (or any
//! plaintext server), and counters read from a Prometheus exposition.

use std::io::{Read, Write};
use std::time::Duration;

/// `GET path` from `addr` (HTTP/1.1, `Connection: close`, 5 s timeouts);
/// the whole response, head and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The sum of the samples of `family` (exactly that name) whose label set
/// contains each of `labels` (e.g. `direction="inbound"`).
pub fn metric_sum(exposition: &str, family: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let (labels_part, value) = match rest.strip_prefix('{') {
                Some(r) => r.rsplit_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|want| labels_part.contains(want))
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// [`metric_sum`] of the proxy's admin port at `admin` (`IP:4191`); an
/// error if the scrape fails.
pub fn admin_metric(admin: &str, family: &str, labels: &[&str]) -> std::io::Result<f64> {
    let body = http_get(admin, "/metrics")?;
    Ok(metric_sum(&body, family, labels))
}

#[test]
fn metric_sum_adds_the_matching_samples_only() {
    let text = "# TYPE request_total counter\nrequest_total{direction=\"inbound\",a=\"1\"} 3\nrequest_total{direction=\"outbound\"} 5\nrequest_total{direction=\"inbound\",a=\"2\"} 4\nrequest_total_other{direction=\"inbound\"} 9\nup 1\n";
    for (family, labels, want) in [
        ("request_total", &["direction=\"inbound\""][..], 7.0),
        ("request_total", &[][..], 12.0),
        ("request_total", &["a=\"2\""][..], 4.0),
        ("up", &[][..], 1.0),
        ("missing", &[][..], 0.0),
    ] {
        assert_eq!(
            metric_sum(text, family, labels),
            want,
            "{family} {labels:?}"
        );
    }
}
