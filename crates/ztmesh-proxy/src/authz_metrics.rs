//! Authorization metrics, named as linkerd2-proxy's:
//! `inbound_http_authz_allow_total`, `inbound_http_authz_deny_total`,
//! `inbound_http_route_not_found_total`, `inbound_tcp_authz_allow_total`,
//! `inbound_tcp_authz_deny_total`, `inbound_tcp_authz_terminate_total`,
//! labelled with the target, the server, the route and the authorization
//! (kind and name), and the client's `tls` / `client_id`.

use crate::metrics::{TlsLabel, tls_labels};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    HttpAllow,
    HttpDeny,
    HttpRouteNotFound,
    TcpAllow,
    TcpDeny,
    TcpTerminate,
}

impl Family {
    const ALL: [Family; 6] = [
        Family::HttpAllow,
        Family::HttpDeny,
        Family::HttpRouteNotFound,
        Family::TcpAllow,
        Family::TcpDeny,
        Family::TcpTerminate,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::HttpAllow => "inbound_http_authz_allow_total",
            Self::HttpDeny => "inbound_http_authz_deny_total",
            Self::HttpRouteNotFound => "inbound_http_route_not_found_total",
            Self::TcpAllow => "inbound_tcp_authz_allow_total",
            Self::TcpDeny => "inbound_tcp_authz_deny_total",
            Self::TcpTerminate => "inbound_tcp_authz_terminate_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::HttpAllow => "HTTP requests an authorization permitted.",
            Self::HttpDeny => "HTTP requests no authorization permitted.",
            Self::HttpRouteNotFound => "HTTP requests that matched no route.",
            Self::TcpAllow => "Opaque connections an authorization permitted.",
            Self::TcpDeny => "Opaque connections no authorization permitted.",
            Self::TcpTerminate => "Opaque connections closed when a policy change revoked them.",
        }
    }
}

/// What the labels name; empty strings are left out.
pub struct AuthzLabels<'a> {
    pub target: std::net::SocketAddr,
    pub server: (&'a str, &'a str),
    pub route: (&'a str, &'a str),
    pub authz: (&'a str, &'a str),
    pub tls: &'a TlsLabel,
}

#[derive(Debug, Default)]
pub struct AuthzMetrics {
    counts: Mutex<BTreeMap<(Family, String), u64>>,
}

impl AuthzMetrics {
    pub fn record(&self, family: Family, l: &AuthzLabels<'_>) {
        let mut labels = format!(
            "target_addr=\"{}\",srv_kind=\"{}\",srv_name=\"{}\"",
            l.target, l.server.0, l.server.1
        );
        if !l.route.1.is_empty() {
            let _ = write!(
                labels,
                ",route_kind=\"{}\",route_name=\"{}\"",
                l.route.0, l.route.1
            );
        }
        if !l.authz.1.is_empty() {
            let _ = write!(
                labels,
                ",authz_kind=\"{}\",authz_name=\"{}\"",
                l.authz.0, l.authz.1
            );
        }
        let _ = write!(labels, ",{}", tls_labels(l.tls));
        *self
            .counts
            .lock()
            .expect("authz metrics lock")
            .entry((family, labels))
            .or_default() += 1;
    }

    pub fn encode(&self, out: &mut String) {
        let counts = self.counts.lock().expect("authz metrics lock");
        for family in Family::ALL {
            let _ = writeln!(
                out,
                "# HELP {0} {1}\n# TYPE {0} counter",
                family.name(),
                family.help()
            );
            for ((f, labels), n) in counts.iter() {
                if *f == family {
                    let _ = writeln!(out, "{}{{{labels}}} {n}", family.name());
                }
            }
        }
    }
}
