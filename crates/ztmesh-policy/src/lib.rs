//! The policy indexes: inbound (which clients may reach each port of each
//! workload, and on which routes) and outbound (how clients route to a
//! Service). Domain only: no kube, no tonic; the gRPC
//! adapter turns an [`InboundServer`] into linkerd2-proxy-api's `Server`.
//!
//! - [`model`]: the computed policy (`InboundServer`, authorizations, routes).
//! - [`defaults`]: Linkerd's default inbound policies and [`ClusterInfo`].
//! - [`index`]: the synchronous index. Resources and workloads are applied
//!   and deleted; every (workload, port) that has been asked for has a
//!   `tokio::sync::watch` channel that receives its recomputed policy.
//! - [`view`]: what the policy is computed from (cluster settings, each
//!   namespace's resources, the workloads); the index owns one.
//! - [`compute`]: how one workload port's policy is derived from a
//!   [`View`], rule by rule as Linkerd's policy controller derives it: a
//!   pure function, which the index calls and publishes.
//! - [`outbound`]: what client proxies do with traffic to a Service port
//!   (HTTPRoutes with weighted backends, timeouts, failure accrual).
//! - [`references`]: warnings only visible across objects (dangling
//!   references, Servers competing for a port).

#![forbid(unsafe_code)]

pub mod compute;
pub mod defaults;
pub mod index;
pub mod model;
pub mod outbound;
pub mod references;
pub mod view;

pub use self::defaults::{ClusterInfo, DefaultPolicy};
pub use self::index::Index;
pub use self::model::*;
pub use self::view::{View, WorkloadRef};
