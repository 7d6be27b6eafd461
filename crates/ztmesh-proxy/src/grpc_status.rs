//! gRPC responses are classified by their `grpc-status`, which comes in
//! the trailers (or, for trailers-only answers, in the headers): a body
//! wrapper reports it when the stream ends, so `response_total` can carry
//! `grpc_status` and count a non-zero status as a failure.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;
type Report = Box<dyn FnOnce(Option<u32>) + Send + Sync>;

/// Counts a response in `stats`: now for HTTP and trailers-only gRPC
/// answers, when its trailers come for other gRPC responses.
pub(crate) fn count(
    stats: std::sync::Arc<crate::metrics::RequestStats>,
    rsp: http::Response<Boxed>,
    latency: std::time::Duration,
) -> http::Response<Boxed> {
    let status = rsp.status().as_u16();
    if !is_grpc(&rsp) {
        stats.response(status, latency);
        return rsp;
    }
    if let Some(grpc) = status_of(rsp.headers()) {
        stats.response_grpc(status, Some(grpc), latency);
        return rsp;
    }
    rsp.map(|b| {
        on_end(
            b,
            Box::new(move |grpc| stats.response_grpc(status, grpc, latency)),
        )
    })
}

pub(crate) fn is_grpc<B>(rsp: &http::Response<B>) -> bool {
    rsp.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

pub(crate) fn status_of(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Calls `report` once: with the trailers' grpc-status when they come, or
/// None if the stream ends (or is dropped) without one.
pub(crate) fn on_end(body: Boxed, report: Report) -> Boxed {
    GrpcEnd {
        inner: body,
        report: Some(report),
    }
    .boxed()
}

struct GrpcEnd {
    inner: Boxed,
    report: Option<Report>,
}

impl GrpcEnd {
    fn fire(&mut self, status: Option<u32>) {
        if let Some(report) = self.report.take() {
            report(status);
        }
    }
}

impl Body for GrpcEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let status = status_of(trailers);
                    self.fire(status);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.fire(None),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for GrpcEnd {
    fn drop(&mut self) {
        self.fire(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn reports_the_trailers_status_once() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let frames = vec![
            Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let wrapped = on_end(body, Box::new(move |st| s.lock().unwrap().push(st)));
        let collected = wrapped.collect().await.unwrap();
        assert_eq!(status_of(collected.trailers().unwrap()), Some(14));
        assert_eq!(*seen.lock().unwrap(), vec![Some(14)]);
        // A body dropped before its end reports no status.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        drop(on_end(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
            Box::new(move |st| s.lock().unwrap().push(st)),
        ));
        assert_eq!(*seen.lock().unwrap(), vec![None]);
    }
}
