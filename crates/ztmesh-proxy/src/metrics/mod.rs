//! The proxy's Prometheus metrics, kept in `prometheus-client` families
//! and exposed in the Prometheus text format (0.0.4) with
//! linkerd2-proxy's family and label names, `direction` first.
//!
//! - [`labels`]: the label sets ([`TlsLabel`], [`PolicyLabels`],
//!   [`DstLabels`] and the transport and request ones) and their order;
//!   `label_sets` (tests) holds every family's label keys against
//!   linkerd2-proxy's.
//! - [`tcp`]: `tcp_open_total`, `tcp_close_total`, `tcp_open_connections`,
//!   `tcp_read_bytes_total`, `tcp_write_bytes_total`, with `tls="true"` and
//!   `client_id` (inbound) / `server_id` (outbound), or
//!   `tls="no_identity"` with `no_tls_reason`.
//! - [`http`]: `request_total`, `response_latency_ms`, `response_total`,
//!   and the per-connection [`StatsCache`].
//!
//! A scrape builds a [`Registry`] from the families' handles (each metrics
//! holder's `register`) and encodes it with [`encode_text`]; the other
//! holders are [`crate::authz_metrics`], [`crate::route_metrics`],
//! [`crate::identity::IdentityMetrics`] and [`crate::process_metrics`].

mod http;
#[cfg(test)]
mod label_sets;
mod labels;
mod tcp;

pub use self::http::{
    HttpMetrics, IDLE_EXPIRY, LATENCY_BUCKETS_MS, MAX_SERIES, RequestStats, StatsCache, StatsKey,
};
pub use self::labels::{DstLabels, PolicyLabels, TlsLabel, permit_labels, server_labels};
pub(crate) use self::labels::{Prefix, encode_meta, label, target};
pub use self::tcp::{TcpCounters, TcpMetrics, errno_name};
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
pub use prometheus_client::registry::Registry;

/// The Prometheus text exposition (0.0.4) of what `register` adds to a
/// fresh registry.
pub fn encode_text(register: impl FnOnce(&mut Registry)) -> String {
    let mut out = String::new();
    encode_into(&mut out, register);
    out
}

/// [`encode_text`], appended to `out`.
pub fn encode_into(out: &mut String, register: impl FnOnce(&mut Registry)) {
    let mut registry = Registry::default();
    register(&mut registry);
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
        .expect("writing to a String cannot fail");
}

/// Registers `metric` so that its HELP and TYPE lines are written even
/// before its first series, as linkerd2-proxy does (and as the dashboards'
/// check reads them): `prometheus-client` leaves empty families out.
pub fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M)
where
    M: EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
{
    registry.register(name, help, Announced(metric));
}

#[derive(Debug)]
struct Announced<M>(M);

impl<M: EncodeMetric> EncodeMetric for Announced<M> {
    fn encode(&self, encoder: MetricEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}
