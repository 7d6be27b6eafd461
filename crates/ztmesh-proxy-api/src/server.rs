//! Serving a control-plane router: plaintext on loopback, TLS elsewhere.
//!
//! The choice is made per accepted connection from the address it was
//! accepted on, so one listener bound to 0.0.0.0 serves local clients in
//! plaintext and remote ones over TLS with the controller's identity. TLS
//! handshakes run in their own tasks, bounded by a timeout, so a stalled
//! client never blocks the accept loop.

use crate::conn::Conn;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, Router, TcpConnectInfo};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection accepted by [`serve`].
pub type ServerConn = Conn<tokio_rustls::server::TlsStream<TcpStream>>;

/// Whether an address counts as loopback (IPv4-mapped IPv6 included).
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let acceptor = TlsAcceptor::from(tls);
    serve_accepted(listener, router, shutdown, move |tcp, peer, tx| {
        let local_loopback = tcp
            .local_addr()
            .map(|a| is_loopback(a.ip()))
            .unwrap_or(false);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if local_loopback {
                let _ = tx.send(Ok(Conn::Plain(tcp))).await;
                return;
            }
            if let Some(tls) = handshake(&acceptor, tcp, peer).await {
                let _ = tx.send(Ok(Conn::Tls(Box::new(tls)))).await;
            }
        });
    })
    .await
}

/// Serves `router` only over mTLS, and only to clients whose certificate
/// names `allowed` (the proxy's Tap API, for the controller's tap
/// identity): plaintext, no certificate or another identity are refused at
/// the handshake's end, with a log line.
pub async fn serve_mtls_only(
    listener: TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    allowed: String,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let acceptor = TlsAcceptor::from(tls);
    serve_accepted(listener, router, shutdown, move |tcp, peer, tx| {
        let (acceptor, allowed) = (acceptor.clone(), allowed.clone());
        tokio::spawn(async move {
            let Some(tls) = handshake(&acceptor, tcp, peer).await else {
                return;
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(ztmesh_tls::peer_identity);
            if client.as_deref() != Some(allowed.as_str()) {
                return tracing::info!(%peer, client = client.as_deref().unwrap_or("-"), %allowed, "refused: only the tap identity may connect");
            }
            let _ = tx.send(Ok(Conn::Tls(Box::new(tls)))).await;
        });
    })
    .await
}

/// A TLS handshake bounded by [`HANDSHAKE_TIMEOUT`]; failures are logged.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out after 10s");
            None
        }
    }
}

/// The accept loop both listeners share: each accepted connection is
/// handed to `handle`, which sends the ones to serve on `tx`.
async fn serve_accepted<F>(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
    handle: F,
) -> Result<(), tonic::transport::Error>
where
    F: Fn(TcpStream, std::net::SocketAddr, mpsc::Sender<io::Result<ServerConn>>) + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<ServerConn>>(64);
    let accept = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off, don't spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            handle(tcp, peer, tx.clone());
        }
    });
    let result = router
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(rx), shutdown)
        .await;
    accept.abort();
    result
}

impl Connected for ServerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Conn::Plain(tcp) => tcp.connect_info(),
            Conn::Tls(tls) => tls.get_ref().0.connect_info(),
        }
    }
}
