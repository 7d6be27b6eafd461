//! ztmesh-proxy: the sidecar beside each workload.
//!
//! It is configured like linkerd2-proxy (the same `LINKERD2_PROXY_*`
//! variables, read through [`config::Env`]) so that it can take
//! linkerd2-proxy's place in an injected pod. So far it holds the
//! workload's identity: [`identity`] obtains a certificate from the control
//! plane's Identity service, verifies it, keeps it fresh and publishes it to
//! the TLS stacks through a [`ztmesh_tls::CredentialsStore`].

pub mod admin;
pub mod config;
pub mod identity;
pub mod inbound;
pub mod metrics;
pub mod orig_dst;
pub mod prefixed;
pub mod transport_header;
