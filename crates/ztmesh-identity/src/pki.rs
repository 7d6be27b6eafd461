//! Generating the trust anchor and the identity issuer (`ztmesh install`, test CAs).
//!
//! Both are ECDSA P-256. As in Linkerd, the anchor is `root.{cp-ns}.{domain}`
//! and the issuer `identity.{cp-ns}.{domain}`, an intermediate limited to
//! signing leaves (path length 0).

use crate::issuer::CLOCK_SKEW_ALLOWANCE;
use crate::name::TrustDomain;
use crate::pem;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use std::time::{Duration, SystemTime};

/// A CA certificate with its private key (generated, or loaded to sign with).
pub struct GeneratedCa {
    signer: rcgen::Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl GeneratedCa {
    /// An existing CA certificate and its key, to sign new issuers.
    pub fn from_existing(
        cert: CertificateDer<'static>,
        key: KeyPair,
    ) -> Result<Self, rcgen::Error> {
        let signer = rcgen::Issuer::from_ca_cert_der(&cert, key)?;
        Ok(Self { signer, cert })
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub fn cert_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.cert)
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.signer.key().serialize_pem()
    }
}

/// A self-signed trust anchor valid from now for `validity`.
pub fn trust_anchor(
    trust: &TrustDomain,
    validity: Duration,
    now: SystemTime,
) -> Result<GeneratedCa, rcgen::Error> {
    let params = ca_params(
        &format!("root.{trust}"),
        IsCa::Ca(BasicConstraints::Unconstrained),
        validity,
        now,
    );
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?.der().clone();
    Ok(GeneratedCa {
        signer: rcgen::Issuer::new(params, key),
        cert,
    })
}

/// An identity issuer signed by `anchor`, valid from now for `validity`.
pub fn issuer(
    anchor: &GeneratedCa,
    trust: &TrustDomain,
    validity: Duration,
    now: SystemTime,
) -> Result<GeneratedCa, rcgen::Error> {
    let params = ca_params(
        &format!("identity.{trust}"),
        IsCa::Ca(BasicConstraints::Constrained(0)),
        validity,
        now,
    );
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &anchor.signer)?.der().clone();
    Ok(GeneratedCa {
        signer: rcgen::Issuer::new(params, key),
        cert,
    })
}

fn ca_params(cn: &str, is_ca: IsCa, validity: Duration, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = is_ca;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
    params.not_after = (now + validity).into();
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    params
}

/// 16 random bytes, positive and of fixed length (RFC 5280 allows up to 20).
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source failed");
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}
