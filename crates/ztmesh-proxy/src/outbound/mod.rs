//! The outbound path: connections from this workload to others, one stage
//! per file, built by [`builder`].
//!
//! 1. [`accept`]: transparent (the original destination, protocol
//!    detection) or explicit (the application's HTTP proxy: absolute-form
//!    requests and `CONNECT`);
//! 2. [`http`]: HTTP served request by request; the one place a failure
//!    becomes a response ([`error`]: every outbound failure, and its
//!    status);
//! 3. [`route_policy`]: the request's route, with its timeout and budgeted
//!    retries ([`retry`]);
//! 4. [`forward`]: one try on one endpoint; a peer proxy's error headers
//!    are removed from responses ([`peer_errors`]);
//! 5. [`discovery`]: what the stack asks the control plane, behind a
//!    trait: where the target is and how to reach it ([`discover`]:
//!    Destination.Get for a service name, GetProfile for ip:port), with the
//!    target's ServiceProfile ([`profile`]: routes, timeouts, retryability,
//!    the retry budget) and its OutboundPolicy ([`policy`]: HTTPRoutes
//!    with weighted backends and request timeouts, failure accrual,
//!    [`accrual`]); watches nobody uses are dropped ([`cache`]);
//! 6. [`balance`]: power of two choices over peak-EWMA latency;
//! 7. [`pool`]: shared per-endpoint HTTP/1 and HTTP/2 connections;
//! 8. [`connect`]: plaintext to unmeshed endpoints; mTLS to meshed ones,
//!    verifying the endpoint's identity, with Linkerd's transport header
//!    when the endpoint asks for opaque transport.
//!
//! Dependencies point down this list (and every stage may use [`error`]):
//! no stage refers back to one above it.

pub mod accept;
pub(crate) mod accrual;
pub(crate) mod balance;
pub mod builder;
pub(crate) mod cache;
pub mod connect;
pub mod discover;
pub mod discovery;
pub(crate) mod error;
pub(crate) mod forward;
pub mod http;
pub(crate) mod peer_errors;
pub mod policy;
pub(crate) mod pool;
pub mod profile;
pub(crate) mod retry;
pub(crate) mod route_policy;

pub use self::accept::Outbound;
pub use self::builder::OutboundBuilder;
#[cfg(any(test, feature = "test-util"))]
pub use self::discovery::InMemoryDiscovery;
pub use self::discovery::{Discovery, GrpcDiscovery};
