//! Transport metrics, named and labelled as linkerd2-proxy's, `direction`
//! first: `tcp_open_total`, `tcp_close_total`, `tcp_open_connections`,
//! `tcp_read_bytes_total`, `tcp_write_bytes_total`, with `tls="true"` and
//! `client_id` (inbound) / `server_id` (outbound), or `tls="no_identity"`
//! with `no_tls_reason`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One label set's counters.
#[derive(Debug, Default)]
pub struct TcpCounters {
    open: AtomicU64,
    close: AtomicU64,
    read: AtomicU64,
    write: AtomicU64,
}

/// The peer's TLS status, as a label set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsLabel {
    Identified {
        client_id: String,
    },
    /// Outbound: the verified identity of the server.
    ServerIdentified {
        server_id: String,
    },
    NoIdentity {
        reason: &'static str,
    },
}

#[derive(Debug, Default)]
pub struct TcpMetrics {
    by_labels: Mutex<BTreeMap<String, Arc<TcpCounters>>>,
}

impl TcpMetrics {
    /// The counters of one connection's label set; records the open.
    pub fn open(
        &self,
        direction: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
    ) -> Arc<TcpCounters> {
        let tls = tls_labels(tls);
        let peer = if direction == "inbound" { "src" } else { "dst" };
        let labels =
            format!("direction=\"{direction}\",peer=\"{peer}\",target_addr=\"{target}\",{tls}");
        let counters = self
            .by_labels
            .lock()
            .expect("metrics lock")
            .entry(labels)
            .or_default()
            .clone();
        counters.open.fetch_add(1, Ordering::Relaxed);
        counters
    }

    pub fn encode(&self, out: &mut String) {
        let map = self.by_labels.lock().expect("metrics lock");
        type Getter = fn(&TcpCounters) -> u64;
        let families: [(&str, &str, &str, Getter); 5] = [
            (
                "tcp_open_total",
                "counter",
                "Total count of opened connections",
                |c| c.open.load(Ordering::Relaxed),
            ),
            (
                "tcp_close_total",
                "counter",
                "Total count of closed connections",
                |c| c.close.load(Ordering::Relaxed),
            ),
            (
                "tcp_open_connections",
                "gauge",
                "Number of currently-open connections",
                |c| {
                    c.open
                        .load(Ordering::Relaxed)
                        .saturating_sub(c.close.load(Ordering::Relaxed))
                },
            ),
            (
                "tcp_read_bytes_total",
                "counter",
                "Total count of bytes read from peers",
                |c| c.read.load(Ordering::Relaxed),
            ),
            (
                "tcp_write_bytes_total",
                "counter",
                "Total count of bytes written to peers",
                |c| c.write.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} {kind}");
            for (labels, c) in map.iter() {
                let _ = writeln!(out, "{name}{{{labels}}} {}", get(c));
            }
        }
    }
}

impl TcpCounters {
    pub fn close(&self, read: u64, written: u64) {
        self.read.fetch_add(read, Ordering::Relaxed);
        self.write.fetch_add(written, Ordering::Relaxed);
        self.close.fetch_add(1, Ordering::Relaxed);
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Request metrics, as linkerd2-proxy names them: `request_total` and
/// `response_total` with `status_code` and `classification`.
///
/// Each label set has its own [`RequestStats`]; connections keep the one
/// they use in a [`StatsCache`], so the hot path is two atomic adds and a
/// short lock, with no formatting.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    by_labels: Mutex<BTreeMap<String, Arc<RequestStats>>>,
}

/// Linkerd's `response_latency_ms` bucket bounds, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 25] = [
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000, 5_000,
    10_000, 20_000, 30_000, 40_000, 50_000,
];

/// The counters of one label set.
#[derive(Debug, Default)]
pub struct RequestStats {
    requests: AtomicU64,
    /// By status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    /// Time to the response head: per bucket (not cumulative), then the
    /// sum in microseconds and the count.
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl RequestStats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A response, `latency` after its request arrived.
    pub fn response(&self, status: u16, latency: std::time::Duration) {
        *self
            .responses
            .lock()
            .expect("metrics lock")
            .entry(status)
            .or_default() += 1;
        let us = latency.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| us <= b * 1000)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl HttpMetrics {
    /// The stats of one label set (created on first use).
    pub fn stats(
        &self,
        direction: &str,
        authority: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
    ) -> Arc<RequestStats> {
        let labels = format!(
            "direction=\"{direction}\",authority=\"{}\",target_addr=\"{target}\",{}",
            escape(authority),
            tls_labels(tls)
        );
        self.by_labels
            .lock()
            .expect("metrics lock")
            .entry(labels)
            .or_default()
            .clone()
    }

    pub fn encode(&self, out: &mut String) {
        let by_labels = self.by_labels.lock().expect("metrics lock");
        let _ = writeln!(
            out,
            "# HELP request_total Total count of HTTP requests.\n# TYPE request_total counter"
        );
        for (labels, stats) in by_labels.iter() {
            let n = stats.requests.load(Ordering::Relaxed);
            let _ = writeln!(out, "request_total{{{labels}}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP response_latency_ms Elapsed times between a request's headers being received and its response stream completing.\n# TYPE response_latency_ms histogram"
        );
        for (labels, stats) in by_labels.iter() {
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
                cumulative += stats.latency[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "response_latency_ms_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += stats.latency[LATENCY_BUCKETS_MS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "response_latency_ms_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let sum_ms = stats.latency_sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let _ = writeln!(out, "response_latency_ms_sum{{{labels}}} {sum_ms}");
            let _ = writeln!(out, "response_latency_ms_count{{{labels}}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "# HELP response_total Total count of HTTP responses.\n# TYPE response_total counter"
        );
        for (labels, stats) in by_labels.iter() {
            for (status, n) in stats.responses.lock().expect("metrics lock").iter() {
                let classification = if *status >= 500 { "failure" } else { "success" };
                let _ = writeln!(
                    out,
                    "response_total{{{labels},status_code=\"{status}\",classification=\"{classification}\"}} {n}"
                );
            }
        }
    }
}

/// One connection's most recent label set and its stats: requests on a
/// connection nearly always share authority and target.
#[derive(Default)]
pub struct StatsCache {
    last: Mutex<Option<(String, std::net::SocketAddr, Arc<RequestStats>)>>,
}

impl StatsCache {
    pub fn get(
        &self,
        metrics: &HttpMetrics,
        direction: &str,
        authority: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
    ) -> Arc<RequestStats> {
        let mut last = self.last.lock().expect("stats cache lock");
        if let Some((a, t, stats)) = last.as_ref()
            && a == authority
            && *t == target
        {
            return stats.clone();
        }
        let stats = metrics.stats(direction, authority, target, tls);
        *last = Some((authority.to_string(), target, stats.clone()));
        stats
    }
}

pub fn tls_labels(tls: &TlsLabel) -> String {
    match tls {
        TlsLabel::Identified { client_id } => {
            format!("tls=\"true\",client_id=\"{}\"", escape(client_id))
        }
        TlsLabel::ServerIdentified { server_id } => {
            format!("tls=\"true\",server_id=\"{}\"", escape(server_id))
        }
        TlsLabel::NoIdentity { reason } => {
            format!("tls=\"no_identity\",no_tls_reason=\"{reason}\"")
        }
    }
}
