//! What a proxy needs of Linkerd's proxy API (`linkerd2-proxy-api`), and
//! nothing of the controller: ztmesh-proxy links this crate, so it must
//! stay free of the policy, destination and resource domains (and so of
//! k8s-openapi and serde_yaml; `scripts/check-proxy-deps` keeps it so).
//! The controller's servers live in ztmesh-grpc, which builds on this.
//!
//! - [`client`]: channels to the control plane for proxies and the CLI:
//!   plaintext exactly when the address dialled is loopback, otherwise TLS
//!   verifying the control plane's identity against the trust anchors.
//! - [`server`]: the listener every control-plane service uses (plaintext
//!   for connections accepted on a loopback address, TLS with the server's
//!   own identity for any other), and the mTLS-only listener of the proxy's
//!   tap server.
//! - [`conn`]: the plaintext-or-TLS connection both sides share.
//! - [`authz`]: an `inbound.Server` (a WatchPort update) as ztmesh-authz's
//!   decision-ready policy.

#![forbid(unsafe_code)]

pub mod authz;
pub mod client;
pub mod conn;
pub mod server;
