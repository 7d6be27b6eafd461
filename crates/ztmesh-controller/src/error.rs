//! Why the controller could not start, or stopped. Each message says what
//! failed; the cause is its `source()` (print with `{:#}` through anyhow,
//! or walk the chain).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why [`crate::Builder::spawn`] failed or [`crate::Running::wait`] ended in error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the {what} to {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the trust domain")]
    Name(#[from] ztmesh_identity::NameError),
    #[error("loading the identity issuer from {}", dir.display())]
    Issuer {
        dir: PathBuf,
        source: ztmesh_identity::IssuerError,
    },
    #[error("reading the token key {}", path.display())]
    ReadTokenKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    TokenKey(#[from] ztmesh_identity::TokenError),
    #[error(transparent)]
    NodeTokenKey(#[from] ztmesh_attestation::NodeTokenError),
    #[error(transparent)]
    JwtSvidKey(#[from] ztmesh_attestation::JwtError),
    #[error(transparent)]
    OwnIdentity(#[from] crate::own_identity::OwnIdentityError),
    #[error("the controller's TLS configuration")]
    Tls(#[from] ztmesh_tls::TlsError),
    #[error("starting the manifest scanner")]
    Scanner(#[source] std::io::Error),
    #[error(transparent)]
    State(#[from] ztmesh_store::StateError),
    #[error("the manifest scanner stopped before its first scan")]
    ScannerStopped,
    #[error("the resource store stopped before its first complete listing")]
    StoreStopped,
    #[error("serving the {what}")]
    Serve {
        what: &'static str,
        source: tonic::transport::Error,
    },
    #[error("the {what} stopped unexpectedly")]
    Stopped { what: &'static str },
    #[error(transparent)]
    Federation(#[from] crate::FederationError),
    #[error("a server task failed")]
    Task(#[from] tokio::task::JoinError),
}
