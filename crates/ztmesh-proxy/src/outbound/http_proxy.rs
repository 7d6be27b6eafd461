//! Stage (explicit mode): the application's HTTP proxy.
//!
//! The application reaches other workloads through `HTTP_PROXY` pointing at
//! the outbound port. `CONNECT host:port` opens a tunnel (any protocol);
//! an absolute-form request (`GET http://host:port/path HTTP/1.1`) is sent
//! on in origin form, and the rest of that connection follows it. The
//! target is discovered, then dialled (mTLS when meshed). Failures answer
//! 502/504 with an `l5d-proxy-error` header naming the cause.

use super::connect::{Connected, connect};
use super::discover::{Discover, DiscoverError, Endpoint};
use crate::metrics::{TcpMetrics, TlsLabel};
use crate::prefixed::{PrefixedIo, read_until};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head accepted, and the time allowed to send it.
pub const MAX_HEAD: usize = 16 * 1024;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

pub struct OutboundProxy {
    pub discover: Discover,
    pub tls: super::connect::ClientTls,
    pub metrics: Arc<TcpMetrics>,
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
    pub detect_timeout: Duration,
    next: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("reading the request head: {0}")]
    Read(std::io::Error),
    #[error("no complete request head within {HEAD_TIMEOUT:?} or {MAX_HEAD} bytes")]
    Head,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Connect(#[from] super::connect::ConnectError),
    #[error("resolving {0}: {1}")]
    Dns(String, std::io::Error),
    #[error("copying: {0}")]
    Copy(std::io::Error),
}

impl OutboundError {
    fn status(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::Head => "400 Bad Request",
            Self::Discover(DiscoverError::Timeout) => "504 Gateway Timeout",
            Self::Connect(super::connect::ConnectError::Timeout { .. }) => "504 Gateway Timeout",
            Self::Discover(DiscoverError::NoEndpoints(_)) => "503 Service Unavailable",
            _ => "502 Bad Gateway",
        }
    }
}

impl OutboundProxy {
    pub fn new(
        discover: Discover,
        tls: super::connect::ClientTls,
        metrics: Arc<TcpMetrics>,
        http_metrics: Arc<crate::metrics::HttpMetrics>,
        detect_timeout: Duration,
    ) -> Self {
        Self {
            discover,
            tls,
            metrics,
            http_metrics,
            detect_timeout,
            next: AtomicUsize::new(0),
        }
    }

    /// Explicit mode: the application's HTTP proxy.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.accept(listener, false).await
    }

    /// Transparent mode: iptables redirected the connection here; its
    /// original destination is the target. HTTP/1 is served request by
    /// request (502/504 with `l5d-proxy-error` on failure); anything else is
    /// piped, and a failure resets the connection.
    pub async fn serve_transparent(self: Arc<Self>, listener: TcpListener) {
        self.accept(listener, true).await
    }

    async fn accept(self: Arc<Self>, listener: TcpListener, transparent: bool) {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let this = self.clone();
            tokio::spawn(async move {
                let result = if transparent {
                    this.transparent(tcp).await
                } else {
                    this.handle(tcp).await
                };
                if let Err(error) = result {
                    tracing::info!(%peer, transparent, %error, "outbound connection failed");
                }
            });
        }
    }

    async fn transparent(&self, mut client: TcpStream) -> Result<(), OutboundError> {
        use crate::inbound::detect_protocol::{MAX_REQUEST_LINE, Protocol, detect_protocol};
        let target = crate::orig_dst::original_dst(&client).map_err(OutboundError::Read)?;
        // Detect first (bounded; silence means opaque) so an HTTP client can
        // be answered with an HTTP error.
        let mut head = Vec::new();
        let done = |b: &[u8]| {
            detect_protocol(b).is_some()
                && (detect_protocol(b) != Some(Protocol::Http1)
                    || b.windows(4).any(|w| w == b"\r\n\r\n"))
        };
        let _ = tokio::time::timeout(
            self.detect_timeout,
            read_until(&mut client, &mut head, MAX_REQUEST_LINE, done),
        )
        .await;
        let http1 =
            detect_protocol(&head) == Some(Protocol::Http1) && !super::http::wants_upgrade(&head);
        let mut server = match self.open(&target.to_string()).await {
            Ok(s) => s,
            Err(e) if http1 => return refuse(&mut client, e).await,
            Err(e) => return Err(e),
        };
        if !http1 {
            return self
                .pipe(
                    PrefixedIo::new(head, client),
                    &mut server,
                    &target.to_string(),
                )
                .await;
        }
        let (connected, endpoint) = server;
        let label = match &connected.server_id {
            Some(id) => TlsLabel::ServerIdentified {
                server_id: id.clone(),
            },
            None => TlsLabel::NoIdentity {
                reason: "not_provided_by_service_discovery",
            },
        };
        let counters = self.metrics.open("outbound", endpoint, &label);
        let io = crate::counted::Counted::new(PrefixedIo::new(head, client));
        let (read, written) = (io.read.clone(), io.written.clone());
        let result =
            super::http::serve(io, connected.io, endpoint, label, self.http_metrics.clone()).await;
        counters.close(
            read.load(Ordering::Relaxed),
            written.load(Ordering::Relaxed),
        );
        if let Err(error) = result {
            tracing::debug!(%error, "outbound HTTP connection ended with an error");
        }
        Ok(())
    }

    async fn handle(&self, mut client: TcpStream) -> Result<(), OutboundError> {
        let mut head = Vec::new();
        let done = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
        match tokio::time::timeout(
            HEAD_TIMEOUT,
            read_until(&mut client, &mut head, MAX_HEAD, done),
        )
        .await
        {
            Ok(Ok(_)) if done(&head) => {}
            Ok(Err(e)) => return Err(OutboundError::Read(e)),
            _ => return refuse(&mut client, OutboundError::Head).await,
        }
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("checked")
            + 4;
        let line_end = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a head has a line");
        let line = String::from_utf8_lossy(&head[..line_end]).into_owned();
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return refuse(
                &mut client,
                OutboundError::BadRequest(format!("malformed request line {line:?}")),
            )
            .await;
        };
        if method == "CONNECT" {
            let authority = target.to_string();
            let rest = head[end..].to_vec();
            let mut server = match self.open(&authority).await {
                Ok(s) => s,
                Err(e) => return refuse(&mut client, e).await,
            };
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .map_err(OutboundError::Copy)?;
            return self
                .pipe(PrefixedIo::new(rest, client), &mut server, &authority)
                .await;
        }
        let Some(rest) = target.strip_prefix("http://") else {
            let e = OutboundError::BadRequest(format!(
                "{target:?} is not absolute-form; this is an HTTP proxy: send http://host:port/path or CONNECT host:port"
            ));
            return refuse(&mut client, e).await;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let mut server = match self.open(&authority).await {
            Ok(s) => s,
            Err(e) => return refuse(&mut client, e).await,
        };
        let mut rewritten = format!("{method} {path} {version}").into_bytes();
        rewritten.extend_from_slice(&head[line_end..]);
        self.pipe(PrefixedIo::new(rewritten, client), &mut server, &authority)
            .await
    }

    /// Discovers and connects to one endpoint of `authority`.
    async fn open(&self, authority: &str) -> Result<(Connected, SocketAddr), OutboundError> {
        let endpoints = match self.discover.resolve(authority).await {
            Ok(e) => e,
            // Not a service the mesh knows: plain TCP to what DNS says.
            Err(DiscoverError::Unknown(_)) => {
                let addr = tokio::net::lookup_host(authority)
                    .await
                    .map_err(|e| OutboundError::Dns(authority.into(), e))?
                    .next()
                    .ok_or_else(|| {
                        OutboundError::Dns(authority.into(), std::io::ErrorKind::NotFound.into())
                    })?;
                vec![Endpoint {
                    addr,
                    tls: None,
                    opaque_transport: None,
                }]
            }
            Err(e) => return Err(e.into()),
        };
        if endpoints.is_empty() {
            return Err(DiscoverError::NoEndpoints(authority.into()).into());
        }
        // Round robin for now; peak-EWMA balancing is part of the HTTP stack to come.
        let endpoint = &endpoints[self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len()];
        let connected = connect(endpoint, &self.tls).await?;
        Ok((connected, endpoint.addr))
    }

    async fn pipe(
        &self,
        mut client: PrefixedIo<TcpStream>,
        server: &mut (Connected, SocketAddr),
        authority: &str,
    ) -> Result<(), OutboundError> {
        let (connected, addr) = server;
        let label = match &connected.server_id {
            Some(id) => TlsLabel::ServerIdentified {
                server_id: id.clone(),
            },
            None => TlsLabel::NoIdentity {
                reason: "not_provided_by_service_discovery",
            },
        };
        tracing::debug!(%authority, endpoint = %addr, server_id = connected.server_id.as_deref().unwrap_or("-"), "outbound connection");
        let counters = self.metrics.open("outbound", *addr, &label);
        let result = copy_bidirectional(&mut client, &mut connected.io).await;
        let (sent, received) = result.as_ref().map(|c| *c).unwrap_or((0, 0));
        counters.close(received, sent);
        result.map(|_| ()).map_err(OutboundError::Copy)
    }
}

async fn refuse(client: &mut TcpStream, error: OutboundError) -> Result<(), OutboundError> {
    let reason = error.to_string().replace(['\r', '\n'], " ");
    let response = format!(
        "HTTP/1.1 {}\r\nl5d-proxy-error: {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reason}\n",
        error.status(),
        reason.len() + 1
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
    Err(error)
}
