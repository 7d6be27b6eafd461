//! Checking a certificate chain from the control plane before using it.

use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use std::time::SystemTime;
use x509_parser::prelude::FromDer;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the certificate does not chain to the trust anchors: {0:?}")]
    Chain(webpki::Error),
    #[error("the certificate is not valid for {name}: {error:?}")]
    Name { name: String, error: webpki::Error },
    #[error("the certificate is not for {id} (its SPIFFE IDs: {found:?})")]
    NotForSpiffeId { id: String, found: Vec<String> },
    #[error("the certificate is for another key than this proxy's")]
    KeyMismatch,
    #[error("the certificate cannot be parsed: {0}")]
    Parse(String),
}

/// The verified leaf's expiry.
pub struct Verified {
    pub not_after: SystemTime,
}

/// Why the trust anchors (`LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS`) cannot
/// be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorsError {
    #[error(transparent)]
    Pem(#[from] ztmesh_identity::pem::PemError),
    #[error("trust anchor {index} is unusable: {error:?}")]
    Unusable { index: usize, error: webpki::Error },
    #[error(transparent)]
    Tls(#[from] ztmesh_tls::TlsError),
}

/// Trust anchors in webpki's form.
pub fn anchors(pem: &[u8]) -> Result<Vec<TrustAnchor<'static>>, AnchorsError> {
    ztmesh_identity::pem::certificates(pem, "trust anchors")?
        .iter()
        .enumerate()
        .map(|(index, der)| {
            webpki::anchor_from_trusted_cert(der)
                .map(|a| a.to_owned())
                .map_err(|error| AnchorsError::Unusable { index, error })
        })
        .collect()
}

/// Verifies `leaf` (via `intermediates`) against `anchors`, for `name`,
/// holding `public_key` (an uncompressed P-256 point).
pub fn verify(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    name: &str,
    public_key: &[u8],
) -> Result<Verified, VerifyError> {
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(VerifyError::Chain)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(VerifyError::Chain)?;
    let server_name = ServerName::try_from(name).map_err(|_| VerifyError::Name {
        name: name.into(),
        error: webpki::Error::MalformedDnsIdentifier,
    })?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|error| VerifyError::Name {
            name: name.into(),
            error,
        })?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf)
        .map_err(|e| VerifyError::Parse(e.to_string()))?;
    if cert.public_key().subject_public_key.data.as_ref() != public_key {
        return Err(VerifyError::KeyMismatch);
    }
    let secs = cert.validity().not_after.timestamp().max(0) as u64;
    Ok(Verified {
        not_after: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    })
}

/// Verifies an X.509-SVID: `leaf` (via `intermediates`) chains to
/// `anchors` and carries exactly `spiffe_id` as a URI SAN.
pub fn verify_svid(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    spiffe_id: &str,
) -> Result<Verified, VerifyError> {
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(VerifyError::Chain)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(VerifyError::Chain)?;
    if !ztmesh_tls::spiffe_ids(leaf)
        .iter()
        .any(|id| id == spiffe_id)
    {
        return Err(VerifyError::NotForSpiffeId {
            id: spiffe_id.into(),
            found: ztmesh_tls::spiffe_ids(leaf),
        });
    }
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf)
        .map_err(|e| VerifyError::Parse(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp().max(0) as u64;
    Ok(Verified {
        not_after: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    })
}
