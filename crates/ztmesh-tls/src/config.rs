//! The rustls configs the mesh uses: a server or client config from
//! credentials, trust anchors and protocol versions, fixed or following a
//! live [`Trust`] bundle.

use crate::{CredentialsStore, TlsError, TlsVersions, provider, versions};
use crate::{IdentityVerifier, LiveClientVerifier, Trust};
use std::sync::Arc;

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
    mesh_server_config_live(creds, Trust::new(roots)?, v, alpn)
}

/// [`mesh_server_config`] verifying clients against the bundle `trust`
/// holds at each handshake.
pub fn mesh_server_config_live(
    creds: Arc<CredentialsStore>,
    trust: Arc<Trust>,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .with_client_cert_verifier(LiveClientVerifier::new(trust))
        .with_cert_resolver(creds);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
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

/// A client config without client certificates that accepts only a
/// server proving `identity` under the bundle `trust` holds at each
/// handshake (a proxy dialling its control plane while anchors rotate).
pub fn client_config_live(
    trust: Arc<Trust>,
    identity: &str,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .dangerous()
        .with_custom_certificate_verifier(IdentityVerifier::live(trust, identity)?)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
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
    mesh_client_config_live(Trust::new(roots)?, creds, identity, v, alpn)
}

/// [`mesh_client_config`] verifying the server against the bundle `trust`
/// holds at each handshake. A `spiffe://` identity is matched against the
/// certificate's URI SAN, exactly.
pub fn mesh_client_config_live(
    trust: Arc<Trust>,
    creds: Arc<CredentialsStore>,
    identity: &str,
    v: TlsVersions,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let verifier = IdentityVerifier::live(trust, identity)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(creds);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}
