//! Stage: accept inbound connections and run each through the stack.
//!
//! Per connection: the dialed address must be the pod's; then read the
//! first bytes (bounded by the detect timeout) and classify the client's
//! TLS ([`ClientTls`]): mesh TLS for our own name is terminated (then
//! Linkerd's transport header is read when negotiated), TLS for another
//! name is passed through as opaque, anything else is plaintext. Then the
//! protocol is detected on the (decrypted) stream, and only then is the
//! connection authorized: opaque streams once, as a whole, before they are
//! forwarded to the application; HTTP connections request by request.
//! Every outcome is one log line; errors end the connection, never the
//! proxy.

use super::authorize::ConnectionAuthz;
use super::detect_protocol::{MAX_REQUEST_LINE, Protocol, detect_protocol};
use super::detect_tls::{Detected, MAX_PEEK, detect};
use super::tls::{ClientTls, NoTlsReason};
use super::{forward, tls};
use crate::authz_metrics::Family;
use crate::metrics::TcpMetrics;
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

/// The inbound stack, made by [`super::InboundBuilder`].
pub struct Inbound {
    pub(super) local_name: String,
    pub(super) target: InboundTarget,
    pub(super) detect_timeout: Duration,
    pub(super) tls: TlsAcceptor,
    /// What verifies clients; names a federated client by its SPIFFE ID.
    pub(super) trust: Option<Arc<ztmesh_tls::Trust>>,
    /// Each port's policy (the default policy until the controller answers).
    pub(super) policies: Arc<super::policy::Policies>,
    pub(super) authz_metrics: Arc<crate::authz_metrics::AuthzMetrics>,
    pub(super) tracer: Option<Arc<crate::trace::Tracer>>,
    pub(super) taps: Arc<crate::tap::Taps>,
    /// Request series carry the logical authority ([`super::InboundBuilder::authority_labels`]).
    pub(super) authority_labels: bool,
    /// Ports forwarded as opaque TCP without protocol detection.
    pub(super) opaque_ports: std::collections::BTreeSet<u16>,
    pub(super) metrics: Arc<TcpMetrics>,
    pub(super) http_metrics: Arc<crate::metrics::HttpMetrics>,
    /// Where connections may go: the pod's addresses, and the ports a
    /// transport header may not name.
    pub(super) targets: super::transport::Targets,
    /// One keep-alive pool per application address.
    pub(super) clients:
        std::sync::Mutex<std::collections::HashMap<SocketAddr, super::http::AppClients>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InboundError {
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
        let detected = (!timed_out).then(|| detect(&first));
        let io = PrefixedIo::new(first, tcp);
        // Later stages are boxed: a connection still waiting for its first
        // bytes keeps only the small detection state.
        match detected {
            Some(Detected::ClientHello { sni: Some(sni) }) if sni == self.local_name => {
                let mut t = Box::pin(tls::terminate(&self.tls, self.trust.as_deref(), io)).await?;
                if t.transport_header {
                    target = self
                        .targets
                        .read_header(
                            &mut t.stream,
                            t.client_id.as_ref(),
                            target,
                            self.detect_timeout,
                        )
                        .await?;
                }
                let client = ClientTls::Terminated {
                    client_id: t.client_id,
                };
                Box::pin(self.finish(t.stream, peer, target, client, None, drain)).await
            }
            // TLS for another name: passed on as it came, as opaque.
            Some(Detected::ClientHello { sni }) => {
                let client = ClientTls::Passthrough { sni };
                Box::pin(self.finish(io, peer, target, client, Some(Protocol::Opaque), drain)).await
            }
            // Plaintext or garbage: passed on as it came.
            Some(Detected::NotTls | Detected::NeedMore) => {
                let client = ClientTls::Plaintext(NoTlsReason::NotTls);
                Box::pin(self.finish(io, peer, target, client, None, drain)).await
            }
            // Silence: a server-speaks-first protocol, forwarded as opaque.
            None => {
                let client = ClientTls::Plaintext(NoTlsReason::Silent);
                Box::pin(self.finish(io, peer, target, client, Some(Protocol::Opaque), drain)).await
            }
        }
    }

    async fn finish<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        io: I,
        peer: SocketAddr,
        target: SocketAddr,
        client: ClientTls,
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
        let mut authz = ConnectionAuthz::new(
            policy_rx,
            peer.ip(),
            client,
            target,
            self.authz_metrics.clone(),
        )
        .with_federation(self.trust.as_ref());
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
        tracing::debug!(%peer, %target, ?protocol, client = %authz.client(), "inbound connection");
        let counters = self.metrics.open_inbound(
            target,
            authz.tls_label(),
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
                    peer,
                    target,
                    authority_labels: self.authority_labels,
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
