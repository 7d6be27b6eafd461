//! rustls configuration for every TLS connection ztmesh makes or accepts.
//!
//! One crypto provider (aws-lc-rs) offering the X25519MLKEM768 hybrid key
//! exchange first, TLS 1.3 only unless [`TlsVersions::AllowTls12`] is chosen
//! for legacy peers (as linkerd2-proxy, 1.3 only between proxies). Own
//! credentials live in a [`CredentialsStore`] that rustls consults on every
//! handshake, so a renewed certificate takes effect without rebuilding any
//! config or dropping any connection. Peers are verified against the trust
//! anchors and, on the client side, against the exact identity expected
//! (the server name). The anchors may change too: configs built over a
//! [`Trust`] verify each new handshake against the bundle current then
//! (see `trust`), and against federated trust domains' bundles, each
//! scoped to its own domain's identities (see [`federation`]).

#![forbid(unsafe_code)]

mod config;
pub mod federation;
mod trust;

pub use config::{
    client_config, client_config_live, mesh_client_config, mesh_client_config_live,
    mesh_server_config, mesh_server_config_live, server_config,
};
pub use federation::{Federation, ScopeError};
pub use trust::{IdentityVerifier, LiveClientVerifier, Trust};

/// The scheme of a SPIFFE ID.
pub const SPIFFE_SCHEME: &str = "spiffe://";

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

/// Which protocol versions a config allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.3 only: the default between proxies and to the control plane.
    #[default]
    Tls13Only,
    /// TLS 1.3 preferred, 1.2 minimum, for legacy peers.
    AllowTls12,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("trust anchors: {0}")]
    Anchors(String),
    #[error("federated trust bundles: {0}")]
    Federation(String),
    #[error("the private key is unusable: {0}")]
    Key(String),
    #[error("the certificate does not match the private key: {0}")]
    Mismatch(String),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The aws-lc-rs provider with the hybrid post-quantum group preferred.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{self, kx_group};
    Arc::new(CryptoProvider {
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
        ],
        ..aws_lc_rs::default_provider()
    })
}

fn versions(v: TlsVersions) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS13_AND_12: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    match v {
        TlsVersions::Tls13Only => TLS13_ONLY,
        TlsVersions::AllowTls12 => TLS13_AND_12,
    }
}

/// A root store from a PEM bundle of trust anchors (several during rotation).
pub fn roots_from_pem(pem: &[u8]) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let certs = ztmesh_identity::pem::certificates(pem, "trust anchors")
        .map_err(|e| TlsError::Anchors(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| TlsError::Anchors(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

/// This side's certificate chain and key, swappable while connections run.
#[derive(Debug, Default)]
pub struct CredentialsStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CredentialsStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Installs a new chain (leaf first) and key after checking they match.
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let key = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key(e.to_string()))?;
        let certified = CertifiedKey::new(chain, key);
        certified
            .keys_match()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        *self.current.write().expect("credentials lock poisoned") = Some(Arc::new(certified));
        Ok(())
    }

    pub fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .expect("credentials lock poisoned")
            .clone()
    }

    pub fn is_ready(&self) -> bool {
        self.get().is_some()
    }
}

impl rustls::server::ResolvesServerCert for CredentialsStore {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

impl rustls::client::ResolvesClientCert for CredentialsStore {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.get()
    }

    fn has_certs(&self) -> bool {
        self.is_ready()
    }
}

/// The identity a peer's leaf certificate proves: its first DNS SAN, as
/// linkerd2-proxy takes it, or else its SPIFFE ID (a URI SAN
/// `spiffe://...`, as a SPIFFE Workload API's X.509-SVID carries it).
pub fn peer_identity(leaf: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let names = &san.value.general_names;
    names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .or_else(|| {
            names.iter().find_map(|n| match n {
                GeneralName::URI(u) if u.starts_with(SPIFFE_SCHEME) => Some(u.to_string()),
                _ => None,
            })
        })
}

/// The `spiffe://` URI SANs of a certificate.
pub fn spiffe_ids(leaf: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::*;
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) if u.starts_with(SPIFFE_SCHEME) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// The server name to present and verify for an identity.
pub fn server_name(identity: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(identity.to_string()).map_err(|_| TlsError::ServerName(identity.into()))
}
