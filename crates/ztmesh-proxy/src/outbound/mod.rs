//! The outbound path: connections from this workload to others, one stage
//! per file.
//!
//! 1. [`accept`]: transparent (the original destination, protocol
//!    detection) or explicit (the application's HTTP proxy: absolute-form
//!    requests and `CONNECT`);
//! 2. [`http`]: HTTP routed request by request, with the route's timeout
//!    and budgeted retries ([`retry`]); a peer proxy's error headers are
//!    removed from responses ([`peer_errors`]);
//! 3. [`discover`]: where the target is and how to reach it (Destination.Get
//!    for a service name, GetProfile for ip:port);
//!    with the target's ServiceProfile ([`profile`]: routes, timeouts,
//!    retryability, the retry budget);
//!    and its OutboundPolicy ([`policy`]: HTTPRoutes with weighted backends
//!    and request timeouts, failure accrual, [`accrual`]);
//! 4. [`balance`]: power of two choices over peak-EWMA latency;
//! 5. [`pool`]: shared per-endpoint HTTP/1 and HTTP/2 connections;
//! 6. [`connect`]: plaintext to unmeshed endpoints; mTLS to meshed ones,
//!    verifying the endpoint's identity, with Linkerd's transport header
//!    when the endpoint asks for opaque transport.

pub mod accept;
pub mod accrual;
pub mod balance;
pub mod connect;
pub mod discover;
pub mod http;
pub mod peer_errors;
pub mod policy;
pub mod pool;
pub mod profile;
pub mod retry;
pub mod route_policy;
