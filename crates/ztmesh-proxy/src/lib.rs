//! ztmesh-proxy: the sidecar beside each workload.
//!
//! It is configured like linkerd2-proxy (the same `LINKERD2_PROXY_*`
//! variables, read through [`config::Env`]) so that it can take
//! linkerd2-proxy's place in an injected pod (`proxy_config`).
//!
//! - [`identity`] obtains a certificate from the control plane's Identity
//!   service, verifies it, keeps it fresh and publishes it to the TLS stacks
//!   through a [`ztmesh_tls::CredentialsStore`].
//! - [`inbound`] is the inbound path, one stage per file: detect TLS,
//!   terminate mTLS, detect protocol, authorize, forward; built with
//!   [`inbound::InboundBuilder`].
//! - [`outbound`] is the outbound path: transparent interception or
//!   explicit mode's HTTP proxy, HTTP routed per request, discovery through
//!   Destination, peak-EWMA balancing, shared per-endpoint connections,
//!   plaintext or mTLS to the endpoint.
//! - [`admin`] serves `/live`, `/ready`, `/metrics`, `/shutdown`;
//!   [`metrics`] holds the transport and request counters, [`route_metrics`]
//!   the outbound routes', `authz_metrics` the authorization decisions',
//!   `process_metrics` the process's; [`tap`] streams live requests to the
//!   tap identity; [`trace`] propagates trace context and exports spans.
//! - The small pieces the stages share: [`proxy_http`] (the response body,
//!   proxy-made responses, a request's authority), [`transport_header`],
//!   `prefixed` (bytes read ahead, replayed), `orig_dst`, [`sock_owner`] (who
//!   owns a local client's socket), `backoff` (reopening control-plane
//!   streams), `head_timeout` (HTTP/1 request heads bounded from their
//!   first byte, never idle connections), `grpc_status` (responses counted
//!   with their gRPC status), `orig_proto` (HTTP/1 carried over HTTP/2
//!   between proxies), `http_upgrade` (upgraded, WebSocket, connections
//!   joined), `counted` (bytes counted on a stream); [`drain`] stops them
//!   gracefully; `trim` gives memory back after a burst of connections;
//!   [`run`] wires it all together.
//! - `sys` holds the crate's only `unsafe` code (system calls std does not
//!   wrap): the crate denies `unsafe_code` everywhere else.
//!
//! Only what the binaries, the tests and the fuzz targets use is public;
//! everything else is `pub(crate)`.

#![deny(unsafe_code)]
// The module docs are maps for those working on the proxy: they link the
// crate-private stages (`cargo doc --document-private-items` renders them).
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod authz_metrics;
pub(crate) mod backoff;
pub mod config;
pub(crate) mod counted;
pub mod drain;
pub(crate) mod grpc_status;
pub(crate) mod head_timeout;
pub(crate) mod http_upgrade;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub(crate) mod orig_dst;
pub(crate) mod orig_proto;
pub mod outbound;
pub(crate) mod prefixed;
pub mod process_metrics;
pub(crate) mod proxy_config;
pub mod proxy_http;
pub mod route_metrics;
pub mod run;
pub mod sock_owner;
#[allow(unsafe_code)]
mod sys;
pub mod tap;
pub mod trace;
pub mod transport_header;
pub(crate) mod trim;
