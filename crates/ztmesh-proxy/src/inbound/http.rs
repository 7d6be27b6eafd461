//! Stage (HTTP): serve the detected HTTP/1 or HTTP/2 connection; each
//! request is authorized ([`super::authorize`]; a denial is answered
//! there), then sent to the application over a keep-alive pool, counted,
//! traced and tapped.
//!
//! HTTP/2 requests that a client proxy upgraded (`l5d-orig-proto`) reach
//! the application as the HTTP/1.x requests they were, and their responses
//! are marked for the way back ([`crate::orig_proto`]); other HTTP/2
//! requests (gRPC) stay HTTP/2. Upgrades (WebSocket) are joined through
//! ([`crate::http_upgrade`]).
//!
//! `request_total` and `response_total{status_code,classification}` carry
//! the connection's labels (direction, target, TLS and client identity;
//! the request's logical `authority` only when asked for, as
//! linkerd2-proxy's `LINKERD2_PROXY_INBOUND_METRICS_AUTHORITY_LABELS=unsafe`)
//! and the permit's (server, route, authorization), as linkerd2-proxy's
//! do, so who talked to whom is visible per request. Tap reports the
//! client's address and the logical authority (`l5d-dst-canonical`). An
//! unreachable application answers 502 with `l5d-proxy-error`
//! ([`crate::proxy_http::proxy_error`]).

use crate::metrics::{DstLabels, HttpMetrics, StatsKey};
use crate::proxy_http::logical_authority;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::proxy_http::{HTTP1_POOL_IDLE_TIMEOUT, proxy_error};

/// A pooled HTTP/1 client that always dials the application's address.
pub(crate) type AppClient = Client<AppConnector, Incoming>;

#[derive(Clone)]
pub(crate) struct AppConnector {
    target: SocketAddr,
}

impl tower::Service<http::Uri> for AppConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let target = self.target;
        Box::pin(async move {
            let tcp = tokio::time::timeout(
                super::forward::CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(target),
            )
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{target} did not accept"),
                )
            })??;
            let _ = tcp.set_nodelay(true);
            Ok(TokioIo::new(tcp))
        })
    }
}

/// The application's clients: HTTP/1 keep-alive and HTTP/2 (prior knowledge).
#[derive(Clone)]
pub(crate) struct AppClients {
    pub(crate) http1: AppClient,
    pub(crate) http2: AppClient,
}

pub(crate) fn app_clients(target: SocketAddr) -> AppClients {
    let idle = std::time::Duration::from_secs(60);
    AppClients {
        http1: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(HTTP1_POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(AppConnector { target }),
        http2: Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(idle)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(AppConnector { target }),
    }
}

/// What serving one HTTP connection needs.
pub(crate) struct HttpConn {
    pub(crate) http2: bool,
    /// The client's address (tap's source).
    pub(crate) peer: SocketAddr,
    pub(crate) target: SocketAddr,
    /// Request series carry the request's logical authority.
    pub(crate) authority_labels: bool,
    pub(crate) metrics: Arc<HttpMetrics>,
    pub(crate) clients: AppClients,
    /// Time allowed for a request head (slowloris).
    pub(crate) header_timeout: std::time::Duration,
    /// Every request is authorized before it is forwarded.
    pub(crate) authz: Arc<super::authorize::ConnectionAuthz>,
    /// Server spans for traced requests (with a collector configured).
    pub(crate) tracer: Option<Arc<crate::trace::Tracer>>,
    /// Live observers of this proxy's requests.
    pub(crate) taps: Arc<crate::tap::Taps>,
    /// This proxy's identity (the server's, in tap events).
    pub(crate) local_name: Arc<str>,
    /// Shutdown: the connection is closed gracefully when draining begins.
    pub(crate) drain: crate::drain::Watch,
}

/// Serves one detected HTTP connection until it closes.
pub(crate) async fn serve<I>(io: I, conn: HttpConn) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let HttpConn {
        http2,
        peer,
        target,
        authority_labels,
        metrics,
        clients,
        header_timeout,
        authz,
        tracer,
        taps,
        local_name,
        drain,
    } = conn;
    // The TLS label is the connection's (in `authz`); the label set of the
    // last authority, target and permit is cached.
    let cache = Arc::new(crate::metrics::StatsCache::default());
    let clock = (!http2).then(crate::head_timeout::HeadClock::default);
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (clients, metrics) = (clients.clone(), metrics.clone());
        let (cache, authz, tracer) = (cache.clone(), authz.clone(), tracer.clone());
        let (taps, local_name) = (taps.clone(), local_name.clone());
        let clock = service_clock.clone();
        let started = tokio::time::Instant::now();
        async move {
            if let Some(c) = &clock {
                c.request();
            }
            let rsp = async move {
                // Denied requests are counted by the authorization metrics
                // only: request metrics carry the permit's labels (server,
                // route, authorization), as linkerd2-proxy's do.
                let policy = match authz.check_request(&req) {
                    Ok(policy) => policy,
                    Err(denied) => return Ok(*denied),
                };
                // The app learns the verified identity, and only that.
                let client_id = authz.client_id().map(super::tls::ClientId::as_str);
                super::client_id::set(&mut req, client_id);
                let logical = logical_authority(&req);
                let counters = cache.get(
                    &metrics,
                    &StatsKey {
                        direction: "inbound",
                        authority: logical.as_deref().filter(|_| authority_labels),
                        target,
                        policy: &policy,
                        dst: &DstLabels::default(),
                    },
                    authz.tls_label(),
                );
                counters.request();
                // Tap's authority: the logical name, else the client's own
                // (read before the URI is pointed at the application).
                let tap_authority = taps.is_active().then(|| {
                    logical
                        .clone()
                        .unwrap_or_else(|| crate::proxy_http::request_authority(&req))
                });
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                *req.uri_mut() = format!("http://{target}{path}")
                    .parse()
                    .expect("a valid URI");
                let mut span = tracer
                    .as_ref()
                    .and_then(|t| t.start(&mut req, crate::trace::Kind::Server));
                if let (Some(span), Some(client_id)) = (span.as_mut(), client_id) {
                    span.attribute("ztmesh.client_id", client_id);
                }
                let tapped = taps.request(
                    true,
                    &req,
                    tap_authority.as_deref(),
                    Some(peer),
                    target,
                    (client_id.unwrap_or(""), &local_name),
                );
                let downgraded = crate::orig_proto::downgrade_request(&mut req);
                let upgrade = crate::http_upgrade::client_side(&mut req);
                let client = if req.version() == http::Version::HTTP_2 {
                    &clients.http2
                } else {
                    &clients.http1
                };
                let rsp = match client.request(req).await {
                    Ok(mut rsp) => {
                        if downgraded.is_some() {
                            crate::orig_proto::mark_response(&mut rsp);
                        }
                        if let Some(upgrade) = upgrade {
                            crate::http_upgrade::bridge(upgrade, &mut rsp);
                        }
                        rsp.map(|b| b.boxed())
                    }
                    Err(error) => proxy_error(
                        StatusCode::BAD_GATEWAY,
                        format!("the application at {target} failed: {error}"),
                    ),
                };
                if let Some(span) = span {
                    span.finish(rsp.status().as_u16());
                }
                if let Some(t) = tapped {
                    t.response(rsp.status().as_u16());
                }
                let rsp = crate::grpc_status::count(counters.clone(), rsp, started.elapsed());
                Ok::<_, std::convert::Infallible>(rsp)
            }
            .await?;
            Ok::<_, std::convert::Infallible>(crate::head_timeout::respond(clock.as_ref(), rsp))
        }
    });
    // HTTP/2 bounds its own frames: only HTTP/1 heads are timed here.
    match clock {
        None => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service);
            crate::drain::serve(conn, drain, |c| c.graceful_shutdown()).await
        }
        Some(clock) => {
            crate::head_timeout::serve_http1(io, clock, header_timeout, service, drain).await
        }
    }
}
