//! rustls configuration for every TLS connection ztmesh makes or accepts.
//!
//! One crypto provider (aws-lc-rs) offering the X25519MLKEM768 hybrid key
//! exchange first, TLS 1.3 only unless [`TlsVersions::AllowTls12`] is chosen
//! for legacy peers (as linkerd2-proxy, 1.3 only between proxies). Own
//! credentials live in a [`CredentialsStore`] that rustls consults on every
//! handshake, so a renewed certificate takes effect without rebuilding any
//! config or dropping any connection. Peers are verified against the trust
//! anchors and, on the client side, against the exact identity expected
//! (the server name).

#![forbid(unsafe_code)]

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

/// A server config presenting `creds`; clients are not asked for certificates.
pub fn server_config(
    creds: Arc<CredentialsStore>,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .with_no_client_auth()
        .with_cert_resolver(creds);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A mesh server config: presents `creds`, asks clients for a certificate
/// and verifies it against `roots` when given, but also admits clients
/// without one (they are then unauthenticated, and policy decides).
pub fn mesh_server_config(
    creds: Arc<CredentialsStore>,
    roots: Arc<rustls::RootCertStore>,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Anchors(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(creds);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The identity a peer's leaf certificate proves: its first DNS SAN, as
/// linkerd2-proxy takes it.
pub fn peer_identity(leaf: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some(d.to_string()),
        _ => None,
    })
}

/// A client config trusting `roots`, optionally presenting `creds`.
pub fn client_config(
    roots: Arc<rustls::RootCertStore>,
    creds: Option<Arc<CredentialsStore>>,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .with_root_certificates(roots);
    let mut config = match creds {
        Some(creds) => builder.with_client_cert_resolver(creds),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Verifies the server's chain for an expected identity, whatever SNI was
/// sent (the endpoint's server name may differ from its identity).
#[derive(Debug)]
pub struct IdentityVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: ServerName<'static>,
}

impl IdentityVerifier {
    pub fn new(roots: Arc<rustls::RootCertStore>, expected: &str) -> Result<Arc<Self>, TlsError> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Anchors(e.to_string()))?;
        Ok(Arc::new(Self {
            inner,
            expected: server_name(expected)?,
        }))
    }
}

impl rustls::client::danger::ServerCertVerifier for IdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expected, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A mesh client config for one peer: presents `creds`, sends `sni`, and
/// accepts only a chain valid for `identity` under `roots`.
pub fn mesh_client_config(
    roots: Arc<rustls::RootCertStore>,
    creds: Arc<CredentialsStore>,
    identity: &str,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let verifier = IdentityVerifier::new(roots, identity)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(creds);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server name to present and verify for an identity.
pub fn server_name(identity: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(identity.to_string()).map_err(|_| TlsError::ServerName(identity.into()))
}
