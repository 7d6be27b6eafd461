//! The certificate chain a proxy presents, read as `linkerd identity`
//! reads it: a TLS handshake on the proxy's inbound port with the
//! workload's identity as SNI (which is what makes the proxy terminate
//! mesh TLS), the presented chain recorded, nothing sent, the connection
//! closed. Only public certificates cross the wire; no client
//! certificate is offered. [`fetch`] records; [`verify`] then judges the
//! chain against the trust anchors (pure, so tests feed it generated
//! certificates); [`Summary`] is its readable form.

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;
use x509_parser::prelude::*;

/// Why no chain was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChainError {
    #[error("{0:?} is not a valid TLS server name")]
    Name(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} did not complete a TLS handshake within {timeout:?}")]
    Timeout {
        addr: std::net::SocketAddr,
        timeout: Duration,
    },
    #[error("the TLS handshake with {addr} failed: {source}")]
    Handshake {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} presented no certificate")]
    Empty { addr: std::net::SocketAddr },
}

/// Records the server's chain and accepts it: the chain is judged
/// afterwards ([`verify`]), against the anchors the operator holds.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Vec<CertificateDer<'static>>>,
    schemes: Vec<rustls::SignatureScheme>,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let mut seen = self.seen.lock().expect("recorder lock");
        seen.push(end_entity.clone().into_owned());
        seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}

/// The chain (leaf first) the proxy at `addr` presents for `identity`.
pub(crate) async fn fetch(
    addr: std::net::SocketAddr,
    identity: &str,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, ChainError> {
    let provider = ztmesh_tls::provider();
    let recorder = Arc::new(Recorder {
        seen: Mutex::default(),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(identity.to_string())
        .map_err(|_| ChainError::Name(identity.into()))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ChainError::Connect { addr, source })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|source| ChainError::Handshake { addr, source })?;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        Ok(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ChainError::Timeout { addr, timeout })??;
    let seen = std::mem::take(&mut *recorder.seen.lock().expect("recorder lock"));
    if seen.is_empty() {
        return Err(ChainError::Empty { addr });
    }
    Ok(seen)
}

/// Whether `chain` (leaf first) is valid for `identity` under the anchors
/// in `anchors_pem` at `now`.
pub(crate) fn verify(
    chain: &[CertificateDer<'static>],
    anchors_pem: &[u8],
    identity: &str,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let roots = ztmesh_tls::roots_from_pem(anchors_pem).map_err(VerifyError::Anchors)?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, ztmesh_tls::provider())
            .build()
            .map_err(|e| VerifyError::Verifier(e.to_string()))?;
    let (leaf, intermediates) = chain.split_first().ok_or(VerifyError::Empty)?;
    let name = ServerName::try_from(identity.to_string())
        .map_err(|_| VerifyError::Name(identity.into()))?;
    let now = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        verifier.as_ref(),
        leaf,
        intermediates,
        &name,
        &[],
        now,
    )
    .map(|_| ())
    .map_err(VerifyError::Invalid)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("the trust anchors: {0}")]
    Anchors(ztmesh_tls::TlsError),
    #[error("building a verifier: {0}")]
    Verifier(String),
    #[error("no certificate")]
    Empty,
    #[error("{0:?} is not a valid TLS server name")]
    Name(String),
    #[error("{0}")]
    Invalid(rustls::Error),
}

/// What a certificate says, for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) dns_sans: Vec<String>,
    pub(crate) uri_sans: Vec<String>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) serial: String,
    pub(crate) is_ca: bool,
    pub(crate) sha256: String,
}

#[derive(Debug, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub(crate) struct ParseError(String);

impl Summary {
    pub(crate) fn of(der: &[u8]) -> Result<Self, ParseError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| ParseError(e.to_string()))?;
        let mut dns_sans = Vec::new();
        let mut uri_sans = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns_sans.push(d.to_string()),
                    GeneralName::URI(u) => uri_sans.push(u.to_string()),
                    _ => {}
                }
            }
        }
        let time = |t: ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0).unsigned_abs())
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_sans,
            uri_sans,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            serial: cert.raw_serial_as_string(),
            is_ca: cert.is_ca(),
            sha256: sha256(der),
        })
    }

    /// The identity a proxy takes from it: the first DNS SAN.
    pub(crate) fn identity(&self) -> Option<&str> {
        self.dns_sans.first().map(String::as_str)
    }

    /// The share of its lifetime gone at `now` (0..1, more once expired).
    pub(crate) fn lifetime_used(&self, now: SystemTime) -> f64 {
        let total = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
            .as_secs_f64();
        let used = now
            .duration_since(self.not_before)
            .unwrap_or_default()
            .as_secs_f64();
        if total <= 0.0 { 1.0 } else { used / total }
    }
}

/// SHA-256 of `der`, `AB:CD:...` (as `ztmesh install` prints anchors).
pub(crate) fn sha256(der: &[u8]) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = String::new();
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}
