//! `ztmesh agent`: the SPIFFE Workload API for the processes of one node.
//!
//! Layout: [`peer`] turns a Unix-socket connection into a
//! [`ztmesh_attestation::Caller`] (SO_PEERCRED through tokio, then
//! `/proc/PID/exe` and `/proc/PID/cgroup`); [`svids`] keeps one X.509-SVID
//! per identity, obtained from the controller's `NodeIdentity` service
//! with the node token and renewed at two thirds of its lifetime, and
//! publishes each through a watch channel, with the bundle; [`jwt`] gets
//! JWT-SVIDs and the JWT bundle from the controller (which signs them: no
//! signing key is on the node) and validates tokens against that bundle;
//! [`workload_api`] is the tonic service, which checks the
//! `workload.spiffe.io` header, attests the caller against the
//! WorkloadAttestation resources (re-read at each call) and streams; [`agent`]
//! binds the socket and runs it all from an [`AgentConfig`] ([`node_token`]:
//! the token, re-read from its file at each use); [`authority`]
//! lets gRPC C-core clients (py-spiffe) in, whose `:authority` h2 refuses.

pub mod agent;
pub mod authority;
pub mod jwt;
pub mod node_token;
pub mod peer;
pub mod svids;
pub mod workload_api;

pub use self::agent::{Agent, AgentConfig, AgentError};
pub use self::node_token::NodeToken;
