//! Distributed tracing: trace context propagated and, with a collector
//! configured (`LINKERD2_PROXY_TRACE_COLLECTOR_SVC_ADDR` / `_NAME`), spans.
//!
//! - [`context`]: W3C `traceparent` and B3 headers, read and written;
//! - [`otlp`]: the OTLP messages and the batching exporter.
//!
//! Without a collector the proxy leaves trace headers untouched (they are
//! forwarded as any header). With one, each sampled request gets a span per
//! proxy (server span inbound, client span outbound): the request carries
//! the proxy's span id onward as the next hop's parent, and a request
//! without a context starts a trace at the configured sample rate
//! (`ZTMESH_PROXY_TRACE_SAMPLE_RATE`, 0 to 1).

pub(crate) mod context;
pub mod otlp;

use context::{Format, TraceContext, extract, inject};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub struct Tracer {
    sample_rate: f64,
    spans: mpsc::Sender<otlp::Span>,
}

/// A request's span, open until its response.
pub(crate) struct ActiveSpan {
    span: otlp::Span,
    spans: mpsc::Sender<otlp::Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Server = 2,
    Client = 3,
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Tracer {
    /// A tracer exporting to `channel` (spawns the exporter).
    pub fn new(channel: tonic::transport::Channel, service: String, sample_rate: f64) -> Self {
        let (spans, rx) = mpsc::channel(otlp::QUEUE);
        tokio::spawn(otlp::export(channel, service, rx));
        Self {
            sample_rate: sample_rate.clamp(0.0, 1.0),
            spans,
        }
    }

    /// Opens a span for a sampled request (its context continued, or a new
    /// one at the sample rate) and rewrites the request's context so the
    /// next hop's parent is this span; None for requests not traced.
    pub(crate) fn start<B>(&self, req: &mut http::Request<B>, kind: Kind) -> Option<ActiveSpan> {
        let (trace_id, parent, format) = match extract(req.headers()) {
            Some(c) if c.sampled => (c.trace_id, Some(c.span_id), c.format),
            Some(_) => return None,
            None if self.sample_rate > 0.0 && fastrand::f64() < self.sample_rate => {
                (fastrand::u128(1..).to_be_bytes(), None, Format::W3c)
            }
            None => return None,
        };
        let span_id = fastrand::u64(1..).to_be_bytes();
        inject(
            req.headers_mut(),
            &TraceContext {
                trace_id,
                span_id,
                sampled: true,
                format,
            },
        );
        let name = match kind {
            Kind::Server => "inbound",
            Kind::Client => "outbound",
        };
        Some(ActiveSpan {
            span: otlp::Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                name: format!("{name} {} {}", req.method(), req.uri().path()),
                kind: kind as i32,
                start_time_unix_nano: unix_nanos(),
                attributes: vec![
                    otlp::kv("http.method", req.method().as_str()),
                    otlp::kv("http.path", req.uri().path()),
                    otlp::kv("http.authority", crate::proxy_http::request_authority(req)),
                ],
                ..Default::default()
            },
            spans: self.spans.clone(),
        })
    }
}

impl ActiveSpan {
    pub(crate) fn attribute(&mut self, key: &str, value: impl Into<String>) {
        self.span.attributes.push(otlp::kv(key, value));
    }

    /// Closes the span with the response's status and queues it.
    pub(crate) fn finish(mut self, status: u16) {
        self.span.end_time_unix_nano = unix_nanos();
        self.span
            .attributes
            .push(otlp::kv("http.status_code", status.to_string()));
        self.span.status = Some(otlp::Status {
            message: String::new(),
            code: if status >= 500 { 2 } else { 1 },
        });
        // A full queue drops the span: tracing never slows requests.
        let _ = self.spans.try_send(self.span);
    }
}
