//! Authorization metrics, named as linkerd2-proxy's:
//! `inbound_http_authz_allow_total`, `inbound_http_authz_deny_total`,
//! `inbound_http_route_not_found_total`, `inbound_tcp_authz_allow_total`,
//! `inbound_tcp_authz_deny_total`, `inbound_tcp_authz_terminate_total`,
//! labelled as linkerd2-proxy's: the target (`target_addr`, `target_ip`,
//! `target_port`), the server (`srv_group`, `srv_kind`, `srv_name`,
//! `srv_port`), then the route's and the authorization's
//! (`*_group`/`*_kind`/`*_name`) where the family has them, and the
//! client's `tls` / `client_id`.

use crate::metrics::{Prefix, Registry, TlsLabel, encode_meta, label, target};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as Series;

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

    /// The family's name, less the `_total` the encoder adds to counters.
    fn name(self) -> &'static str {
        match self {
            Self::HttpAllow => "inbound_http_authz_allow",
            Self::HttpDeny => "inbound_http_authz_deny",
            Self::HttpRouteNotFound => "inbound_http_route_not_found",
            Self::TcpAllow => "inbound_tcp_authz_allow",
            Self::TcpDeny => "inbound_tcp_authz_deny",
            Self::TcpTerminate => "inbound_tcp_authz_terminate",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::HttpAllow => "HTTP requests an authorization permitted",
            Self::HttpDeny => "HTTP requests no authorization permitted",
            Self::HttpRouteNotFound => "HTTP requests that matched no route",
            Self::TcpAllow => "Opaque connections an authorization permitted",
            Self::TcpDeny => "Opaque connections no authorization permitted",
            Self::TcpTerminate => "Opaque connections closed when a policy change revoked them",
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

/// [`AuthzLabels`], owned: a series' key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    target: std::net::SocketAddr,
    server: (String, String),
    route: Option<(String, String)>,
    authz: Option<(String, String)>,
    tls: TlsLabel,
}

impl Key {
    fn new(l: &AuthzLabels<'_>) -> Self {
        let owned = |(kind, name): (&str, &str)| (kind.to_string(), name.to_string());
        Self {
            target: l.target,
            server: owned(l.server),
            route: (!l.route.1.is_empty()).then(|| owned(l.route)),
            authz: (!l.authz.1.is_empty()).then(|| owned(l.authz)),
            tls: l.tls.clone(),
        }
    }
}

impl EncodeLabelSet for Key {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        target(encoder, self.target)?;
        let (kind, name) = &self.server;
        encode_meta(encoder, Prefix::Srv, (kind, name))?;
        label(encoder, "srv_port", self.target.port())?;
        if let Some((kind, name)) = &self.route {
            encode_meta(encoder, Prefix::Route, (kind, name))?;
        }
        if let Some((kind, name)) = &self.authz {
            encode_meta(encoder, Prefix::Authz, (kind, name))?;
        }
        self.tls.encode(encoder)
    }
}

#[derive(Debug, Default)]
pub struct AuthzMetrics {
    /// By [`Family`], in [`Family::ALL`]'s order.
    families: [Series<Key, Counter>; Family::ALL.len()],
}

impl AuthzMetrics {
    pub fn record(&self, family: Family, l: &AuthzLabels<'_>) {
        self.families[family as usize]
            .get_or_create(&Key::new(l))
            .inc();
    }

    /// Adds the families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        for family in Family::ALL {
            crate::metrics::register(
                registry,
                family.name(),
                family.help(),
                self.families[family as usize].clone(),
            );
        }
    }

    /// The families in the Prometheus text format.
    pub fn encode(&self, out: &mut String) {
        crate::metrics::encode_into(out, |r| self.register(r));
    }
}
