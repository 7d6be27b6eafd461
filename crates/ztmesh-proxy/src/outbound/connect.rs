//! Stage: connect to an endpoint.
//!
//! Unmeshed endpoints get a plain TCP connection. Meshed ones get mTLS:
//! this proxy's certificate as the client's, SNI = the endpoint's server
//! name, and the server's certificate verified (by webpki, against the
//! trust anchors) to be valid for exactly that name; a certificate for any
//! other identity fails the handshake. With opaque transport the proxy dials
//! the endpoint's inbound port and first sends Linkerd's transport header.

use super::discover::Endpoint;
use crate::transport_header::{ALPN, TransportHeader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {addr}: {error}")]
    Tcp {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{addr} did not accept within {CONNECT_TIMEOUT:?}")]
    Timeout { addr: SocketAddr },
    #[error("mTLS to {addr} as {identity} failed: {error}")]
    Tls {
        addr: SocketAddr,
        identity: String,
        error: std::io::Error,
    },
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("writing the transport header to {addr}: {error}")]
    Header {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What the connection proved about the peer, for metrics.
pub struct Connected {
    pub io: Box<dyn Io>,
    pub server_id: Option<String>,
}

/// This proxy's side of mesh TLS.
pub struct ClientTls {
    pub roots: Arc<rustls::RootCertStore>,
    pub creds: Arc<ztmesh_tls::CredentialsStore>,
}

pub async fn connect(endpoint: &Endpoint, tls: &ClientTls) -> Result<Connected, ConnectError> {
    let dial = match (endpoint.tls.is_some(), endpoint.opaque_transport) {
        (true, Some(port)) => SocketAddr::new(endpoint.addr.ip(), port),
        _ => endpoint.addr,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dial))
        .await
        .map_err(|_| ConnectError::Timeout { addr: dial })?
        .map_err(|error| ConnectError::Tcp { addr: dial, error })?;
    let _ = tcp.set_nodelay(true);
    let Some((identity, server_name)) = &endpoint.tls else {
        return Ok(Connected {
            io: Box::new(tcp),
            server_id: None,
        });
    };
    let alpn: &[&[u8]] = if endpoint.opaque_transport.is_some() {
        &[ALPN]
    } else {
        &[]
    };
    // SPIFFE identities are checked through their DNS-form server name.
    let verify_as = if identity.starts_with("spiffe://") {
        server_name
    } else {
        identity
    };
    let config = ztmesh_tls::mesh_client_config(
        tls.roots.clone(),
        tls.creds.clone(),
        verify_as,
        ztmesh_tls::TlsVersions::Tls13Only,
        alpn,
    )
    .map_err(|_| ConnectError::ServerName(verify_as.clone()))?;
    let name = ztmesh_tls::server_name(server_name)
        .map_err(|_| ConnectError::ServerName(server_name.clone()))?;
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| ConnectError::Timeout { addr: dial })?
    .map_err(|error| ConnectError::Tls {
        addr: dial,
        identity: identity.clone(),
        error,
    })?;
    if endpoint.opaque_transport.is_some() {
        let header = TransportHeader {
            port: endpoint.addr.port(),
            name: None,
            protocol: None,
        };
        header
            .write(&mut stream)
            .await
            .map_err(|error| ConnectError::Header { addr: dial, error })?;
    }
    Ok(Connected {
        io: Box::new(stream),
        server_id: Some(identity.clone()),
    })
}
