//! ztmesh-proxy: the sidecar beside each workload.
//!
//! It is configured like linkerd2-proxy (the same `LINKERD2_PROXY_*`
//! variables, read through [`config::Env`]) so that it can take
//! linkerd2-proxy's place in an injected pod ([`proxy_config`]).
//!
//! - [`identity`] obtains a certificate from the control plane's Identity
//!   service, verifies it, keeps it fresh and publishes it to the TLS stacks
//!   through a [`ztmesh_tls::CredentialsStore`].
//! - [`inbound`] is the inbound path, one stage per file: detect TLS,
//!   terminate mTLS, detect protocol, authorize, forward.
//! - [`admin`] serves `/live`, `/ready`, `/metrics`, `/shutdown`;
//!   [`metrics`] holds the transport counters.
//! - [`transport_header`], [`prefixed`], [`orig_dst`] and [`sock_owner`]
//!   (who owns a local client's socket), and [`backoff`] (reopening
//!   control-plane streams) are the small pieces the stages share;
//!   [`drain`] stops them gracefully; [`head_timeout`] bounds HTTP/1
//!   request heads from their first byte, never idle connections;
//!   [`trim`] gives memory back after a burst of connections; [`run`] wires it all together.
//!
//! - [`outbound`] is the outbound path: transparent interception or
//!   explicit mode's HTTP proxy, HTTP routed per request, discovery through
//!   Destination, peak-EWMA balancing, shared per-endpoint connections,
//!   plaintext or mTLS to the endpoint.
//! - [`orig_proto`] carries HTTP/1 over HTTP/2 between proxies;
//!   [`http_upgrade`] joins upgraded (WebSocket) connections.

pub mod admin;
pub mod authz_metrics;
pub mod backoff;
pub mod config;
pub mod counted;
pub mod drain;
pub mod grpc_status;
pub mod head_timeout;
pub mod http_upgrade;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod orig_dst;
pub mod orig_proto;
pub mod outbound;
pub mod prefixed;
pub mod process_metrics;
pub mod proxy_config;
pub mod route_metrics;
pub mod run;
pub mod sock_owner;
pub mod tap;
pub mod trace;
pub mod transport_header;
pub mod trim;
