//! Stage: accept the application's outbound connections.
//!
//! Transparent mode: iptables redirected the connection here and its
//! original destination is the target. The protocol is detected (bounded
//! by the detect timeout; silence means opaque): HTTP/1 and HTTP/2 go to
//! the [`HttpOutbound`] router request by request; anything else is piped
//! to one endpoint, and a failure resets the connection.
//!
//! Explicit mode: the application uses this port as its HTTP proxy
//! (`HTTP_PROXY`). Absolute-form requests (`GET http://host:port/path`) are
//! routed like transparent HTTP; `CONNECT host:port` opens a tunnel for
//! any protocol, answering 502 / 503 / 504 with `l5d-proxy-error` when the
//! target cannot be reached.

use super::connect::{ConnectError, connect, tls_label};
use super::discover::DiscoverError;
use super::http::{Dst, HEAD_TIMEOUT, HttpOutbound, discovery_status};
use crate::inbound::detect_protocol::{MAX_REQUEST_LINE, Protocol, detect_protocol};
use crate::inbound::http::{Body, proxy_error};
use crate::metrics::TcpMetrics;
use crate::prefixed::{PrefixedIo, read_until};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};

pub struct Outbound {
    pub http: Arc<HttpOutbound>,
    pub tls: Arc<super::connect::ClientTls>,
    pub metrics: Arc<TcpMetrics>,
    pub detect_timeout: Duration,
    /// The application's uids (`ZTMESH_PROXY_APP_UID`); empty: anyone
    /// who can reach the listener is served.
    pub app_uids: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("original destination: {0}")]
    OrigDst(std::io::Error),
    #[error("reading the first bytes: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("copying: {0}")]
    Copy(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("{}", super::http::loopback_refused(*.0))]
    LoopbackOutsideMesh(std::net::SocketAddr),
    #[error("refused: the connecting socket's owner is unknown: {0}")]
    Owner(#[from] crate::sock_owner::OwnerError),
    #[error(
        "refused: the connecting process runs as uid {uid}, not as the application's ({allowed:?}, ZTMESH_PROXY_APP_UID)"
    )]
    ForeignUid { uid: u32, allowed: Vec<u32> },
}

impl Outbound {
    /// Accepts connections until the listener fails for good.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        transparent: bool,
        mut drain: crate::drain::Watch,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = drain.signaled() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "outbound accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if let Err(error) = self.admit(&tcp, peer) {
                tracing::warn!(%peer, %error, "outbound connection refused");
                continue;
            }
            let (this, drain) = (self.clone(), drain.clone());
            tokio::spawn(async move {
                let result = if transparent {
                    this.transparent(tcp, drain).await
                } else {
                    this.explicit(tcp, drain).await
                };
                if let Err(error) = result {
                    tracing::info!(%peer, transparent, %error, "outbound connection failed");
                }
            });
        }
    }

    /// Only the application's own processes may use this proxy, when its
    /// uids are configured: the kernel says who owns the client's socket.
    fn admit(&self, tcp: &TcpStream, peer: std::net::SocketAddr) -> Result<(), OutboundError> {
        if self.app_uids.is_empty() {
            return Ok(());
        }
        let local = tcp.local_addr().map_err(OutboundError::Read)?;
        let uid = crate::sock_owner::peer_uid(peer, local)?;
        if self.app_uids.contains(&uid) {
            Ok(())
        } else {
            Err(OutboundError::ForeignUid {
                uid,
                allowed: self.app_uids.clone(),
            })
        }
    }

    async fn transparent(
        &self,
        mut client: TcpStream,
        drain: crate::drain::Watch,
    ) -> Result<(), OutboundError> {
        let target = crate::orig_dst::original_dst(&client).map_err(OutboundError::OrigDst)?;
        // An opaque port skips detection (a server-speaks-first protocol
        // would otherwise wait out the detect timeout). A discovery failure
        // here is met again, and answered, by the stage that needs it.
        let opaque = matches!(
            self.http.discover.endpoints(&target.to_string()).await,
            Ok(r) if r.opaque_protocol
        );
        if opaque {
            return self.tunnel(client, &target.to_string()).await;
        }
        let mut head = Vec::new();
        let read = tokio::time::timeout(
            self.detect_timeout,
            read_until(&mut client, &mut head, MAX_REQUEST_LINE, |b| {
                detect_protocol(b).is_some()
            }),
        )
        .await;
        if let Ok(Err(e)) = read {
            return Err(OutboundError::Read(e));
        }
        let io = PrefixedIo::new(head.clone(), client);
        match detect_protocol(&head) {
            // Boxed, so a connection still in detection stays small.
            Some(p @ (Protocol::Http1 | Protocol::Http2)) => {
                Box::pin(self.http.clone().serve(
                    io,
                    p == Protocol::Http2,
                    Dst::OrigDst(target),
                    drain,
                ))
                .await?;
                Ok(())
            }
            _ => Box::pin(self.tunnel(io, &target.to_string())).await,
        }
    }

    async fn explicit(
        self: &Arc<Self>,
        client: TcpStream,
        drain: crate::drain::Watch,
    ) -> Result<(), OutboundError> {
        let this = self.clone();
        let cache = Arc::new(crate::metrics::StatsCache::default());
        let clock = crate::head_timeout::HeadClock::default();
        let service_clock = clock.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (this, cache, clock) = (this.clone(), cache.clone(), service_clock.clone());
            async move {
                clock.request();
                let rsp = if req.method() == Method::CONNECT {
                    let rsp = this.connect(req).await;
                    if rsp.status().is_success() {
                        clock.upgraded();
                    }
                    rsp
                } else {
                    this.http.route(req, Dst::AbsoluteUri, &cache).await
                };
                Ok::<_, std::convert::Infallible>(crate::head_timeout::respond(Some(&clock), rsp))
            }
        });
        crate::head_timeout::serve_http1(client, clock, HEAD_TIMEOUT, service, drain).await?;
        Ok(())
    }

    /// `CONNECT host:port`: connect first, then answer 200 and tunnel.
    async fn connect(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                format!("CONNECT needs host:port, not {:?}", req.uri().to_string()),
            );
        };
        let server = match self.open(&authority, true).await {
            Ok(s) => s,
            Err(e) => {
                let status = match &e {
                    OutboundError::Discover(d) => discovery_status(d),
                    OutboundError::LoopbackOutsideMesh(_) => StatusCode::FORBIDDEN,
                    OutboundError::Connect(ConnectError::Timeout { .. }) => {
                        StatusCode::GATEWAY_TIMEOUT
                    }
                    _ => StatusCode::BAD_GATEWAY,
                };
                // The client wanted a tunnel, not this connection: close it.
                let mut rsp = proxy_error(status, e.to_string());
                rsp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                return rsp;
            }
        };
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    if let Err(error) = self.pipe(TokioIo::new(upgraded), server).await {
                        tracing::info!(%authority, %error, "CONNECT tunnel failed");
                    }
                }
                Err(error) => tracing::info!(%authority, %error, "CONNECT was not upgraded"),
            }
        });
        Response::new(Body::default())
    }

    /// Opaque TCP to one endpoint of `authority`.
    async fn tunnel<I>(&self, client: I, authority: &str) -> Result<(), OutboundError>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let server = self.open(authority, false).await?;
        self.pipe(client, server).await
    }

    /// A connection to one endpoint of `authority`; `explicit`: for the
    /// application's CONNECT, which may not reach local services outside
    /// the mesh.
    async fn open(&self, authority: &str, explicit: bool) -> Result<Opened, OutboundError> {
        let resolution = self.http.discover.endpoints(authority).await?;
        if let (true, Some(addr)) = (explicit, resolution.loopback_outside_mesh()) {
            return Err(OutboundError::LoopbackOutsideMesh(addr));
        }
        let endpoints = &resolution.endpoints;
        let (endpoint, _) =
            self.http
                .balancer
                .pick(endpoints, |e| e.addr, |n| fastrand::usize(..n));
        let connected = connect(endpoint, &self.tls).await?;
        tracing::debug!(%authority, endpoint = %endpoint.addr, server_id = connected.server_id.as_deref().unwrap_or("-"), "outbound connection");
        Ok(Opened {
            io: connected.io,
            counters: self.metrics.open(
                "outbound",
                endpoint.addr,
                &tls_label(endpoint),
                &crate::metrics::PolicyLabels::NONE,
            ),
        })
    }

    async fn pipe<I>(&self, mut client: I, mut server: Opened) -> Result<(), OutboundError>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let result = copy_bidirectional(&mut client, &mut server.io).await;
        match &result {
            Ok((sent, received)) => server.counters.close(*received, *sent),
            Err(e) => server.counters.close_with_error(0, 0, e),
        }
        result.map(|_| ()).map_err(OutboundError::Copy)
    }
}

struct Opened {
    io: Box<dyn super::connect::Io>,
    counters: Arc<crate::metrics::TcpCounters>,
}
