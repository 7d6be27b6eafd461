//! Stage: connect to an endpoint.
//!
//! Unmeshed endpoints get a plain TCP connection. Meshed ones get mTLS:
//! this proxy's certificate as the client's, SNI = the endpoint's server
//! name, and the server's certificate verified (by webpki, against the
//! trust anchors in use at that handshake) to be valid for exactly the
//! endpoint's identity (a `spiffe://` one by its URI SAN); a certificate
//! for any other identity fails the handshake. With opaque transport the proxy dials
//! the endpoint's inbound port and first sends Linkerd's transport header.

use super::discover::Endpoint;
use crate::transport_header::{ALPN, TransportHeader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused connection is tried again: an endpoint whose proxy
/// is restarting comes back within it, and the request waits instead of
/// failing (as linkerd2-proxy's balancer holds requests while an endpoint
/// is unavailable). Nothing has been sent, so trying again is safe.
pub(crate) const REFUSED_WAIT: Duration = Duration::from_secs(3);

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
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

/// The TLS label of requests and connections to an endpoint: its identity
/// once connect has verified it.
pub(crate) fn tls_label(endpoint: &Endpoint) -> crate::metrics::TlsLabel {
    match &endpoint.tls {
        Some((identity, _)) => crate::metrics::TlsLabel::ServerIdentified {
            server_id: identity.clone(),
        },
        None => crate::metrics::TlsLabel::NoIdentity {
            reason: "not_provided_by_service_discovery",
        },
    }
}

/// What the connection proved about the peer, for metrics.
pub(crate) struct Connected {
    pub(crate) io: Box<dyn Io>,
    pub(crate) server_id: Option<String>,
}

/// This proxy's side of mesh TLS. Client configs are built once per
/// (identity, opaque transport) and reused; renewed credentials still apply,
/// since the store is consulted at every handshake.
pub struct ClientTls {
    /// The bundle in use, read at each handshake (it may change).
    trust: Arc<ztmesh_tls::Trust>,
    creds: Arc<ztmesh_tls::CredentialsStore>,
    configs: std::sync::Mutex<std::collections::HashMap<(String, bool), Arc<rustls::ClientConfig>>>,
}

impl ClientTls {
    /// # Panics
    /// On an empty root store (the configuration refuses one earlier).
    pub fn new(
        roots: Arc<rustls::RootCertStore>,
        creds: Arc<ztmesh_tls::CredentialsStore>,
    ) -> Self {
        let trust = ztmesh_tls::Trust::new(roots).expect("a root store that rustls accepts");
        Self::live(trust, creds)
    }

    /// Verifying servers against the bundle `trust` holds at each handshake.
    pub fn live(trust: Arc<ztmesh_tls::Trust>, creds: Arc<ztmesh_tls::CredentialsStore>) -> Self {
        Self {
            trust,
            creds,
            configs: Default::default(),
        }
    }

    /// The client config for a peer identity, built once and reused.
    fn config(
        &self,
        identity: &str,
        opaque: bool,
    ) -> Result<Arc<rustls::ClientConfig>, ztmesh_tls::TlsError> {
        let key = (identity.to_string(), opaque);
        if let Some(config) = self.configs.lock().expect("tls configs lock").get(&key) {
            return Ok(config.clone());
        }
        let alpn: &[&[u8]] = if opaque { &[ALPN] } else { &[] };
        let config = ztmesh_tls::mesh_client_config_live(
            self.trust.clone(),
            self.creds.clone(),
            identity,
            ztmesh_tls::TlsVersions::Tls13Only,
            alpn,
        )?;
        self.configs
            .lock()
            .expect("tls configs lock")
            .insert(key, config.clone());
        Ok(config)
    }
}

pub(crate) async fn connect(
    endpoint: &Endpoint,
    tls: &ClientTls,
) -> Result<Connected, ConnectError> {
    let dial = match (endpoint.tls.is_some(), endpoint.opaque_transport) {
        (true, Some(port)) => SocketAddr::new(endpoint.addr.ip(), port),
        _ => endpoint.addr,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, dial_tcp(dial))
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
    // A SPIFFE identity is checked exactly against the certificate's URI
    // SAN (ztmesh's certificates carry it beside the DNS name; a Workload
    // API's SVID carries only it); a DNS identity against the DNS SANs.
    let verify_as = identity;
    let config = tls
        .config(verify_as, endpoint.opaque_transport.is_some())
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

/// A TCP connection, tried again with a backoff while it is refused (for
/// up to [`REFUSED_WAIT`]).
async fn dial_tcp(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let started = tokio::time::Instant::now();
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(20), Duration::from_millis(400));
    loop {
        match TcpStream::connect(addr).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && started.elapsed() < REFUSED_WAIT =>
            {
                tracing::debug!(%addr, "connection refused; trying again");
                backoff.wait().await;
            }
            other => return other,
        }
    }
}
