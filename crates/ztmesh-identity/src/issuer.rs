//! The identity issuer (an intermediate CA) and the trust anchors it chains to.
//!
//! Two on-disk layouts are accepted, so that an issuer can come from
//! `ztmesh install` or from cert-manager / Vault without conversion:
//! - ztmesh's: `ca.crt` (anchors), `issuer.crt`, `issuer.key`;
//! - cert-manager's `kubernetes.io/tls` secret: `ca.crt`, `tls.crt`, `tls.key`.
//!
//! An issuer is accepted only when it is a CA certificate (basicConstraints
//! CA, keyCertSign when key usage is present), currently valid, holds a P-256
//! key matching the private key, and chains to a currently valid anchor
//! (directly, or through further certificates that follow it in its file).
//! Anything else is refused with the reason, so a bad file never replaces a
//! good issuer.

use crate::pem::{self, PemError};
use crate::x509::{is_p256, not_after, not_before, rfc3339, sha256_hex};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// How far in the future a notBefore may lie and still be accepted.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(10);

/// The trust bundle: one or more anchors (several during anchor rotation).
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    certs: Vec<CertificateDer<'static>>,
}

/// A validated issuer, ready to sign leaves.
pub struct Issuer {
    /// The issuer certificate followed by any certificates between it and an anchor.
    chain: Vec<CertificateDer<'static>>,
    signer: rcgen::Issuer<'static, rcgen::KeyPair>,
    not_after: SystemTime,
    anchors: TrustAnchors,
}

/// The files one issuer is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerFiles {
    pub anchors: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} holds neither issuer.crt/issuer.key nor cert-manager's tls.crt/tls.key (run `ztmesh install --dir {}`)", dir.display(), dir.display())]
    NoIssuerFiles { dir: PathBuf },
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    Parse { what: String, reason: String },
    #[error(
        "{what} is not a CA certificate ({reason}); an identity issuer must be able to sign certificates"
    )]
    NotCa { what: String, reason: &'static str },
    #[error("{what} expired at {at}")]
    Expired { what: String, at: String },
    #[error("{what} is not valid until {at}")]
    NotYetValid { what: String, at: String },
    #[error(
        "{what} is not signed by any valid trust anchor in {anchors} (does it belong to another trust root?)"
    )]
    NotChained { what: String, anchors: String },
    #[error("{key} is not the private key of {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("{what} is not an ECDSA P-256 key")]
    KeyNotP256 { what: String },
    #[error("{what}: cannot sign with this issuer: {reason}")]
    Unusable { what: String, reason: String },
}

impl TrustAnchors {
    /// Parses a PEM bundle; every certificate in it must be a CA.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, IssuerError> {
        let certs = pem::certificates(pem, what)?;
        for (i, der) in certs.iter().enumerate() {
            let name = format!("{what} (certificate #{})", i + 1);
            let cert = parse(der, &name)?;
            check_is_ca(&cert, &name)?;
        }
        Ok(Self { certs })
    }

    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    pub fn to_pem(&self) -> String {
        self.certs
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// SHA-256 fingerprints, `AB:CD:...`, one per anchor.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs.iter().map(|c| sha256_hex(c)).collect()
    }
}

impl IssuerFiles {
    /// Finds the issuer files in `dir`, preferring ztmesh's layout.
    pub fn in_dir(dir: &Path) -> Result<Self, IssuerError> {
        let anchors = dir.join("ca.crt");
        for (cert, key) in [("issuer.crt", "issuer.key"), ("tls.crt", "tls.key")] {
            let (cert, key) = (dir.join(cert), dir.join(key));
            if cert.exists() || key.exists() {
                return Ok(Self { anchors, cert, key });
            }
        }
        Err(IssuerError::NoIssuerFiles { dir: dir.into() })
    }

    /// Reads the three files' contents (anchors, cert, key).
    pub fn read(&self) -> Result<[Vec<u8>; 3], IssuerError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|error| IssuerError::Io {
                path: path.clone(),
                error,
            })
        };
        Ok([read(&self.anchors)?, read(&self.cert)?, read(&self.key)?])
    }
}

impl Issuer {
    /// Loads and validates the issuer in `dir` (either layout).
    pub fn load_dir(dir: &Path, now: SystemTime) -> Result<Self, IssuerError> {
        let files = IssuerFiles::in_dir(dir)?;
        let [anchors, cert, key] = files.read()?;
        Self::from_pem(&anchors, &cert, &key, &files, now)
    }

    /// Validates an issuer given the contents of its files; `files` names them in errors.
    pub fn from_pem(
        anchors_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        files: &IssuerFiles,
        now: SystemTime,
    ) -> Result<Self, IssuerError> {
        let anchors_name = files.anchors.display().to_string();
        let cert_name = files.cert.display().to_string();
        let key_name = files.key.display().to_string();

        let anchors = TrustAnchors::from_pem(anchors_pem, &anchors_name)?;
        let chain = pem::certificates(cert_pem, &cert_name)?;
        let key = pem::private_key(key_pem, &key_name)?;

        let issuer = parse(&chain[0], &cert_name)?;
        check_is_ca(&issuer, &cert_name)?;
        check_validity(&issuer, &cert_name, now)?;
        if !is_p256(issuer.public_key()) {
            return Err(IssuerError::KeyNotP256 { what: cert_name });
        }
        check_chains_to_anchor(&chain, &anchors, &cert_name, &anchors_name, now)?;

        let key_pair = p256_key_pair(&key, &key_name)?;
        if key_pair.public_key_raw() != issuer.public_key().subject_public_key.data.as_ref() {
            return Err(IssuerError::KeyMismatch {
                cert: cert_name,
                key: key_name,
            });
        }
        let not_after = not_after(&issuer);
        let subject = issuer.subject().as_raw().to_vec();
        check_subject_encodable(&issuer, &cert_name)?;
        let signer = rcgen::Issuer::from_ca_cert_der(&chain[0], key_pair).map_err(|e| {
            IssuerError::Unusable {
                what: cert_name.clone(),
                reason: e.to_string(),
            }
        })?;
        let issuer = Self {
            chain,
            signer,
            not_after,
            anchors,
        };
        issuer.check_signs_as_itself(&subject, &cert_name)?;
        Ok(issuer)
    }

    pub(crate) fn signer(&self) -> &rcgen::Issuer<'static, rcgen::KeyPair> {
        &self.signer
    }

    /// The issuer certificate, then any certificates between it and the anchor.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.chain[0])
    }

    /// Signs a throw-away leaf and checks that its issuer name is byte-for-byte
    /// the issuer's subject: verifiers (webpki) match names exactly.
    fn check_signs_as_itself(&self, subject: &[u8], what: &str) -> Result<(), IssuerError> {
        let probe_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| unusable(what, e))?;
        let probe = rcgen::CertificateParams::default()
            .signed_by(&probe_key, &self.signer)
            .map_err(|e| unusable(what, e))?;
        let leaf = parse(probe.der(), what)?;
        if leaf.issuer().as_raw() != subject {
            return Err(IssuerError::Unusable {
                what: what.into(),
                reason: "its subject name cannot be reproduced exactly in issued certificates"
                    .into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("fingerprint", &self.fingerprint())
            .field("not_after", &rfc3339(self.not_after))
            .finish_non_exhaustive()
    }
}

fn unusable(what: &str, e: impl std::fmt::Display) -> IssuerError {
    IssuerError::Unusable {
        what: what.into(),
        reason: e.to_string(),
    }
}

pub(crate) fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, IssuerError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(IssuerError::Parse {
            what: what.into(),
            reason: "trailing bytes after the certificate".into(),
        }),
        Err(e) => Err(IssuerError::Parse {
            what: what.into(),
            reason: e.to_string(),
        }),
    }
}

pub(crate) fn p256_key_pair(
    key: &PrivateKeyDer<'_>,
    what: &str,
) -> Result<rcgen::KeyPair, IssuerError> {
    rcgen::KeyPair::from_der_and_sign_algo(key, &rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|_| IssuerError::KeyNotP256 { what: what.into() })
}

fn check_is_ca(cert: &X509Certificate<'_>, what: &str) -> Result<(), IssuerError> {
    let not_ca = |reason| IssuerError::NotCa {
        what: what.into(),
        reason,
    };
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(Some(_)) => return Err(not_ca("basicConstraints says CA:FALSE")),
        Ok(None) => return Err(not_ca("it has no basicConstraints extension")),
        Err(_) => return Err(not_ca("its basicConstraints extension is malformed")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(not_ca("its key usage lacks keyCertSign")),
        Ok(_) => Ok(()),
        Err(_) => Err(not_ca("its keyUsage extension is malformed")),
    }
}

fn check_validity(
    cert: &X509Certificate<'_>,
    what: &str,
    now: SystemTime,
) -> Result<(), IssuerError> {
    let (nb, na) = (not_before(cert), not_after(cert));
    if na <= now {
        return Err(IssuerError::Expired {
            what: what.into(),
            at: rfc3339(na),
        });
    }
    if nb > now + CLOCK_SKEW_ALLOWANCE {
        return Err(IssuerError::NotYetValid {
            what: what.into(),
            at: rfc3339(nb),
        });
    }
    Ok(())
}

fn is_valid_at(cert: &X509Certificate<'_>, now: SystemTime) -> bool {
    not_before(cert) <= now + CLOCK_SKEW_ALLOWANCE && now < not_after(cert)
}

/// Walks from the issuer up through the certificates after it in its file
/// until one is signed by a currently valid anchor.
fn check_chains_to_anchor(
    chain: &[CertificateDer<'static>],
    anchors: &TrustAnchors,
    what: &str,
    anchors_name: &str,
    now: SystemTime,
) -> Result<(), IssuerError> {
    let anchors = anchors
        .certificates()
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .filter(|c| is_valid_at(c, now))
        .collect::<Vec<_>>();
    let extra = chain[1..]
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .collect::<Vec<_>>();
    let mut current = parse(&chain[0], what)?;
    for _ in 0..=extra.len() {
        let signed_by = |parent: &X509Certificate<'_>| {
            parent.subject().as_raw() == current.issuer().as_raw()
                && current.verify_signature(Some(parent.public_key())).is_ok()
        };
        if anchors.iter().any(signed_by) {
            return Ok(());
        }
        match extra.iter().find(|c| signed_by(c) && is_valid_at(c, now)) {
            Some(parent) => current = parent.clone(),
            None => break,
        }
    }
    Err(IssuerError::NotChained {
        what: what.into(),
        anchors: anchors_name.into(),
    })
}

/// rcgen re-encodes the issuer's subject from its parts; refuse names it
/// cannot represent (multi-valued or empty RDNs) instead of letting it fail later.
fn check_subject_encodable(cert: &X509Certificate<'_>, what: &str) -> Result<(), IssuerError> {
    if cert.subject().iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(IssuerError::Unusable {
            what: what.into(),
            reason: "its subject has an empty or multi-valued RDN".into(),
        });
    }
    Ok(())
}
