//! Stage (transparent outbound, HTTP/1): serve the application's requests
//! with hyper and send each over one HTTP/1 connection on the (m)TLS
//! stream to the endpoint, counting them with the server's identity. A
//! failed request answers 502 with `l5d-proxy-error`. Connections asking
//! for an upgrade (WebSocket) and other protocols are piped as bytes.

use crate::inbound::http::proxy_error;
use crate::metrics::{HttpMetrics, TlsLabel};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Whether a request head asks to switch protocols (WebSocket and the like).
pub fn wants_upgrade(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("upgrade:"))
}

pub async fn serve<C, U>(
    client: C,
    upstream: U,
    endpoint: SocketAddr,
    tls: TlsLabel,
    metrics: Arc<HttpMetrics>,
) -> Result<(), hyper::Error>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "outbound HTTP connection ended");
        }
    });
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (sender, metrics, tls) = (sender.clone(), metrics.clone(), tls.clone());
        async move {
            let authority = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
                .unwrap_or_default();
            let counters = metrics.request("outbound", &authority, endpoint, &tls);
            let result = {
                let mut sender = sender.lock().await;
                match sender.ready().await {
                    Ok(()) => sender.send_request(req).await,
                    Err(e) => Err(e),
                }
            };
            let rsp = match result {
                Ok(rsp) => rsp.map(|b| b.boxed()),
                Err(error) => proxy_error(
                    StatusCode::BAD_GATEWAY,
                    format!("the request to {endpoint} failed: {error}"),
                ),
            };
            counters.response(rsp.status().as_u16());
            Ok::<_, std::convert::Infallible>(rsp)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(TokioIo::new(client), service)
        .await
}
