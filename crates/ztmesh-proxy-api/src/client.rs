//! Channels to the control plane, as proxies and the CLI dial them.
//!
//! The address is `host:port` (Linkerd's `*_SVC_ADDR` form) and is resolved
//! at each dial. A loopback address is dialled in plaintext; any other over
//! TLS, verifying that the server holds exactly the expected identity
//! (`*_SVC_NAME`) under the trust anchors.

use crate::conn::Conn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control-plane address {0:?} is not host:port")]
    BadAddress(String),
    #[error("{0}")]
    Tls(#[from] ztmesh_tls::TlsError),
}

/// Where and how to reach one control-plane service.
#[derive(Clone)]
pub struct ControlPlaneTarget {
    /// `host:port`.
    pub addr: String,
    /// The identity the service must prove when TLS is used.
    pub server_name: String,
    /// Trust anchors; TLS connections fail closed without them.
    pub roots: Option<Arc<rustls::RootCertStore>>,
}

/// A lazily connecting channel: nothing is dialled until the first call.
pub fn channel(target: ControlPlaneTarget) -> Result<Channel, ClientError> {
    let tls = match &target.roots {
        Some(roots) => Some(tokio_rustls::TlsConnector::from(ztmesh_tls::client_config(
            roots.clone(),
            None,
            ztmesh_tls::TlsVersions::Tls13Only,
            &[b"h2"],
        )?)),
        None => None,
    };
    lazy(&target.addr, &target.server_name, tls)
}

/// As [`channel`], verifying the service against the bundle `trust` holds
/// at each dial (a proxy's trust follows anchor rotation).
pub fn channel_live(
    addr: &str,
    server_name: &str,
    trust: Arc<ztmesh_tls::Trust>,
) -> Result<Channel, ClientError> {
    let tls = tokio_rustls::TlsConnector::from(ztmesh_tls::client_config_live(
        trust,
        server_name,
        ztmesh_tls::TlsVersions::Tls13Only,
        &[b"h2"],
    )?);
    lazy(addr, server_name, Some(tls))
}

fn lazy(
    addr: &str,
    server_name: &str,
    tls: Option<tokio_rustls::TlsConnector>,
) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ClientError::BadAddress(addr.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true);
    let server_name = ztmesh_tls::server_name(server_name)?;
    let addr = addr.to_string();
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (addr, tls, server_name) = (addr.clone(), tls.clone(), server_name.clone());
        async move { dial(&addr, tls, server_name).await }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

type Io = TokioIo<ClientConn>;

async fn dial(
    addr: &str,
    tls: Option<tokio_rustls::TlsConnector>,
    server_name: rustls::pki_types::ServerName<'static>,
) -> std::io::Result<Io> {
    let resolved = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolved to no address"),
        )
    })?;
    let tcp = TcpStream::connect(resolved).await?;
    let _ = tcp.set_nodelay(true);
    if crate::server::is_loopback(resolved.ip()) {
        return Ok(TokioIo::new(Conn::Plain(tcp)));
    }
    let tls = tls.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{addr} is not loopback, so TLS is required, but no trust anchors were given"),
        )
    })?;
    let stream = tls.connect(server_name, tcp).await?;
    Ok(TokioIo::new(Conn::Tls(Box::new(stream))))
}

/// A dialled control-plane connection.
pub type ClientConn = Conn<tokio_rustls::client::TlsStream<TcpStream>>;
