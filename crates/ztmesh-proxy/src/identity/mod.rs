//! The proxy's identity: a P-256 key that never leaves the process, a CSR
//! for the workload's name, and a daemon that keeps a certificate for it.
//!
//! - [`config`]: the `LINKERD2_PROXY_IDENTITY_*` settings.
//! - [`documents`]: the key and CSR, generated in memory or read from
//!   `LINKERD2_PROXY_IDENTITY_DIR` (`key.p8`, `csr.der`) as Linkerd's proxy
//!   container writes them; the same CSR serves every renewal.
//! - [`verify`]: a returned chain is checked against the trust anchors, the
//!   expected name and our own key before it is used.
//! - [`daemon`]: Certify, renew at 70% of the lifetime, back off on failure
//!   while keeping the current certificate, publish to a credentials store.
//! - [`metrics`]: `control_identity_cert_*`, named as linkerd2-proxy names them.
//! - [`workload_api`]: instead of Certify, X.509-SVIDs (and the bundle)
//!   from a SPIFFE Workload API, followed live.
//! - [`anchors`]: following a trust bundle file; the bundle in use is a
//!   `ztmesh_tls::Trust` that every new handshake reads.
//! - [`federated`]: following the federated trust domains' bundle set
//!   file, applied to the same `Trust`.

pub mod anchors;
pub mod config;
pub mod daemon;
pub mod documents;
pub mod federated;
pub mod metrics;
pub mod verify;
pub mod workload_api;

pub use self::config::{IdentityConfig, IdentityMode, SpireConfig};
pub use self::daemon::{CertifyClient, IdentityDaemon, IdentityStatus};
pub use self::documents::Documents;
pub use self::metrics::IdentityMetrics;
