//! The workload identity domain of ztmesh, free of any transport (no tonic, no kube).
//!
//! A workload's identity is named after its service account
//! (`{sa}.{ns}.serviceaccount.identity.{cp-ns}.{trust-domain}`, see [`name`]).
//! The control plane proves who a workload is from a service-account token
//! ([`token`]), checks that its certificate signing request names exactly that
//! identity ([`csr`]), and signs a short-lived leaf with the identity issuer
//! ([`ca`]), an intermediate loaded from files and checked against the trust
//! anchors ([`issuer`]). [`certify`] ties these together as the one operation
//! that the gRPC adapter exposes as `Identity.Certify`. [`pki`] generates the
//! anchor and issuer for `ztmesh install`.

pub mod ca;
pub mod certify;
pub mod csr;
pub mod install;
pub mod issuer;
pub mod name;
pub mod pem;
pub mod pki;
pub mod token;
mod x509;

pub use self::ca::{Ca, IssuedCertificate};
pub use self::certify::{CertifyError, CertifyRequest, certify};
pub use self::issuer::{Issuer, IssuerError, TrustAnchors};
pub use self::name::{IdentityName, NameError, TrustDomain};
pub use self::token::{ServiceAccount, TokenAuthenticator, TokenError};
pub use self::x509::rfc3339;
