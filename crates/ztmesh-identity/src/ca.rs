//! The certificate authority: signs workload leaves with the identity issuer.
//!
//! Every leaf carries the identity as its first SAN (a DNS name; linkerd2-proxy
//! takes the first SAN as the peer's identity) and the SPIFFE ID as a URI SAN
//! after it; EKU serverAuth + clientAuth; key usage digitalSignature; a
//! random serial; notBefore 10s in the past for clock skew; and notAfter
//! `now + ttl`, never beyond the issuer's own expiry.

use crate::issuer::{CLOCK_SKEW_ALLOWANCE, Issuer};
use crate::name::{IdentityName, TrustDomain};
use crate::pki::random_serial;
use crate::x509::rfc3339;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};
use rustls_pki_types::CertificateDer;
use std::time::{Duration, SystemTime};

/// Linkerd's default workload certificate lifetime.
pub const DEFAULT_LEAF_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A CA for one trust domain.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer,
    trust: TrustDomain,
    leaf_ttl: Duration,
}

/// What the CA hands back: the leaf, the chain up to (not including) the
/// anchor, and when the leaf expires.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub leaf: CertificateDer<'static>,
    pub intermediates: Vec<CertificateDer<'static>>,
    pub valid_until: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "the identity issuer expired at {0}; install a new issuer (ztmesh install --force, or rotate the cert-manager secret)"
    )]
    IssuerExpired(String),
    #[error("identity {identity} is outside this CA's trust domain {expected}")]
    WrongTrustDomain { identity: String, expected: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

impl Ca {
    pub fn new(issuer: Issuer, trust: TrustDomain, leaf_ttl: Duration) -> Self {
        Self {
            issuer,
            trust,
            leaf_ttl,
        }
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust
    }

    pub fn leaf_ttl(&self) -> Duration {
        self.leaf_ttl
    }

    /// Issues a mesh leaf for `identity`'s public key: its DNS form (the
    /// name Linkerd's proxies verify, and the CN) and its SPIFFE ID.
    pub fn issue(
        &self,
        identity: &IdentityName,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
    ) -> Result<IssuedCertificate, CaError> {
        self.issue_with(identity, public_key, now, Names::DnsAndSpiffe)
    }

    /// Issues an X.509-SVID for `identity`'s public key: its SPIFFE ID as
    /// the only name (what a Workload API serves, as SPIRE's SVIDs are),
    /// so a peer knows the workload by its SPIFFE ID.
    pub fn issue_svid(
        &self,
        identity: &IdentityName,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
    ) -> Result<IssuedCertificate, CaError> {
        self.issue_with(identity, public_key, now, Names::SpiffeOnly)
    }

    fn issue_with(
        &self,
        identity: &IdentityName,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
        names: Names,
    ) -> Result<IssuedCertificate, CaError> {
        if identity.trust_domain() != &self.trust {
            return Err(CaError::WrongTrustDomain {
                identity: identity.to_string(),
                expected: self.trust.to_string(),
            });
        }
        let issuer_expiry = self.issuer.not_after();
        if issuer_expiry <= now {
            return Err(CaError::IssuerExpired(rfc3339(issuer_expiry)));
        }
        let valid_until = (now + self.leaf_ttl).min(issuer_expiry);
        let name = identity.to_string();
        let sign_err = |e: rcgen::Error| CaError::Sign(e.to_string());

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let spiffe = SanType::URI(identity.spiffe_id().try_into().map_err(sign_err)?);
        params.subject_alt_names = match names {
            Names::DnsAndSpiffe => {
                params
                    .distinguished_name
                    .push(DnType::CommonName, name.as_str());
                vec![SanType::DnsName(name.try_into().map_err(sign_err)?), spiffe]
            }
            Names::SpiffeOnly => vec![spiffe],
        };
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // cA=false, stated: an X.509-SVID must carry basic constraints
        // (SPIFFE X509-SVID 4.1; py-spiffe refuses a leaf without them).
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.serial_number = Some(random_serial());
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = valid_until.into();
        params.use_authority_key_identifier_extension = true;

        let leaf = params
            .signed_by(public_key, self.issuer.signer())
            .map_err(sign_err)?
            .der()
            .clone();
        Ok(IssuedCertificate {
            leaf,
            intermediates: self.issuer.chain().to_vec(),
            // The certificate's notAfter has whole-second precision.
            valid_until: truncate_to_second(valid_until),
        })
    }
}

fn truncate_to_second(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

/// The names a leaf carries.
#[derive(Clone, Copy)]
enum Names {
    /// The DNS form and the SPIFFE ID (mesh certificates).
    DnsAndSpiffe,
    /// The SPIFFE ID alone (X.509-SVIDs).
    SpiffeOnly,
}
