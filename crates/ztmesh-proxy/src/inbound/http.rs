//! Stage (HTTP): serve the detected HTTP/1 or HTTP/2 connection and send
//! each request to the application over a keep-alive pool, counting it.
//!
//! `request_total` and `response_total{status_code,classification}` carry
//! the connection's labels (direction, authority, target, TLS and client
//! identity), as linkerd2-proxy's do, so who talked to whom is visible per
//! request. An unreachable application answers 502 with `l5d-proxy-error`.

use crate::metrics::{HttpMetrics, TlsLabel};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// A pooled HTTP/1 client that always dials the application's address.
pub type AppClient = Client<AppConnector, Incoming>;

#[derive(Clone)]
pub struct AppConnector {
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

pub fn app_client(target: SocketAddr) -> AppClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(AppConnector { target })
}

fn proxy_error(status: StatusCode, reason: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("l5d-proxy-error", reason.replace(['\r', '\n'], " "))
        .body(
            Full::new(Bytes::from(reason + "\n"))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("a valid response")
}

/// Serves one detected HTTP connection until it closes.
pub async fn serve<I>(
    io: I,
    http2: bool,
    target: SocketAddr,
    tls: TlsLabel,
    metrics: Arc<HttpMetrics>,
    client: AppClient,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (client, metrics, tls) = (client.clone(), metrics.clone(), tls.clone());
        async move {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(String::from)
                })
                .unwrap_or_default();
            let counters = metrics.request("inbound", &authority, target, &tls);
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            *req.uri_mut() = format!("http://{target}{path}")
                .parse()
                .expect("a valid URI");
            *req.version_mut() = http::Version::HTTP_11;
            let rsp = match client.request(req).await {
                Ok(rsp) => rsp.map(|b| b.boxed()),
                Err(error) => proxy_error(
                    StatusCode::BAD_GATEWAY,
                    format!("the application at {target} failed: {error}"),
                ),
            };
            counters.response(rsp.status().as_u16());
            Ok::<_, std::convert::Infallible>(rsp)
        }
    });
    let io = TokioIo::new(io);
    if http2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .serve_connection(io, service)
            .with_upgrades()
            .await
    }
}
