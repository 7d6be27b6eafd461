//! gRPC adapters between ztmesh's domain crates and Linkerd's proxy API
//! (`linkerd2-proxy-api`): the controller's servers, so that linkerd2-proxy
//! and ztmesh-proxy can both talk to the ztmesh controller.
//!
//! - [`identity`]: `io.linkerd.proxy.identity.Identity/Certify` over the
//!   identity domain's [`ztmesh_identity::certify`], mapping its typed
//!   refusals to gRPC status codes in one place.
//! - [`node_identity`]: `ztmesh.node.v1.NodeIdentity/CertifyWorkload`, the
//!   SVIDs of `ztmesh agent`, over ztmesh-attestation.
//! - [`inbound`], [`outbound`] and [`destination`]: InboundServerPolicies,
//!   OutboundPolicies and Destination over the policy and destination
//!   indexes; [`routes`] holds the route conversions the first two share.
//!
//! What a proxy needs (clients, the listener helper, proto -> ztmesh-authz)
//! is in ztmesh-proxy-api, so the sidecar links none of the controller's
//! domain crates; it is re-exported here ([`authz`], [`client`], [`conn`],
//! [`server`]) for the controller and the CLI, which use both sides.

#![forbid(unsafe_code)]

pub mod destination;
pub mod identity;
pub mod inbound;
pub mod node_identity;
pub mod outbound;
pub mod routes;

pub use ztmesh_proxy_api::{authz, client, conn, server};
