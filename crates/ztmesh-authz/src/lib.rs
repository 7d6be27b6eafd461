//! ztmesh-authz: the inbound authorization decision, as a pure function.
//!
//! The proxy (for every connection and request) and `ztmesh diagnose
//! policy` (for a question an operator asks) call the same code:
//!
//! - [`policy`]: a server's policy in decision-ready form ([`ServerPolicy`]):
//!   authorizations, routes with their matches compiled (regexes built
//!   once), each route's authorizations followed by the server's, as
//!   linkerd2-proxy assembles them;
//! - [`decide`]: [`decide_connection`] for opaque TCP and
//!   [`decide_request`] for HTTP and gRPC, returning a [`Permit`] (server,
//!   route and authorization names) or a typed [`Denial`], and, when asked,
//!   a trace of why each candidate did or did not apply;
//! - [`route`]: which route a request takes (Gateway API precedence, as
//!   linkerd's `http-route` crate ranks matches).
//!
//! No I/O, no clock, no kube, no tonic: adapters build a [`ServerPolicy`]
//! from linkerd2-proxy-api's `inbound.Server` (ztmesh-grpc) or from a
//! default policy.

#![forbid(unsafe_code)]

pub mod decide;
pub mod policy;
pub mod route;

pub use self::decide::{
    AuthzList, Client, Denial, Permit, PermitKey, Trace, decide_connection, decide_request,
};
pub use self::policy::{
    Authentication, Authorization, GrpcMatch, HttpMatch, IdentityMatch, Network, PathMatch,
    Protocol, Route, RouteMatches, ServerPolicy, ValueMatch,
};
