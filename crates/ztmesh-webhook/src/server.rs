//! The HTTPS server: TLS (the handshake within [`Limits::handshake`]),
//! HTTP/2 or HTTP/1.1 (the first request, and every HTTP/1.1 request
//! head, within [`Limits::read`]), `POST`
//! only, a body of at most [`Limits::max_body`] bytes read within
//! [`Limits::read`] (else 413 or 408), then [`Webhook::handle`].

use crate::handler::{Reply, Webhook};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The server's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest request body (the API server's objects are at most a
    /// few MiB).
    pub max_body: usize,
    /// For a request head, and for the whole body.
    pub read: Duration,
    /// For the TLS handshake.
    pub handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 8 << 20,
            read: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
        }
    }
}

/// Serves `webhook` on `listener` until `shutdown` completes (connections
/// open then are left to finish on their own).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    webhook: Arc<Webhook>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "webhook: accept failed");
                    // e.g. out of file descriptors: don't spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "webhook: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook: TLS handshake timed out");
                    return;
                }
            };
            // Set by the first request: a connection that sends none within
            // `limits.read` is dropped (the protocol is chosen from the
            // first bytes, which nothing else waits for with a deadline).
            let first = Arc::new(tokio::sync::Notify::new());
            let seen = first.clone();
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                seen.notify_one();
                let webhook = webhook.clone();
                async move {
                    let reply = answer(&webhook, req, limits).await;
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(reply.status)
                            .header("content-type", reply.content_type)
                            .body(Full::new(Bytes::from(reply.body)))
                            .expect("a valid response"),
                    )
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)));
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = &mut conn => result,
                waited = tokio::time::timeout(limits.read, first.notified()) => match waited {
                    Ok(()) => conn.await,
                    Err(_) => {
                        tracing::debug!(%peer, "webhook: no request in time; connection closed");
                        return;
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "webhook: connection ended");
            }
        });
    }
}

async fn answer(webhook: &Webhook, req: hyper::Request<Incoming>, limits: Limits) -> Reply {
    if req.method() != hyper::Method::POST {
        return Reply::text(405, "method not allowed: POST /inject or /validate");
    }
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body as u64) {
        return too_large(limits);
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = Limited::new(req.into_body(), limits.max_body).collect();
    let body = match tokio::time::timeout(limits.read, body).await {
        Err(_) => return Reply::text(408, "the request body took too long"),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return too_large(limits);
        }
        Ok(Err(error)) => return Reply::text(400, format!("reading the body: {error}")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    webhook.handle(&path, &body).await
}

fn too_large(limits: Limits) -> Reply {
    Reply::text(
        413,
        format!("the request body is larger than {} bytes", limits.max_body),
    )
}
