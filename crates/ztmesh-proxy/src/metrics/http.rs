//! Request families, as linkerd2-proxy names them: `request_total`,
//! `response_latency_ms` with `status_code`, and `response_total` with
//! `status_code`, `classification`, `grpc_status` and `error`.
//!
//! Each label set has its own [`RequestStats`] holding the handles of its
//! series; connections keep the one they use in a [`StatsCache`], so the
//! hot path is atomic adds and a short lock, with no formatting and no
//! map lookup. Label sets are bounded ([`MAX_SERIES`]) and expire when
//! idle ([`IDLE_EXPIRY`]).

use super::labels::{
    DstLabels, HttpLabelValues, HttpLabels, LatencyLabels, PolicyLabels, ResponseLabels, TlsLabel,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Linkerd's `response_latency_ms` bucket bounds, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 25] = [
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000, 5_000,
    10_000, 20_000, 30_000, 40_000, 50_000,
];

/// Label sets kept at most (authorities come from clients' Host headers:
/// without a bound, a client could grow the proxy's memory at will).
pub const MAX_SERIES: usize = 10_000;
/// Label sets not used for this long are dropped from `/metrics`.
pub const IDLE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(600);

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_MS.iter().map(|b| *b as f64))
}

#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: LatencyFamily,
    responses: Family<ResponseLabels, Counter>,
    /// The live label sets, for the bound and the idle expiry.
    by_labels: Mutex<HashMap<HttpLabels, Arc<RequestStats>>>,
    created: AtomicU64,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            responses: Family::default(),
            by_labels: Mutex::default(),
            created: AtomicU64::new(0),
        }
    }
}

/// The handles of one label set's series.
#[derive(Debug)]
pub struct RequestStats {
    labels: HttpLabels,
    requests: Counter,
    /// `response_total`'s series of this label set, by status code and,
    /// for gRPC, grpc-status, and `response_latency_ms`'s (time to the
    /// response head) by status code; created on a status's first response.
    responses: Mutex<Responses>,
    /// When a request last used this label set ([`now_ms`]).
    last_used_ms: AtomicU64,
    /// Creation order: of label sets last used in the same millisecond,
    /// the older goes first.
    seq: u64,
}

#[derive(Debug)]
struct Responses {
    family: Family<ResponseLabels, Counter>,
    by_status: Vec<((u16, Option<u32>), Counter)>,
    latency_family: LatencyFamily,
    latency_by_status: Vec<(u16, Histogram)>,
    /// Dropped from `/metrics`: responses still counted by a connection
    /// holding these stats create no new series.
    evicted: bool,
}

/// Milliseconds on `tokio::time`'s clock since the first call.
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl RequestStats {
    pub fn request(&self) {
        self.requests.inc();
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
        let mut responses = self.responses.lock().expect("metrics lock");
        let key = (status, grpc);
        match responses.by_status.iter().find(|(k, _)| *k == key) {
            Some((_, counter)) => {
                counter.inc();
            }
            None if responses.evicted => {}
            None => {
                let counter = responses.family.get_or_create_owned(&ResponseLabels {
                    request: self.labels.clone(),
                    status,
                    grpc,
                });
                counter.inc();
                responses.by_status.push((key, counter));
            }
        }
        // Microseconds (a u64 holds 584,000 years) to milliseconds.
        let ms = latency.as_micros() as u64 as f64 / 1000.0;
        match responses
            .latency_by_status
            .iter()
            .find(|(s, _)| *s == status)
        {
            Some((_, histogram)) => histogram.observe(ms),
            None if responses.evicted => {}
            None => {
                let histogram = responses
                    .latency_family
                    .get_or_create_owned(&LatencyLabels {
                        request: self.labels.clone(),
                        status,
                    });
                histogram.observe(ms);
                responses.latency_by_status.push((status, histogram));
            }
        }
    }
}

impl HttpMetrics {
    /// The stats of one label set (created on first use). `policy` is,
    /// inbound, the permit's server, route and authorization labels
    /// ([`super::permit_labels`]), else [`PolicyLabels::NONE`]; `dst`,
    /// outbound, the endpoint's labels from Destination.
    pub fn stats(&self, key: &StatsKey<'_>, tls: &TlsLabel) -> Arc<RequestStats> {
        let labels = HttpLabels(Arc::new(HttpLabelValues {
            direction: key.direction,
            authority: key.authority.map(Arc::from),
            target: key.target,
            tls: tls.clone(),
            policy: key.policy.clone(),
            dst: key.dst.clone(),
        }));
        let mut map = self.by_labels.lock().expect("metrics lock");
        if let Some(s) = map.get(&labels) {
            return s.clone();
        }
        if map.len() >= MAX_SERIES {
            // Bounded: idle label sets go first, then the least recently used.
            self.expire(&mut map);
            if map.len() >= MAX_SERIES
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| (s.last_used_ms.load(Ordering::Relaxed), s.seq))
                    .map(|(k, _)| k.clone())
                && let Some(stats) = map.remove(&oldest)
            {
                self.evict(&stats);
            }
        }
        let stats = Arc::new(RequestStats {
            requests: self.requests.get_or_create_owned(&labels),
            responses: Mutex::new(Responses {
                family: self.responses.clone(),
                by_status: Vec::new(),
                latency_family: self.latency.clone(),
                latency_by_status: Vec::new(),
                evicted: false,
            }),
            last_used_ms: AtomicU64::new(now_ms()),
            seq: self.created.fetch_add(1, Ordering::Relaxed),
            labels: labels.clone(),
        });
        map.insert(labels, stats.clone());
        stats
    }

    /// Drops the idle label sets.
    fn expire(&self, map: &mut HashMap<HttpLabels, Arc<RequestStats>>) {
        let now = now_ms();
        map.retain(|_, s| {
            let idle = s.idle(now);
            if idle {
                self.evict(s);
            }
            !idle
        });
    }

    /// Removes a label set's series from the families.
    fn evict(&self, stats: &RequestStats) {
        self.requests.remove(&stats.labels);
        let mut responses = stats.responses.lock().expect("metrics lock");
        responses.evicted = true;
        for ((status, grpc), _) in responses.by_status.drain(..) {
            self.responses.remove(&ResponseLabels {
                request: stats.labels.clone(),
                status,
                grpc,
            });
        }
        for (status, _) in responses.latency_by_status.drain(..) {
            self.latency.remove(&LatencyLabels {
                request: stats.labels.clone(),
                status,
            });
        }
    }

    /// How many label sets are kept.
    pub fn series(&self) -> usize {
        self.by_labels.lock().expect("metrics lock").len()
    }

    /// Adds the families to a scrape's registry, after dropping the idle
    /// label sets.
    pub fn register(&self, registry: &mut Registry) {
        self.expire(&mut self.by_labels.lock().expect("metrics lock"));
        crate::metrics::register(
            registry,
            "request",
            "Total count of HTTP requests",
            self.requests.clone(),
        );
        crate::metrics::register(
            registry,
            "response_latency_ms",
            "Elapsed times between a request's headers being received and its response stream completing",
            self.latency.clone(),
        );
        crate::metrics::register(
            registry,
            "response",
            "Total count of HTTP responses",
            self.responses.clone(),
        );
    }

    /// The families in the Prometheus text format.
    pub fn encode(&self, out: &mut String) {
        super::encode_into(out, |r| self.register(r));
    }
}

/// What a request's label set is made of, but the connection's TLS.
#[derive(Clone, Copy, Debug)]
pub struct StatsKey<'a> {
    pub direction: &'static str,
    /// None: no `authority` label (outbound to a bare address).
    pub authority: Option<&'a str>,
    pub target: std::net::SocketAddr,
    pub policy: &'a PolicyLabels,
    pub dst: &'a DstLabels,
}

/// One connection's most recent label set and its stats: requests on a
/// connection nearly always share authority and target.
#[derive(Default)]
pub struct StatsCache {
    last: Mutex<Option<CachedStats>>,
}

struct CachedStats {
    authority: Option<String>,
    target: std::net::SocketAddr,
    policy: PolicyLabels,
    dst: DstLabels,
    stats: Arc<RequestStats>,
}

impl StatsCache {
    /// The stats for `key` on this connection: the last ones again when
    /// nothing changed.
    pub fn get(
        &self,
        metrics: &HttpMetrics,
        key: &StatsKey<'_>,
        tls: &TlsLabel,
    ) -> Arc<RequestStats> {
        let mut last = self.last.lock().expect("stats cache lock");
        if let Some(c) = last.as_ref()
            && c.authority.as_deref() == key.authority
            && c.target == key.target
            && c.policy == *key.policy
            && c.dst == *key.dst
        {
            return c.stats.clone();
        }
        let stats = metrics.stats(key, tls);
        *last = Some(CachedStats {
            authority: key.authority.map(String::from),
            target: key.target,
            policy: key.policy.clone(),
            dst: key.dst.clone(),
            stats: stats.clone(),
        });
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(
        direction: &'static str,
        authority: &'a str,
        target: std::net::SocketAddr,
        policy: &'a PolicyLabels,
        dst: &'a DstLabels,
    ) -> StatsKey<'a> {
        StatsKey {
            direction,
            authority: Some(authority),
            target,
            policy,
            dst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn label_sets_are_bounded_and_idle_ones_expire() {
        let m = HttpMetrics::default();
        let target: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
        let tls = TlsLabel::NoIdentity {
            reason: "no_tls_from_remote",
        };
        let none = PolicyLabels::NONE;
        let dst = DstLabels::default();
        // A client making up a Host header per request.
        for i in 0..MAX_SERIES + 500 {
            let authority = format!("h{i}.example");
            let s = m.stats(&key("inbound", &authority, target, &none, &dst), &tls);
            s.request();
            s.response(200, std::time::Duration::from_millis(1));
        }
        assert_eq!(m.series(), MAX_SERIES);
        // The newest survived; the oldest went, with all its series.
        let mut out = String::new();
        m.encode(&mut out);
        assert!(out.contains(&format!("authority=\"h{}.example\"", MAX_SERIES + 499)));
        assert!(!out.contains("authority=\"h0.example\""));
        let count = |family: &str, out: &str| {
            out.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .count()
        };
        assert_eq!(count("request_total", &out), MAX_SERIES);
        assert_eq!(count("response_total", &out), MAX_SERIES);
        assert_eq!(count("response_latency_ms_count", &out), MAX_SERIES);
        // One keeps being used; after the idle expiry only it is left.
        tokio::time::advance(IDLE_EXPIRY / 2).await;
        let busy = m.stats(&key("inbound", "busy.example", target, &none, &dst), &tls);
        tokio::time::advance(IDLE_EXPIRY / 2 + std::time::Duration::from_secs(1)).await;
        busy.request();
        busy.response(200, std::time::Duration::from_millis(1));
        let mut out = String::new();
        m.encode(&mut out);
        assert_eq!(m.series(), 1, "{}", &out[..out.len().min(500)]);
        assert!(out.contains("authority=\"busy.example\""));
        assert_eq!(count("request_total", &out), 1);
        assert_eq!(count("response_latency_ms_count", &out), 1);
    }

    #[test]
    fn responses_are_classified_and_label_values_escaped() {
        let m = HttpMetrics::default();
        let target: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
        let tls = TlsLabel::NoIdentity {
            reason: "no_tls_from_remote",
        };
        // Authorities come from clients: quotes and backslashes are escaped.
        let none = DstLabels::default();
        let s = m.stats(
            &key("outbound", "a\"b\\c", target, &PolicyLabels::NONE, &none),
            &tls,
        );
        s.request();
        s.response(200, std::time::Duration::from_micros(1000));
        s.response(503, std::time::Duration::from_micros(1001));
        s.response_grpc(200, Some(0), std::time::Duration::from_millis(60_000));
        s.response_grpc(200, Some(14), std::time::Duration::from_millis(5));
        let mut out = String::new();
        m.encode(&mut out);
        let labels = "direction=\"outbound\",authority=\"a\\\"b\\\\c\",target_addr=\"10.0.0.1:80\",target_ip=\"10.0.0.1\",target_port=\"80\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"";
        let ok = format!("{labels},status_code=\"200\"");
        let cases = [
            format!("request_total{{{labels}}} 1"),
            format!(
                "response_total{{{labels},status_code=\"200\",classification=\"success\",grpc_status=\"\",error=\"\"}} 1"
            ),
            format!(
                "response_total{{{labels},status_code=\"503\",classification=\"failure\",grpc_status=\"\",error=\"\"}} 1"
            ),
            format!(
                "response_total{{{labels},status_code=\"200\",classification=\"success\",grpc_status=\"0\",error=\"\"}} 1"
            ),
            format!(
                "response_total{{{labels},status_code=\"200\",classification=\"failure\",grpc_status=\"14\",error=\"\"}} 1"
            ),
            // By status: 1000us is in the 1ms bucket; 60s only in +Inf.
            format!("response_latency_ms_bucket{{{ok},le=\"1\"}} 1"),
            format!("response_latency_ms_bucket{{{ok},le=\"5\"}} 2"),
            format!("response_latency_ms_bucket{{{ok},le=\"50000\"}} 2"),
            format!("response_latency_ms_bucket{{{ok},le=\"+Inf\"}} 3"),
            format!("response_latency_ms_count{{{ok}}} 3"),
            // 1001us is not in the 1ms bucket.
            format!("response_latency_ms_bucket{{{labels},status_code=\"503\",le=\"1\"}} 0"),
            format!("response_latency_ms_bucket{{{labels},status_code=\"503\",le=\"2\"}} 1"),
        ];
        for line in cases {
            assert!(out.contains(&format!("{line}\n")), "{line} in\n{out}");
        }
        assert!(
            out.contains("# TYPE response_latency_ms histogram\n"),
            "{out}"
        );
    }
}
