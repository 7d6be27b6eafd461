//! The ztmesh controller as a library: `ztmesh controller` is a thin call
//! into it, and tests run it in process.
//!
//! A [`Builder`] takes the identity directory (the issuer, re-read on every
//! change), the manifests directory with its state directory and limits
//! (the local resource store, ztmesh-store), and the listen addresses.
//! [`Builder::spawn`] binds every listener before anything is served and
//! returns a [`Running`]: the bound [`Addrs`], [`Running::ready`] (the
//! first manifest scan is in force), a [`ShutdownHandle`] and
//! [`Running::wait`]. Errors are one [`Error`] type.
//!
//! Layout, leaf first:
//! - `admin`: `GET /metrics` and `/ready` on the admin address
//!   ([`Builder::admin`]), for the registry the caller fills.
//! - `authenticator`: who presented a Certify token: the local token key
//!   or a [`TokenReviewer`] (Kubernetes TokenReview, in ztmesh-kube).
//! - [`own_identity`]: the controller's own certificates (identity and
//!   destination), for TLS off loopback; renewed by `issuer_reload`.
//! - `issuer_reload`: the issuer, reloaded when its files change; an
//!   invalid one is refused and the previous one stays in force.
//! - `manifests`: the manifests directory, read on a thread of its own on
//!   every change, feeding the policy, outbound and destination indexes.
//! - `store_feed`: resources from another store (the Kubernetes store in
//!   ztmesh-kube) as a channel of apply / delete events, applied to the
//!   same indexes; given to the builder with [`Builder::store`].
//! - `federation`: the SPIFFE bundle endpoint and the foreign trust
//!   domains' bundles (ClusterFederatedTrustDomain), written for the
//!   proxies ([`Builder::federation`]).
//! - `builder`, `supervise` and `running`: the listeners, the servers
//!   (ztmesh-grpc, served from the first complete scan by `supervise`)
//!   and their lifecycle: on shutdown every listener stops and open
//!   streams get [`SHUTDOWN_GRACE`] to finish.
//!
//! The viz API belongs to the CLI; the builder binds its listener and
//! hands it to a [`VizServer`] with the policy index and manifest status.

#![forbid(unsafe_code)]

mod admin;
mod authenticator;
mod builder;
mod error;
mod federation;
mod issuer_reload;
mod manifests;
pub mod own_identity;
mod running;
mod store_feed;
mod supervise;

pub use authenticator::{ReviewFuture, TokenReviewer};
pub use builder::{Builder, ShutdownSignal, VizContext, VizServer, state_dir_for};
pub use error::Error;
pub use federation::{BundleEndpointConfig, FederationConfig, FederationError};
/// The metrics registry [`Builder::admin`] serves.
pub use prometheus_client::registry::Registry;
pub use running::{Addrs, Running, ShutdownHandle};
pub use store_feed::{StoreEvent, StoreFeed};

/// How long open connections and streams get to finish after a shutdown.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
