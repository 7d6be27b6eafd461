//! Stage: terminate mesh TLS and learn who the client is.
//!
//! The server asks for a client certificate but admits clients without one
//! (TLS without identity); a presented certificate must chain to the trust
//! anchors. The client's identity is its leaf's first DNS SAN.

use crate::prefixed::PrefixedIo;
use crate::transport_header;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub type ServerTlsStream = tokio_rustls::server::TlsStream<PrefixedIo<TcpStream>>;

/// Bound on the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Terminated {
    pub stream: ServerTlsStream,
    /// The client's mesh identity, when it presented a certificate.
    pub client_id: Option<String>,
    /// The client negotiated Linkerd's opaque transport (a header follows).
    pub transport_header: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake did not complete within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

pub async fn terminate(
    acceptor: &TlsAcceptor,
    io: PrefixedIo<TcpStream>,
) -> Result<Terminated, TlsError> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
        .await
        .map_err(|_| TlsError::Timeout)?
        .map_err(TlsError::Handshake)?;
    let (_, conn) = stream.get_ref();
    let client_id = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(ztmesh_tls::peer_identity);
    let transport_header = conn.alpn_protocol() == Some(transport_header::ALPN);
    Ok(Terminated {
        stream,
        client_id,
        transport_header,
    })
}
