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
//!
//! All of that is the control plane's half, behind the default `ca` feature.
//! Without it (how the proxy links this crate) only [`name`], [`pem`] and
//! [`rfc3339`] remain: the proxy needs no CA, no token code and no JWT
//! library.

#![forbid(unsafe_code)]

#[cfg(feature = "ca")]
pub mod ca;
#[cfg(feature = "ca")]
pub mod certify;
#[cfg(feature = "ca")]
pub mod csr;
#[cfg(feature = "ca")]
pub mod install;
#[cfg(feature = "ca")]
pub mod issuer;
pub mod name;
pub mod pem;
#[cfg(feature = "ca")]
pub mod pki;
#[cfg(feature = "ca")]
pub mod token;
mod x509;

#[cfg(feature = "ca")]
pub use self::ca::{Ca, IssuedCertificate};
#[cfg(feature = "ca")]
pub use self::certify::{CertifyError, CertifyRequest, certify};
#[cfg(feature = "ca")]
pub use self::issuer::{Issuer, IssuerError, TrustAnchors};
pub use self::name::{IdentityName, NameError, TrustDomain};
#[cfg(feature = "ca")]
pub use self::token::{ServiceAccount, TokenAuthenticator, TokenError};
pub use self::x509::rfc3339;
