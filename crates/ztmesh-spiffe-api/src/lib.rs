//! Wire types of the SPIFFE Workload API and of ztmesh's node identity
//! service, shared by the proxy's Workload API client, `ztmesh agent` (the
//! Workload API server and the node client) and the controller (the node
//! identity server).
//!
//! Layout: [`workload`] is the Workload API (`/SpiffeWorkloadAPI/...`, no
//! protobuf package, as the specification's `workloadapi.proto`), [`node`]
//! is `ztmesh.node.v1.NodeIdentity`. Clients are behind the `client`
//! feature, servers behind `server`; the messages are always there. The
//! `.proto` sources are in `proto/`; the Rust in `src/gen/` is generated
//! from them by tonic-prost-build 0.14 (with protoc from
//! protoc-bin-vendored) and checked in, so building needs no protoc. The
//! [`workload`] metadata constant is the header the specification requires
//! of every caller.

#![allow(clippy::all, missing_docs)]

/// The SPIFFE Workload API.
pub mod workload {
    include!("gen/workload.rs");

    /// The metadata key every Workload API call must carry, with value
    /// [`SECURITY_HEADER_VALUE`]; a server answers InvalidArgument without it.
    pub const SECURITY_HEADER: &str = "workload.spiffe.io";
    pub const SECURITY_HEADER_VALUE: &str = "true";
}

/// ztmesh's node identity service (controller side of `ztmesh agent`).
pub mod node {
    include!("gen/node.rs");
}
