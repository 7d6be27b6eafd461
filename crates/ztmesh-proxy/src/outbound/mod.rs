//! The outbound path: connections from this workload to others.
//!
//! 1. [`http_proxy`] (explicit mode): the application uses the outbound port
//!    as its HTTP proxy; `CONNECT host:port` and absolute-form requests name
//!    the target;
//! 2. [`discover`]: ask the control plane where the target is and how to
//!    reach it (Destination.Get for a service name, GetProfile for ip:port);
//! 3. [`connect`]: plaintext to unmeshed endpoints; mTLS to meshed ones,
//!    verifying the endpoint's identity, with Linkerd's transport header when
//!    the endpoint asks for opaque transport.

pub mod connect;
pub mod discover;
pub mod http;
pub mod http_proxy;
