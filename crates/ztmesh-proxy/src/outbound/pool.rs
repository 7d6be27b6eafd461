//! Stage: HTTP connections to endpoints, kept and shared.
//!
//! Per endpoint and logical name (its connections are counted with the
//! name, as linkerd2-proxy's per-target stacks count theirs), an HTTP/2 client (one multiplexed connection, used for
//! HTTP/2 requests and for HTTP/1 requests upgraded with `l5d-orig-proto`
//! when the endpoint's protocol hint says h2) and an HTTP/1 keep-alive
//! pool (for endpoints without the hint and for protocol upgrades such as
//! WebSocket, which need a connection of their own). Connections are made
//! by [`connect`](super::connect::connect): plaintext or mTLS with the
//! endpoint's identity verified.

use super::connect::{ClientTls, Io, connect, tls_label};
use super::discover::Endpoint;
use crate::metrics::{TcpCounters, TcpMetrics};
use crate::proxy_http::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long an unused HTTP/2 connection to an endpoint is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) type EndpointClient = Client<EndpointConnector, Body>;

/// The two clients of one endpoint.
#[derive(Clone)]
pub(crate) struct Clients {
    pub(crate) http1: EndpointClient,
    pub(crate) http2: EndpointClient,
}

/// Clients by endpoint and logical name, shared by all of the proxy's
/// outbound connections.
pub(crate) struct Pool {
    tls: Arc<ClientTls>,
    metrics: Arc<TcpMetrics>,
    /// By endpoint, then name: a hit clones nothing.
    clients: Mutex<HashMap<Endpoint, HashMap<Option<Arc<str>>, Clients>>>,
}

impl Pool {
    pub(crate) fn new(tls: Arc<ClientTls>, metrics: Arc<TcpMetrics>) -> Self {
        Self {
            tls,
            metrics,
            clients: Mutex::default(),
        }
    }

    /// The clients of `endpoint` reached for the logical name `authority`.
    pub(crate) fn clients(&self, endpoint: &Endpoint, authority: Option<&Arc<str>>) -> Clients {
        let mut clients = self.clients.lock().expect("pool lock");
        if let Some(c) = clients
            .get(endpoint)
            .and_then(|by_name| by_name.get(&authority.cloned()))
        {
            return c.clone();
        }
        // Endpoints come and go with discovery; drop the clients of many
        // gone ones at once rather than track each (their connections close
        // when idle).
        if clients.len() >= 4096 {
            clients.clear();
        }
        let connector = EndpointConnector {
            endpoint: Arc::new(endpoint.clone()),
            authority: authority.cloned(),
            tls: self.tls.clone(),
            metrics: self.metrics.clone(),
        };
        let c = Clients {
            http1: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(crate::proxy_http::HTTP1_POOL_IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .build(connector.clone()),
            http2: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .pool_idle_timeout(IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_keep_alive_interval(Duration::from_secs(10))
                .http2_keep_alive_timeout(Duration::from_secs(3))
                .build(connector),
        };
        clients
            .entry(endpoint.clone())
            .or_default()
            .insert(authority.cloned(), c.clone());
        c
    }
}

/// Dials one endpoint, whatever URI the client asks for.
#[derive(Clone)]
pub(crate) struct EndpointConnector {
    endpoint: Arc<Endpoint>,
    authority: Option<Arc<str>>,
    tls: Arc<ClientTls>,
    metrics: Arc<TcpMetrics>,
}

impl tower::Service<http::Uri> for EndpointConnector {
    type Response = TokioIo<MeshConn>;
    type Error = super::connect::ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let (endpoint, tls, metrics, authority) = (
            self.endpoint.clone(),
            self.tls.clone(),
            self.metrics.clone(),
            self.authority.clone(),
        );
        Box::pin(async move {
            let connected = connect(&endpoint, &tls).await?;
            Ok(TokioIo::new(MeshConn {
                io: connected.io,
                counters: metrics.open_outbound(
                    authority.as_deref(),
                    endpoint.addr,
                    &tls_label(&endpoint),
                    &endpoint.labels,
                ),
                read: 0,
                written: 0,
            }))
        })
    }
}

/// A connection to an endpoint, plaintext or mTLS, counted in the
/// outbound transport metrics until it closes.
pub(crate) struct MeshConn {
    io: Box<dyn Io>,
    counters: Arc<TcpCounters>,
    read: u64,
    written: u64,
}

impl Drop for MeshConn {
    fn drop(&mut self) {
        self.counters.close(self.read, self.written);
    }
}

impl Connection for MeshConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MeshConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        poll
    }
}

impl AsyncWrite for MeshConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.written += n as u64;
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.written += n as u64;
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
