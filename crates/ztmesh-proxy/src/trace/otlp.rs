//! The OTLP trace messages the proxy sends (`opentelemetry-proto`'s
//! generated `opentelemetry.proto.collector.trace.v1` types, re-exported),
//! and the exporter: finished spans are batched (up to [`BATCH`] or every
//! [`FLUSH`]) and sent with `TraceService/Export` over gRPC; when the
//! collector is unreachable a batch is dropped (bounded memory) and the
//! failure logged.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;

pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value,
};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const BATCH: usize = 100;
pub const FLUSH: Duration = Duration::from_secs(1);
/// Spans waiting to be sent; more are dropped.
pub const QUEUE: usize = 10_000;
/// How long a collector gets to answer one export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An attribute's value when it is a string.
pub fn string_value(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// One export request: the batch, under this proxy's resource and scope.
fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ztmesh-proxy".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Runs until every sender is gone: batches spans and exports them.
pub async fn export(channel: Channel, service: String, mut rx: mpsc::Receiver<Span>) {
    let mut client = TraceServiceClient::new(channel);
    let mut batch = Vec::new();
    loop {
        let more = tokio::time::timeout(FLUSH, rx.recv()).await;
        match more {
            Ok(Some(span)) => {
                batch.push(span);
                if batch.len() < BATCH {
                    continue;
                }
            }
            Ok(None) if batch.is_empty() => return,
            Ok(None) | Err(_) if batch.is_empty() => continue,
            _ => {}
        }
        let sent = client.export(request(&service, std::mem::take(&mut batch)));
        match tokio::time::timeout(EXPORT_TIMEOUT, sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), error = status.message(), "exporting spans failed; the batch is dropped")
            }
            Err(_) => {
                tracing::warn!("the trace collector did not answer within 5s; the batch is dropped")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// An export request carries the service, the scope and the spans
    /// with their string attributes, through the wire and back.
    #[test]
    fn request_round_trips_with_its_attributes() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "inbound GET /".into(),
            kind: 2,
            attributes: vec![kv("http.status_code", "200")],
            ..Default::default()
        };
        let bytes = request("books", vec![span.clone()]).encode_to_vec();
        let back = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        let rs = &back.resource_spans[0];
        assert_eq!(
            string_value(&rs.resource.as_ref().unwrap().attributes[0]),
            Some("books")
        );
        let scope = &rs.scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "ztmesh-proxy");
        assert_eq!(scope.spans, vec![span]);
        assert_eq!(string_value(&scope.spans[0].attributes[0]), Some("200"));
    }
}
