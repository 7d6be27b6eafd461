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
//! any protocol; a target that cannot be reached is answered by the
//! outbound error edge ([`super::error::rescue`]), and the connection closed.

use super::connect::{connect, tls_label};
use super::error::{Caller, Failure, rescue};
use super::http::{Dst, HEAD_TIMEOUT, HttpOutbound};
use crate::inbound::detect_protocol::{MAX_REQUEST_LINE, Protocol, detect_protocol};
use crate::metrics::TcpMetrics;
use crate::prefixed::{PrefixedIo, read_until};
use crate::proxy_http::Body;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};

/// The outbound stack's listener side (built by `OutboundBuilder`).
pub struct Outbound {
    pub(crate) http: Arc<HttpOutbound>,
    pub(crate) tls: Arc<super::connect::ClientTls>,
    pub(crate) metrics: Arc<TcpMetrics>,
    pub(crate) detect_timeout: Duration,
    /// The application's uids (`ZTMESH_PROXY_APP_UID`); empty: anyone
    /// who can reach the listener is served.
    pub(crate) app_uids: Vec<u32>,
}

/// Why an outbound connection ended in error (logged: the application
/// sees a reset, or, for HTTP, the answers of [`super::error::rescue`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboundError {
    #[error("original destination: {0}")]
    OrigDst(std::io::Error),
    #[error("reading the first bytes: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Open(#[from] Failure),
    #[error("copying: {0}")]
    Copy(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("refused: the connecting socket's owner is unknown: {0}")]
    Owner(#[from] crate::sock_owner::OwnerError),
    #[error(
        "refused: the connecting process runs as uid {uid}, not as the application's ({allowed:?}, ZTMESH_PROXY_APP_UID)"
    )]
    ForeignUid { uid: u32, allowed: Vec<u32> },
}

impl Outbound {
    /// The HTTP router (to route requests without a listener, as tests do).
    pub fn http(&self) -> &Arc<HttpOutbound> {
        &self.http
    }

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
        let peer = client.peer_addr().ok();
        // An opaque port skips detection (a server-speaks-first protocol
        // would otherwise wait out the detect timeout). A discovery failure
        // here is met again, and answered, by the stage that needs it.
        let opaque = matches!(
            self.http.discovery.resolve(&target.to_string()).await,
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
                    peer,
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
        let peer = client.peer_addr().ok();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let (this, cache, clock) = (this.clone(), cache.clone(), service_clock.clone());
            if let Some(peer) = peer
                && this.http.router.forward.taps.is_active()
            {
                req.extensions_mut()
                    .insert(crate::proxy_http::ClientAddr(peer));
            }
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
            let failure = Failure::ConnectWithoutAuthority {
                uri: req.uri().to_string(),
            };
            return rescue(&failure, Caller::Http);
        };
        let server = match self.open(&authority, true).await {
            Ok(s) => s,
            // The client wanted a tunnel, not this connection: close it.
            Err(failure) => return rescue(&failure, Caller::Connect),
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
    async fn open(&self, authority: &str, explicit: bool) -> Result<Opened, Failure> {
        let resolution = self.http.discovery.resolve(authority).await?;
        if let (true, Some(addr)) = (explicit, resolution.loopback_outside_mesh()) {
            return Err(Failure::LoopbackOutsideMesh(addr));
        }
        let endpoints = &resolution.endpoints;
        let (endpoint, _) =
            self.http
                .router
                .forward
                .balancer
                .pick(endpoints, |e| e.addr, |n| fastrand::usize(..n));
        let connected = connect(endpoint, &self.tls).await?;
        tracing::debug!(%authority, endpoint = %endpoint.addr, server_id = connected.server_id.as_deref().unwrap_or("-"), "outbound connection");
        Ok(Opened {
            io: connected.io,
            counters: self.metrics.open_outbound(
                resolution.logical.as_deref(),
                endpoint.addr,
                &tls_label(endpoint),
                &endpoint.labels,
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
