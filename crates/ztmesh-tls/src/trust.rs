//! Trust anchors that change while connections run.
//!
//! A [`Trust`] holds the current bundle (several anchors during a rotation)
//! and the verifiers built from it, behind one lock that a handshake reads
//! once: [`LiveClientVerifier`] (a server checking its clients) and
//! [`IdentityVerifier`] (a client checking a server for an exact identity)
//! take the bundle current at the moment they verify. [`Trust::set`] swaps
//! the bundle: new handshakes use it, established connections are
//! untouched (a verifier runs only during the handshake).
//!
//! An expected identity of the `spiffe://` form is matched against the
//! certificate's URI SAN, exactly; any other against its DNS SANs, as
//! webpki checks a server name.
//!
//! With a [`Federation`] ([`Trust::set_federation`], swapped the same way),
//! the leaf's SPIFFE ID first selects the bundle that may verify it (see
//! `federation`): a federated domain's bundle verifies only identities in
//! that domain, and a DNS identity only ever the local bundle. Without one,
//! nothing is parsed beyond what webpki does: the handshake costs what it
//! did before.

use crate::federation::{Class, Federation};
use crate::{TlsError, provider};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::{Arc, RwLock};

/// The provider's signature algorithms, built once (they do not depend on
/// the bundle, so signature checks take no lock).
fn signature_algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    static ALGS: std::sync::OnceLock<rustls::crypto::WebPkiSupportedAlgorithms> =
        std::sync::OnceLock::new();
    *ALGS.get_or_init(|| provider().signature_verification_algorithms)
}

/// The verifiers for one bundle, built once per change.
#[derive(Debug)]
struct Verifiers {
    roots: Arc<RootCertStore>,
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<rustls::client::WebPkiServerVerifier>,
    federation: Option<Arc<Federation>>,
}

impl Verifiers {
    fn new(roots: Arc<RootCertStore>) -> Result<Self, TlsError> {
        let client =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Anchors(e.to_string()))?;
        let server =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| TlsError::Anchors(e.to_string()))?;
        Ok(Self {
            roots,
            client,
            server,
            federation: None,
        })
    }

    /// Which bundle may verify `leaf` (always the local one without a
    /// federation, and then the leaf is not parsed).
    fn class(&self, leaf: &CertificateDer<'_>) -> Result<Class, rustls::Error> {
        match &self.federation {
            None => Ok(Class::Local),
            Some(f) => Ok(f.classify(&crate::spiffe_ids(leaf))?),
        }
    }

    /// The verifiers of a federated domain `class` selected.
    fn domain(&self, domain: &str) -> Result<&crate::federation::DomainVerifiers, rustls::Error> {
        self.federation
            .as_ref()
            .and_then(|f| f.domain(domain))
            .ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
    }
}

/// The current trust bundle, swappable while connections run.
#[derive(Debug)]
pub struct Trust {
    current: RwLock<Arc<Verifiers>>,
}

impl Trust {
    pub fn new(roots: Arc<RootCertStore>) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(Verifiers::new(roots)?)),
        }))
    }

    pub fn from_pem(pem: &[u8]) -> Result<Arc<Self>, TlsError> {
        Self::new(crate::roots_from_pem(pem)?)
    }

    /// Replaces the bundle for every handshake from now on (the
    /// federation stays).
    pub fn set(&self, roots: Arc<RootCertStore>) -> Result<(), TlsError> {
        let mut verifiers = Verifiers::new(roots)?;
        let mut current = self.current.write().expect("trust lock poisoned");
        verifiers.federation = current.federation.clone();
        *current = Arc::new(verifiers);
        Ok(())
    }

    /// Replaces the federated bundles (None: no federation, no scoping)
    /// for every handshake from now on; the local bundle stays.
    pub fn set_federation(&self, federation: Option<Federation>) {
        let mut current = self.current.write().expect("trust lock poisoned");
        let next = Verifiers {
            roots: current.roots.clone(),
            client: current.client.clone(),
            server: current.server.clone(),
            federation: federation.map(Arc::new),
        };
        *current = Arc::new(next);
    }

    /// The federation in use now.
    pub fn federation(&self) -> Option<Arc<Federation>> {
        self.verifiers().federation.clone()
    }

    /// The identity a verified peer's leaf proves: under a federated
    /// bundle its SPIFFE ID (its DNS SANs are not the federated domain's
    /// to claim), otherwise as [`crate::peer_identity`] reads it.
    pub fn peer_identity(&self, leaf: &CertificateDer<'_>) -> Option<String> {
        match self.verifiers().class(leaf) {
            Ok(Class::Federated { id, .. }) => Some(id),
            Ok(Class::Local) => crate::peer_identity(leaf),
            Err(_) => None,
        }
    }

    /// The bundle in use now.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.verifiers().roots.clone()
    }

    fn verifiers(&self) -> Arc<Verifiers> {
        self.current.read().expect("trust lock poisoned").clone()
    }
}

/// A server's check of client certificates against the current bundle;
/// clients without a certificate are admitted (policy decides about them).
#[derive(Debug)]
pub struct LiveClientVerifier {
    trust: Arc<Trust>,
}

impl LiveClientVerifier {
    pub fn new(trust: Arc<Trust>) -> Arc<Self> {
        Arc::new(Self { trust })
    }
}

impl ClientCertVerifier for LiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: the bundle may change, and proxies present their one
    /// certificate whatever the hints say.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verifiers = self.trust.verifiers();
        match verifiers.class(end_entity)? {
            Class::Local => verifiers
                .client
                .verify_client_cert(end_entity, intermediates, now),
            Class::Federated { domain, .. } => verifiers
                .domain(&domain)?
                .client
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &signature_algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &signature_algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_algorithms().supported_schemes()
    }
}

/// The identity a client expects of a server.
#[derive(Debug, Clone)]
enum Expected {
    /// Checked as webpki checks a server name (DNS SANs).
    Dns(ServerName<'static>),
    /// A `spiffe://` ID: the URI SAN, exactly.
    Spiffe(String),
}

/// Verifies the server's chain for an expected identity, whatever SNI was
/// sent (the endpoint's server name may differ from its identity), against
/// the bundle current at the handshake.
#[derive(Debug)]
pub struct IdentityVerifier {
    trust: Arc<Trust>,
    expected: Expected,
}

impl IdentityVerifier {
    pub fn new(roots: Arc<RootCertStore>, expected: &str) -> Result<Arc<Self>, TlsError> {
        Self::live(Trust::new(roots)?, expected)
    }

    pub fn live(trust: Arc<Trust>, expected: &str) -> Result<Arc<Self>, TlsError> {
        let expected = if expected.starts_with(crate::SPIFFE_SCHEME) {
            Expected::Spiffe(expected.to_string())
        } else {
            Expected::Dns(crate::server_name(expected)?)
        };
        Ok(Arc::new(Self { trust, expected }))
    }
}

impl ServerCertVerifier for IdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifiers = self.trust.verifiers();
        let class = verifiers.class(end_entity)?;
        match (&self.expected, class) {
            (Expected::Dns(name), Class::Local) => {
                verifiers
                    .server
                    .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            }
            // A federated bundle never vouches for a DNS identity.
            (Expected::Dns(_), Class::Federated { .. }) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            )),
            (Expected::Spiffe(id), class) => {
                let roots = match &class {
                    Class::Local => &verifiers.roots,
                    Class::Federated { domain, .. } => &verifiers.domain(domain)?.roots,
                };
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    signature_algorithms().all,
                )?;
                if crate::spiffe_ids(end_entity).iter().any(|u| u == id) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForName,
                    ))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &signature_algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &signature_algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        signature_algorithms().supported_schemes()
    }
}
