//! Validating a certificate signing request against the identity it asks for.
//!
//! The rules are Linkerd's identity service's, made stricter where ztmesh
//! promises more: the CSR's signature verifies; its key is ECDSA P-256; it
//! names exactly one DNS SAN, equal to the requested identity; its common
//! name is empty or that identity; it asks for no URI, IP or email SAN (the
//! CA adds the SPIFFE URI itself) and no CA bit.

use crate::name::IdentityName;
use crate::x509::is_p256;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// A CSR that passed every check: its identity and its P-256 public key.
#[derive(Clone, Debug)]
pub struct ValidatedCsr {
    identity: IdentityName,
    public_key: P256PublicKey,
}

/// An uncompressed P-256 point, as it appears in a SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P256PublicKey(Vec<u8>);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the certificate signing request is empty")]
    Empty,
    #[error("the certificate signing request is neither DER nor PEM (CERTIFICATE REQUEST)")]
    NotDerOrPem,
    #[error("the certificate signing request is malformed: {0}")]
    Malformed(String),
    #[error("the certificate signing request's signature does not verify with its own key")]
    BadSignature,
    #[error(
        "the certificate signing request's key is not ECDSA P-256 (the only key type ztmesh issues for)"
    )]
    NotP256,
    #[error(
        "the certificate signing request names no DNS SAN; it must name exactly the requested identity {0}"
    )]
    NoDnsName(String),
    #[error(
        "the certificate signing request names {0} DNS SANs; it must name exactly one, the requested identity"
    )]
    ManyDnsNames(usize),
    #[error("the certificate signing request names {csr}, but the request is for {requested}")]
    NameMismatch { csr: String, requested: String },
    #[error(
        "the certificate signing request's common name {0:?} must be empty or the requested identity"
    )]
    BadCommonName(String),
    #[error(
        "the certificate signing request asks for a {0} SAN; only one DNS SAN is allowed (the CA adds the SPIFFE ID)"
    )]
    ForbiddenSan(&'static str),
    #[error(
        "the certificate signing request asks for a CA certificate; workloads get leaf certificates only"
    )]
    CaRequested,
}

impl rcgen::PublicKeyData for P256PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl P256PublicKey {
    pub fn from_point(point: Vec<u8>) -> Self {
        Self(point)
    }
}

impl ValidatedCsr {
    pub fn identity(&self) -> &IdentityName {
        &self.identity
    }

    pub fn public_key(&self) -> &P256PublicKey {
        &self.public_key
    }
}

/// Checks a CSR (DER or PEM) against the identity the request names.
pub fn validate(bytes: &[u8], requested: &IdentityName) -> Result<ValidatedCsr, CsrError> {
    if bytes.is_empty() {
        return Err(CsrError::Empty);
    }
    let der = crate::pem::csr_der(bytes).ok_or(CsrError::NotDerOrPem)?;
    let csr = match X509CertificationRequest::from_der(&der) {
        Ok(([], csr)) => csr,
        Ok(_) => {
            return Err(CsrError::Malformed(
                "trailing bytes after the request".into(),
            ));
        }
        Err(e) => return Err(CsrError::Malformed(e.to_string())),
    };
    let info = &csr.certification_request_info;
    if !is_p256(&info.subject_pki) {
        return Err(CsrError::NotP256);
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let requested_name = requested.to_string();
    let mut dns_names = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => dns_names.push(*dns),
                        GeneralName::URI(_) => return Err(CsrError::ForbiddenSan("URI")),
                        GeneralName::IPAddress(_) => {
                            return Err(CsrError::ForbiddenSan("IP address"));
                        }
                        GeneralName::RFC822Name(_) => {
                            return Err(CsrError::ForbiddenSan("email address"));
                        }
                        _ => return Err(CsrError::ForbiddenSan("non-DNS")),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) if bc.ca => return Err(CsrError::CaRequested),
            ParsedExtension::ParseError { error } => {
                return Err(CsrError::Malformed(error.to_string()));
            }
            _ => {}
        }
    }
    match dns_names.as_slice() {
        [] => return Err(CsrError::NoDnsName(requested_name)),
        [one] if *one != requested_name => {
            return Err(CsrError::NameMismatch {
                csr: (*one).into(),
                requested: requested_name,
            });
        }
        [_] => {}
        many => return Err(CsrError::ManyDnsNames(many.len())),
    }
    for cn in info.subject.iter_common_name() {
        let cn = cn
            .as_str()
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        if !cn.is_empty() && cn != requested_name {
            return Err(CsrError::BadCommonName(cn.into()));
        }
    }
    Ok(ValidatedCsr {
        identity: requested.clone(),
        public_key: P256PublicKey(info.subject_pki.subject_public_key.data.to_vec()),
    })
}
