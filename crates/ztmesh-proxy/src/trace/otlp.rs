//! The OTLP trace messages the proxy sends (a subset of
//! `opentelemetry.proto.collector.trace.v1`, with the protobuf field
//! numbers of the OpenTelemetry protocol), and the exporter: finished spans
//! are batched (up to [`BATCH`] or every [`FLUSH`]) and sent with
//! `TraceService/Export` over gRPC; when the collector is unreachable a
//! batch is dropped (bounded memory) and the failure logged.

use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;

pub const BATCH: usize = 100;
pub const FLUSH: Duration = Duration::from_secs(1);
/// Spans waiting to be sent; more are dropped.
pub const QUEUE: usize = 10_000;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    /// 2: server, 3: client.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(string, tag = "1")]
    pub string_value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    /// 1: ok, 2: error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

pub fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            string_value: value.into(),
        }),
    }
}

pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Runs until every sender is gone: batches spans and exports them.
pub async fn export(channel: Channel, service: String, mut rx: mpsc::Receiver<Span>) {
    let mut client = tonic::client::Grpc::new(channel);
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
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", service.clone())],
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "ztmesh-proxy".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    spans: std::mem::take(&mut batch),
                }],
            }],
        };
        let sent = async {
            client.ready().await.map_err(|e| e.to_string())?;
            let codec = tonic_prost::ProstCodec::<
                ExportTraceServiceRequest,
                ExportTraceServiceResponse,
            >::default();
            client
                .unary(
                    tonic::Request::new(request),
                    http::uri::PathAndQuery::from_static(EXPORT_PATH),
                    codec,
                )
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        };
        match tokio::time::timeout(Duration::from_secs(5), sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "exporting spans failed; the batch is dropped")
            }
            Err(_) => {
                tracing::warn!("the trace collector did not answer within 5s; the batch is dropped")
            }
        }
    }
}
