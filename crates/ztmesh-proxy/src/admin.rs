//! The admin listener, as linkerd2-proxy serves it: `/live`, `/ready`
//! (200 only while a valid identity certificate is held and the declared
//! ports' policies have arrived, or their bounded wait ended), `/metrics`
//! (the Prometheus text format, 0.0.4, encoded by `prometheus-client`), and `/shutdown` (graceful drain; only a POST from
//! localhost, and only when `LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED`).

use crate::identity::{IdentityMetrics, IdentityStatus};
use crate::metrics::TcpMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Admin {
    pub identity: watch::Receiver<IdentityStatus>,
    pub identity_metrics: Arc<IdentityMetrics>,
    pub tcp: Arc<TcpMetrics>,
    pub http: Arc<crate::metrics::HttpMetrics>,
    pub authz: Arc<crate::authz_metrics::AuthzMetrics>,
    pub routes: Arc<crate::route_metrics::RouteMetrics>,
    /// The declared inbound ports have their policies (or the wait ended).
    pub policy_ready: watch::Receiver<bool>,
    pub shutdown_enabled: bool,
    pub shutdown: watch::Sender<bool>,
    /// `/metrics` encodings shared by concurrent scrapes.
    pub scrapes: Scrapes,
}

/// Scrapes that arrive while `/metrics` is being encoded share the next
/// encoding instead of each making its own (a flood of scrapes costs a
/// few encodings, not one each). Every answer still reflects the counters
/// at or after its request's arrival: an encoding is reused only by
/// requests that arrived before it began.
#[derive(Default)]
pub struct Scrapes {
    /// How many encodings have begun.
    begun: std::sync::atomic::AtomicU64,
    /// The last encoding: its number and its text.
    last: std::sync::Mutex<Option<(u64, Bytes)>>,
}

impl Scrapes {
    fn get(&self, encode: impl FnOnce() -> String) -> Bytes {
        use std::sync::atomic::Ordering::SeqCst;
        let arrived = self.begun.load(SeqCst);
        let mut last = self.last.lock().expect("scrape lock");
        if let Some((n, out)) = &*last
            && *n > arrived
        {
            return out.clone();
        }
        let n = self.begun.fetch_add(1, SeqCst) + 1;
        let out = Bytes::from(encode());
        *last = Some((n, out.clone()));
        out
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(body.into()))
        .expect("a valid response")
}

impl Admin {
    /// Accepts admin connections; `open` counts those being served (the
    /// memory trimmer watches it with the proxied connections).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        open: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::Ordering;
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let (this, open) = (self.clone(), open.clone());
            open.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                this.serve_connection(tcp, peer).await;
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Serves one admin connection (HTTP/1) from `peer` until it ends.
    pub async fn serve_connection<I>(self: Arc<Self>, io: I, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| {
            let this = self.clone();
            async move { Ok::<_, std::convert::Infallible>(this.respond(&req, peer)) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            // A head must arrive within 30 s: a slow client holds no
            // connection longer. (Under a flood of 5,000 scrapes at once,
            // 10 s dropped 4-9% of them: their heads had been sent but
            // were not read in time.)
            .header_read_timeout(std::time::Duration::from_secs(30))
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        if let Err(error) = conn.await {
            tracing::debug!(%peer, %error, "admin connection ended");
        }
    }

    pub fn respond<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        match req.uri().path() {
            "/live" => text(StatusCode::OK, "live\n"),
            "/ready" => match &*self.identity.borrow() {
                IdentityStatus::Ready { .. } if !*self.policy_ready.borrow() => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: waiting for the inbound policy of the workload's ports\n",
                ),
                IdentityStatus::Ready { .. } => text(StatusCode::OK, "ready\n"),
                IdentityStatus::Pending => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no identity certificate yet\n",
                ),
                IdentityStatus::Expired { .. } => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the identity certificate expired\n",
                ),
            },
            "/metrics" => {
                let out = self.scrapes.get(|| {
                    crate::metrics::encode_text(|registry| {
                        self.identity_metrics.register(registry);
                        self.http.register(registry);
                        self.tcp.register(registry);
                        self.authz.register(registry);
                        self.routes.register(registry);
                        crate::process_metrics::register(registry);
                    })
                });
                Response::builder()
                    .header("content-type", crate::metrics::CONTENT_TYPE)
                    .body(Full::new(out))
                    .expect("a valid response")
            }
            "/shutdown" if !self.shutdown_enabled => {
                text(StatusCode::NOT_FOUND, "shutdown endpoint is not enabled\n")
            }
            "/shutdown" if req.method() != Method::POST => {
                text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n")
            }
            "/shutdown" if !peer.ip().is_loopback() => text(
                StatusCode::FORBIDDEN,
                "shutdown is only accepted from localhost\n",
            ),
            "/shutdown" => {
                tracing::info!(%peer, "shutdown requested on the admin endpoint");
                let _ = self.shutdown.send(true);
                text(StatusCode::OK, "shutdown\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn scrapes_one_after_another_each_encode_afresh() {
        let scrapes = Scrapes::default();
        let mut encodings = 0;
        for want in ["1", "2", "3"] {
            let out = scrapes.get(|| {
                encodings += 1;
                encodings.to_string()
            });
            assert_eq!(out, want);
        }
        // A request that arrived before an encoding began takes its text.
        let arrived = scrapes.begun.load(std::sync::atomic::Ordering::SeqCst);
        *scrapes.last.lock().unwrap() = Some((arrived + 1, Bytes::from("shared")));
        assert_eq!(
            scrapes.get(|| unreachable!("shared, not encoded")),
            "shared"
        );
    }

    #[test]
    fn endpoints_table() {
        let (status_tx, status_rx) = watch::channel(IdentityStatus::Pending);
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let (policy_tx, policy_ready) = watch::channel(false);
        let admin = |enabled| Admin {
            identity: status_rx.clone(),
            identity_metrics: Arc::default(),
            tcp: Arc::default(),
            http: Arc::default(),
            authz: Arc::default(),
            routes: Arc::default(),
            policy_ready: policy_ready.clone(),
            shutdown_enabled: enabled,
            shutdown: shutdown.clone(),
            scrapes: Default::default(),
        };
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let req = |method: Method, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
        };
        let on = admin(true);
        let cases = [
            (&on, Method::GET, "/live", local, StatusCode::OK),
            (
                &on,
                Method::GET,
                "/ready",
                local,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (&on, Method::GET, "/metrics", remote, StatusCode::OK),
            (
                &on,
                Method::GET,
                "/shutdown",
                local,
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                &on,
                Method::POST,
                "/shutdown",
                remote,
                StatusCode::FORBIDDEN,
            ),
            (&on, Method::GET, "/nope", local, StatusCode::NOT_FOUND),
        ];
        for (a, method, path, peer, want) in cases {
            assert_eq!(
                a.respond(&req(method.clone(), path), peer).status(),
                want,
                "{method} {path} from {peer}"
            );
        }
        let off = admin(false);
        assert_eq!(
            off.respond(&req(Method::POST, "/shutdown"), local).status(),
            StatusCode::NOT_FOUND
        );
        assert!(!*shutdown_rx.borrow_and_update());
        assert_eq!(
            on.respond(&req(Method::POST, "/shutdown"), local).status(),
            StatusCode::OK
        );
        assert!(*shutdown_rx.borrow_and_update(), "a shutdown was signalled");

        status_tx
            .send(IdentityStatus::Ready {
                expiry: std::time::SystemTime::now(),
            })
            .unwrap();
        // A certificate, but the declared ports' policies are not in yet.
        assert_eq!(
            on.respond(&req(Method::GET, "/ready"), local).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        policy_tx.send(true).unwrap();
        assert_eq!(
            on.respond(&req(Method::GET, "/ready"), local).status(),
            StatusCode::OK
        );
    }

    /// `/metrics` is the Prometheus text format (0.0.4) that the CLI's
    /// parser and Prometheus read: every holder's families, counters
    /// named with `_total` on their TYPE line, no OpenMetrics `# EOF`.
    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let (_status_tx, identity) = watch::channel(IdentityStatus::Pending);
        let (shutdown, _) = watch::channel(false);
        let admin = Admin {
            identity,
            identity_metrics: Arc::default(),
            tcp: Arc::default(),
            http: Arc::default(),
            authz: Arc::default(),
            routes: Arc::default(),
            policy_ready: watch::channel(true).1,
            shutdown_enabled: false,
            shutdown,
            scrapes: Default::default(),
        };
        admin
            .routes
            .record(crate::route_metrics::RouteEvent::Retry, "books:80", "GET /");
        let req = Request::builder().uri("/metrics").body(()).unwrap();
        let rsp = admin.respond(&req, "127.0.0.1:1".parse().unwrap());
        assert_eq!(
            rsp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&body).unwrap();
        for family in [
            "# TYPE control_identity_cert_refreshes_total counter",
            "# TYPE request_total counter",
            "# TYPE response_latency_ms histogram",
            "# TYPE tcp_open_connections gauge",
            "# TYPE inbound_http_authz_allow_total counter",
            "# TYPE process_cpu_seconds_total counter",
            "outbound_route_retry_total{direction=\"outbound\",dst=\"books:80\",route_name=\"GET /\"} 1",
        ] {
            assert!(text.contains(family), "{family} in\n{text}");
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}
