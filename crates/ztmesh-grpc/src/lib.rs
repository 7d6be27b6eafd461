//! gRPC adapters between ztmesh's domain crates and Linkerd's proxy API
//! (`linkerd2-proxy-api`), so that linkerd2-proxy and ztmesh-proxy can both
//! talk to the ztmesh controller.
//!
//! - [`identity`]: `io.linkerd.proxy.identity.Identity/Certify` over the
//!   identity domain's [`ztmesh_identity::certify`], mapping its typed
//!   refusals to gRPC status codes in one place.
//! - [`inbound`], [`outbound`] and [`destination`]: InboundServerPolicies,
//!   OutboundPolicies and Destination
//!   over the policy and destination indexes.
//! - [`authz`]: an `inbound.Server` as ztmesh-authz's decision-ready policy.
//! - [`server`]: the listener every controller service uses: plaintext for
//!   connections accepted on a loopback address, TLS with the controller's
//!   own identity for any other.
//! - [`client`]: the matching channel for proxies and the CLI: plaintext
//!   exactly when the address dialled is loopback, otherwise TLS verifying
//!   the control plane's identity against the trust anchors.

pub mod authz;
pub mod client;
pub mod conn;
pub mod destination;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod routes;
pub mod server;
