//! ztmesh-sample-app: a small workload to put in the mesh, and the clients
//! that exercise it, for end-to-end tests, benchmarks and `ztmesh demo`.
//!
//! - [`server`]: one listener speaking HTTP/1.1 and HTTP/2 (prior
//!   knowledge): plain requests answer `{name}:{METHOD} {path}` (with the
//!   HTTP version received in `x-http-version`); gRPC
//!   requests (`content-type: application/grpc`) are echoed with
//!   `grpc-status` trailers; WebSocket upgrades are echoed frame by frame;
//!   optionally a TCP echo listener. Failure rate and delay are settable
//!   so the mesh's retries and timeouts have something to work on.
//! - [`client`]: a gRPC-style unary call over HTTP/2, a WebSocket round
//!   trip, a TCP echo round trip; each checks what it gets back.
//! - [`websocket`]: the few parts of RFC 6455 the two need.
//! - [`via_proxy`]: load sent through an HTTP proxy (explicit mode's
//!   outbound proxy), absolute-form.

#![forbid(unsafe_code)]

pub mod client;
pub mod server;
pub mod via_proxy;
pub mod websocket;

/// The `x-served-by` header (and trailer) naming the serving instance.
pub const SERVED_BY: &str = "x-served-by";
/// The response header saying which HTTP version the app received.
pub const HTTP_VERSION: &str = "x-http-version";
/// The response header repeating the `l5d-client-id` values the app
/// received (comma-separated; absent when none): what the mesh told it
/// about the caller.
pub const SEEN_CLIENT_ID: &str = "x-seen-l5d-client-id";
