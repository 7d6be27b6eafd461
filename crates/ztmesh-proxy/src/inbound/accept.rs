//! Stage: accept inbound connections and run each through the stack.
//!
//! Per connection: read the first bytes (bounded by the detect timeout),
//! recognise mesh TLS for our own name and terminate it, read Linkerd's
//! transport header when negotiated, detect the protocol, authorize, and
//! forward to the application. Every outcome is one log line; errors end
//! the connection, never the proxy.

use super::authorize::ConnectionAuthz;
use super::detect_protocol::{MAX_REQUEST_LINE, Protocol, detect_protocol};
use super::detect_tls::{Detected, MAX_PEEK, detect};
use super::{forward, tls};
use crate::authz_metrics::Family;
use crate::metrics::{TcpMetrics, TlsLabel};
use crate::prefixed::{PrefixedIo, read_until};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Where accepted connections go.
#[derive(Clone, Copy, Debug)]
pub enum InboundTarget {
    /// Explicit mode: the application's address.
    App(SocketAddr),
    /// Transparent mode: the original destination iptables redirected.
    OriginalDst,
}

/// The inbound stack's parameters.
pub struct Inbound {
    pub local_name: String,
    pub target: InboundTarget,
    pub detect_timeout: Duration,
    pub tls: TlsAcceptor,
    /// Each port's policy (the default policy until the controller answers).
    pub policies: Arc<super::policy::Policies>,
    pub authz_metrics: Arc<crate::authz_metrics::AuthzMetrics>,
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    pub taps: Arc<crate::tap::Taps>,
    /// Ports forwarded as opaque TCP without protocol detection.
    pub opaque_ports: std::collections::BTreeSet<u16>,
    pub metrics: Arc<TcpMetrics>,
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
    /// Where connections may go: the pod's addresses, and the ports a
    /// transport header may not name.
    pub targets: super::transport::Targets,
    /// One keep-alive pool per application address.
    pub clients: std::sync::Mutex<std::collections::HashMap<SocketAddr, super::http::AppClients>>,
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("reading the first bytes: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Target(#[from] super::transport::TargetError),
    #[error("original destination: {0}")]
    OrigDst(std::io::Error),
    #[error("denied: {0}")]
    Denied(#[from] ztmesh_authz::Denial),
    #[error("terminated: the policy no longer admits the connection")]
    Terminated,
    #[error(transparent)]
    Forward(#[from] forward::ForwardError),
}

impl Inbound {
    /// Accepts until draining begins; each connection holds `drain` until
    /// it ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut drain: crate::drain::Watch) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = drain.signaled() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "inbound accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (this, drain) = (self.clone(), drain.clone());
            tokio::spawn(async move {
                if let Err(error) = this.handle(tcp, peer, drain).await {
                    tracing::info!(%peer, %error, "inbound connection closed");
                }
            });
        }
    }

    async fn handle(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        drain: crate::drain::Watch,
    ) -> Result<(), InboundError> {
        let (mut target, dialed) = match self.target {
            InboundTarget::App(addr) => (addr, tcp.local_addr().map_err(InboundError::OrigDst)?),
            InboundTarget::OriginalDst => {
                let orig = crate::orig_dst::original_dst(&tcp).map_err(InboundError::OrigDst)?;
                (orig, orig)
            }
        };
        self.targets.check_dialed(dialed)?;
        let mut first = Vec::new();
        let timed_out = match tokio::time::timeout(
            self.detect_timeout,
            read_until(&mut tcp, &mut first, MAX_PEEK, |b| {
                detect(b) != Detected::NeedMore
            }),
        )
        .await
        {
            Ok(read) => {
                read.map_err(InboundError::Read)?;
                false
            }
            // Silence: a server-speaks-first protocol, forwarded as opaque.
            Err(_) => true,
        };
        let io = PrefixedIo::new(first.clone(), tcp);
        if timed_out {
            let label = TlsLabel::NoIdentity {
                reason: "no_tls_from_remote",
            };
            return Box::pin(self.finish(
                io,
                peer,
                target,
                None,
                label,
                Some(Protocol::Opaque),
                drain,
            ))
            .await;
        }

        match detect(&first) {
            Detected::ClientHello { sni: Some(sni) } if sni == self.local_name => {
                // Later stages are boxed: a connection still waiting for its
                // first bytes keeps only the small detection state.
                let mut t = Box::pin(tls::terminate(&self.tls, io)).await?;
                if t.transport_header {
                    target = self
                        .targets
                        .read_header(
                            &mut t.stream,
                            t.client_id.as_deref(),
                            target,
                            self.detect_timeout,
                        )
                        .await?;
                }
                let label = match &t.client_id {
                    Some(id) => TlsLabel::Identified {
                        client_id: id.clone(),
                    },
                    None => TlsLabel::NoIdentity {
                        reason: "no_client_certificate",
                    },
                };
                Box::pin(self.finish(
                    t.stream,
                    peer,
                    target,
                    t.client_id.as_deref(),
                    label,
                    None,
                    drain,
                ))
                .await
            }
            // TLS for another name, plaintext, or garbage: passed on as it came.
            Detected::ClientHello { .. } => {
                Box::pin(self.finish(
                    io,
                    peer,
                    target,
                    None,
                    TlsLabel::NoIdentity { reason: "passthru" },
                    Some(Protocol::Opaque),
                    drain,
                ))
                .await
            }
            _ => {
                let label = TlsLabel::NoIdentity {
                    reason: "no_tls_from_remote",
                };
                Box::pin(self.finish(io, peer, target, None, label, None, drain)).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        io: I,
        peer: SocketAddr,
        target: SocketAddr,
        client_id: Option<&str>,
        label: TlsLabel,
        known: Option<Protocol>,
        drain: crate::drain::Watch,
    ) -> Result<(), InboundError> {
        let policy_rx = self.policies.watch(target.port());
        let server = self.policies.current(target.port()).await;
        // Opaque ports (configured, or by the port's Server) skip detection.
        let known = known.or_else(|| {
            (self.opaque_ports.contains(&target.port())
                || server.protocol == ztmesh_authz::Protocol::Opaque)
                .then_some(Protocol::Opaque)
        });
        let tls = matches!(
            label,
            TlsLabel::Identified { .. }
                | TlsLabel::NoIdentity {
                    reason: "no_client_certificate"
                }
        );
        let mut authz = ConnectionAuthz {
            policy: policy_rx,
            ip: peer.ip(),
            tls,
            identity: client_id.map(String::from),
            tls_label: label.clone(),
            target,
            metrics: self.authz_metrics.clone(),
            permit_labels: Default::default(),
        };
        // Protocol detection on the (decrypted) stream, bounded in time;
        // silence or a timeout means opaque.
        let mut io = io;
        let mut head = Vec::new();
        let protocol = match known {
            Some(p) => p,
            None => match tokio::time::timeout(
                self.detect_timeout,
                read_until(&mut io, &mut head, MAX_REQUEST_LINE, |b| {
                    detect_protocol(b).is_some()
                }),
            )
            .await
            {
                Ok(Ok(_)) => detect_protocol(&head).unwrap_or(Protocol::Opaque),
                Ok(Err(e)) => return Err(InboundError::Read(e)),
                Err(_) => Protocol::Opaque,
            },
        };
        tracing::debug!(%peer, %target, ?protocol, client = client_id.unwrap_or("-"), "inbound connection");
        let counters = self.metrics.open(
            "inbound",
            target,
            &label,
            &crate::metrics::server_labels(&server.kind, &server.name, target.port()),
        );
        if let Protocol::Http1 | Protocol::Http2 = protocol {
            let client = self
                .clients
                .lock()
                .expect("clients lock")
                .entry(target)
                .or_insert_with(|| super::http::app_clients(target))
                .clone();
            let io = crate::counted::Counted::new(PrefixedIo::new(head, io));
            let (read, written) = (io.read.clone(), io.written.clone());
            let result = super::http::serve(
                io,
                super::http::HttpConn {
                    http2: protocol == Protocol::Http2,
                    target,
                    tls: label,
                    metrics: self.http_metrics.clone(),
                    clients: client,
                    // A request head gets as long as detection did (slowloris).
                    header_timeout: self.detect_timeout,
                    authz: Arc::new(authz),
                    tracer: self.tracer.clone(),
                    taps: self.taps.clone(),
                    local_name: self.local_name.as_str().into(),
                    drain,
                },
            )
            .await;
            counters.close(
                read.load(std::sync::atomic::Ordering::Relaxed),
                written.load(std::sync::atomic::Ordering::Relaxed),
            );
            if let Err(error) = result {
                // hyper's own text is terse ("connection error"): the causes say what.
                let mut text = error.to_string();
                let mut cause = std::error::Error::source(&error);
                while let Some(c) = cause {
                    text.push_str(": ");
                    text.push_str(&c.to_string());
                    cause = c.source();
                }
                tracing::info!(%peer, error = %text, "HTTP connection ended with an error");
            }
            return Ok(());
        }
        // Opaque: the connection itself is authorized, and closed if a
        // policy update revokes it.
        authz.check_connection(Family::TcpDeny)?;
        let mut io = PrefixedIo::new(head, io);
        let result = tokio::select! {
            r = forward::forward(&mut io, target) => r,
            () = authz.revoked() => {
                counters.close(0, 0);
                return Err(InboundError::Terminated);
            }
        };
        match &result {
            Ok((read, written)) => counters.close(*read, *written),
            Err(forward::ForwardError::Copy(e)) => counters.close_with_error(0, 0, e),
            Err(_) => counters.close(0, 0),
        }
        result?;
        Ok(())
    }
}
