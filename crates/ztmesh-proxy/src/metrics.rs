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
    /// Closes that ended with an OS error, by errno name.
    close_errors: Mutex<BTreeMap<&'static str, u64>>,
}

/// The errno name linkerd2-proxy labels a failed connection with.
pub fn errno_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNRESET) => "ECONNRESET",
        Some(libc::EPIPE) => "EPIPE",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::ECONNABORTED) => "ECONNABORTED",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(_) => "EOTHER",
        None => match e.kind() {
            std::io::ErrorKind::ConnectionReset => "ECONNRESET",
            std::io::ErrorKind::BrokenPipe => "EPIPE",
            std::io::ErrorKind::TimedOut => "ETIMEDOUT",
            _ => "EOTHER",
        },
    }
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
    /// `policy` is "" or, inbound, the server's labels with a leading
    /// comma ([`server_labels`]).
    pub fn open(
        &self,
        direction: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
        policy: &str,
    ) -> Arc<TcpCounters> {
        let tls = tls_labels(tls);
        let peer = if direction == "inbound" { "src" } else { "dst" };
        let labels = format!(
            "direction=\"{direction}\",peer=\"{peer}\",target_addr=\"{target}\",{tls}{policy}"
        );
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
        let families: [(&str, &str, &str, Getter); 4] = [
            (
                "tcp_open_total",
                "counter",
                "Total count of opened connections",
                |c| c.open.load(Ordering::Relaxed),
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
        // Closes by errno: "" for a clean close, else the error's name.
        let _ = writeln!(
            out,
            "# HELP tcp_close_total Total count of closed connections.\n# TYPE tcp_close_total counter"
        );
        for (labels, c) in map.iter() {
            let errors = c.close_errors.lock().expect("metrics lock");
            let failed: u64 = errors.values().sum();
            let clean = c.close.load(Ordering::Relaxed).saturating_sub(failed);
            let _ = writeln!(out, "tcp_close_total{{{labels},errno=\"\"}} {clean}");
            for (errno, n) in errors.iter() {
                let _ = writeln!(out, "tcp_close_total{{{labels},errno=\"{errno}\"}} {n}");
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

    /// A close caused by an I/O error (counted with its errno).
    pub fn close_with_error(&self, read: u64, written: u64, error: &std::io::Error) {
        *self
            .close_errors
            .lock()
            .expect("metrics lock")
            .entry(errno_name(error))
            .or_default() += 1;
        self.close(read, written);
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
    /// By status code and, for gRPC, grpc-status.
    responses: Mutex<BTreeMap<(u16, Option<u32>), u64>>,
    /// Time to the response head: per bucket (not cumulative), then the
    /// sum in microseconds and the count.
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_us: AtomicU64,
    /// When a request last used this label set ([`now_ms`]).
    last_used_ms: AtomicU64,
}

/// Label sets kept at most (authorities come from clients' Host headers:
/// without a bound, a client could grow the proxy's memory at will).
pub const MAX_SERIES: usize = 10_000;
/// Label sets not used for this long are dropped from `/metrics`.
pub const IDLE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(600);

/// Milliseconds on `tokio::time`'s clock since the first call.
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl RequestStats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.last_used_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn idle(&self, now: u64) -> bool {
        now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed))
            > IDLE_EXPIRY.as_millis() as u64
    }

    /// A response, `latency` after its request arrived.
    pub fn response(&self, status: u16, latency: std::time::Duration) {
        self.response_grpc(status, None, latency);
    }

    /// A response with its grpc-status, when it is a gRPC one.
    pub fn response_grpc(&self, status: u16, grpc: Option<u32>, latency: std::time::Duration) {
        *self
            .responses
            .lock()
            .expect("metrics lock")
            .entry((status, grpc))
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
    /// The stats of one label set (created on first use). `policy` is ""
    /// or, inbound, the permit's server, route and authorization labels
    /// with a leading comma.
    pub fn stats(
        &self,
        direction: &str,
        authority: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
        policy: &str,
    ) -> Arc<RequestStats> {
        let labels = format!(
            "direction=\"{direction}\",authority=\"{}\",target_addr=\"{target}\",{}{policy}",
            escape(authority),
            tls_labels(tls)
        );
        let mut map = self.by_labels.lock().expect("metrics lock");
        if let Some(s) = map.get(&labels) {
            return s.clone();
        }
        if map.len() >= MAX_SERIES {
            // Bounded: idle label sets go first, then the least recently used.
            let now = now_ms();
            map.retain(|_, s| !s.idle(now));
            if map.len() >= MAX_SERIES
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_used_ms.load(Ordering::Relaxed))
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let stats = Arc::new(RequestStats::default());
        stats.last_used_ms.store(now_ms(), Ordering::Relaxed);
        map.insert(labels, stats.clone());
        stats
    }

    /// How many label sets are kept.
    pub fn series(&self) -> usize {
        self.by_labels.lock().expect("metrics lock").len()
    }

    pub fn encode(&self, out: &mut String) {
        let mut by_labels = self.by_labels.lock().expect("metrics lock");
        // Idle series expire.
        let now = now_ms();
        by_labels.retain(|_, s| !s.idle(now));
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
            for ((status, grpc), n) in stats.responses.lock().expect("metrics lock").iter() {
                // gRPC: any status but OK is a failure; HTTP: 5xx.
                let failed = *status >= 500 || grpc.is_some_and(|g| g != 0);
                let classification = if failed { "failure" } else { "success" };
                let grpc = grpc
                    .map(|g| format!(",grpc_status=\"{g}\""))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "response_total{{{labels},status_code=\"{status}\",classification=\"{classification}\"{grpc}}} {n}"
                );
            }
        }
    }
}

/// One connection's most recent label set and its stats: requests on a
/// connection nearly always share authority and target.
#[derive(Default)]
pub struct StatsCache {
    last: Mutex<Option<CachedStats>>,
}

struct CachedStats {
    authority: String,
    target: std::net::SocketAddr,
    policy: Arc<str>,
    stats: Arc<RequestStats>,
}

impl StatsCache {
    /// The stats for (authority, target, policy labels) on this
    /// connection: the last ones again when nothing changed.
    pub fn get(
        &self,
        metrics: &HttpMetrics,
        direction: &str,
        authority: &str,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
        policy: &str,
    ) -> Arc<RequestStats> {
        let mut last = self.last.lock().expect("stats cache lock");
        if let Some(c) = last.as_ref()
            && c.authority == authority
            && c.target == target
            && *c.policy == *policy
        {
            return c.stats.clone();
        }
        let stats = metrics.stats(direction, authority, target, tls, policy);
        *last = Some(CachedStats {
            authority: authority.to_string(),
            target,
            policy: policy.into(),
            stats: stats.clone(),
        });
        stats
    }
}

/// An inbound server's labels, as linkerd2-proxy writes them after the TLS
/// labels (its `srv_group` is left out: policies here carry kind and name),
/// with a leading comma.
pub fn server_labels(kind: &str, name: &str, port: u16) -> String {
    format!(
        ",srv_kind=\"{}\",srv_name=\"{}\",srv_port=\"{port}\"",
        escape(kind),
        escape(name)
    )
}

/// A permit's labels for inbound request metrics: the server's, then the
/// route's and the authorization's, as linkerd2-proxy orders them.
pub fn permit_labels(
    server: (&str, &str),
    port: u16,
    route: (&str, &str),
    authz: (&str, &str),
) -> String {
    format!(
        "{},route_kind=\"{}\",route_name=\"{}\",authz_kind=\"{}\",authz_name=\"{}\"",
        server_labels(server.0, server.1, port),
        escape(route.0),
        escape(route.1),
        escape(authz.0),
        escape(authz.1)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn label_sets_are_bounded_and_idle_ones_expire() {
        let m = HttpMetrics::default();
        let target: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
        let tls = TlsLabel::NoIdentity {
            reason: "no_tls_from_remote",
        };
        // A client making up a Host header per request.
        for i in 0..MAX_SERIES + 500 {
            m.stats("inbound", &format!("h{i}.example"), target, &tls, "")
                .request();
        }
        assert_eq!(m.series(), MAX_SERIES);
        // The newest survived; the oldest went.
        let mut out = String::new();
        m.encode(&mut out);
        assert!(out.contains(&format!("authority=\"h{}.example\"", MAX_SERIES + 499)));
        assert!(!out.contains("authority=\"h0.example\""));
        // One keeps being used; after the idle expiry only it is left.
        tokio::time::advance(IDLE_EXPIRY / 2).await;
        let busy = m.stats("inbound", "busy.example", target, &tls, "");
        tokio::time::advance(IDLE_EXPIRY / 2 + std::time::Duration::from_secs(1)).await;
        busy.request();
        let mut out = String::new();
        m.encode(&mut out);
        assert_eq!(m.series(), 1, "{}", &out[..out.len().min(500)]);
        assert!(out.contains("authority=\"busy.example\""));
    }
}
