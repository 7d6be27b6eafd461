//! The controller's admin server: `GET /metrics` (Prometheus text, from
//! the registry the builder was given: the Kubernetes store's metrics),
//! `GET /ready` (200 once the indexes are in force, else 503), `GET /live`. Plain
//! HTTP/1.1, meant for a loopback or pod-local address; it stops with
//! the controller.

use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub(crate) async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    stopped: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(stopped);
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "admin server: accept failed");
                    continue;
                }
            },
        };
        let registry = registry.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, content_type, body) =
                        answer(req.uri().path(), &registry, *ready.borrow());
                    let rsp = hyper::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                        .expect("a valid response");
                    std::future::ready(Ok::<_, std::convert::Infallible>(rsp))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// The answer to `path`: status, content type, body.
fn answer(path: &str, registry: &Registry, ready: bool) -> (u16, &'static str, String) {
    match path {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => (
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(e) => (500, "text/plain", format!("encoding the metrics: {e}\n")),
            }
        }
        "/ready" if ready => (200, "text/plain", "ready\n".into()),
        "/ready" => (503, "text/plain", "not ready\n".into()),
        // The process answers: Kubernetes' liveness probe.
        "/live" => (200, "text/plain", "live\n".into()),
        _ => (
            404,
            "text/plain",
            "not found: GET /metrics, /ready or /live\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn answers() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("things", "things seen", counter.clone());
        counter.inc();
        // (path, ready, status, body contains)
        let cases = [
            ("/metrics", false, 200, "things_total 1"),
            ("/ready", true, 200, "ready"),
            ("/ready", false, 503, "not ready"),
            ("/live", false, 200, "live"),
            ("/other", true, 404, "not found"),
        ];
        for (path, ready, status, body) in cases {
            let (got, _, text) = answer(path, &registry, ready);
            assert_eq!(got, status, "{path}");
            assert!(text.contains(body), "{path}: {text}");
        }
    }
}
