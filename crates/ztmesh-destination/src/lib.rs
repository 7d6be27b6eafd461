//! The destination index: where a Service's traffic may go, and how.
//! Domain only: no kube, no tonic; the gRPC adapter streams it as Linkerd's
//! `Destination.Get` / `GetProfile`.
//!
//! - [`model`]: endpoints (address, TLS identity and server name, protocol
//!   hint, opaque transport port, metric labels), endpoint sets, profiles.
//! - [`target`]: parsing what a proxy asks for (`svc.ns.svc.cluster.local:port`
//!   or `ip:port`).
//! - [`index`]: Services, Pods, ExternalWorkloads and ServiceProfiles in;
//!   one `watch` channel per (service, port) and per profile target out.
//! - `metric_labels`: the labels each endpoint carries (`pod`, its owner,
//!   `serviceaccount`, ...), named as Linkerd's destination controller names them.

#![forbid(unsafe_code)]

pub mod index;
mod metric_labels;
pub mod model;
pub mod target;

pub use self::index::{DestinationCluster, Index};
pub use self::model::*;
pub use self::target::Target;
