//! The policy computed for one workload port, in the shape the proxy
//! consumes it (linkerd2-proxy-api's `inbound.Server`), as domain types.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which Server (or default policy) governs the port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerRef {
    Default(&'static str),
    Server(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthorizationRef {
    Default(&'static str),
    ServerAuthorization(String),
    AuthorizationPolicy(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteRef {
    Default(&'static str),
    /// group, kind, name (HTTPRoute of policy.linkerd.io or gateway, GRPCRoute).
    Resource {
        group: String,
        kind: String,
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    Detect { timeout: Duration },
    Http1,
    Http2,
    Grpc,
    Opaque,
    Tls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuthorization {
    /// Never empty once computed: no networks means the cluster networks
    /// (ServerAuthorization) or all networks (AuthorizationPolicy).
    pub networks: Vec<NetworkMatch>,
    pub authentication: ClientAuthentication,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// Any client, meshed or not.
    Unauthenticated,
    /// Any TLS client, even without an identity.
    TlsUnauthenticated,
    /// Mesh TLS with one of these identities.
    TlsAuthenticated(Vec<IdentityMatch>),
}

/// A client identity pattern as served (`Suffix` holds the labels, as
/// linkerd2-proxy-api's `IdentitySuffix` does). Matching is not here: the
/// proxy and `diagnose policy` match with `ztmesh_authz::IdentityMatch`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityMatch {
    Exact(String),
    /// `*` is the empty suffix; `*.booksapp.serviceaccount...` the labels after `*`.
    Suffix(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkMatch {
    pub net: IpNet,
    pub except: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundServer {
    pub reference: ServerRef,
    /// The workload's addresses, on which the proxy serves this port.
    pub server_ips: Vec<std::net::IpAddr>,
    pub protocol: ProxyProtocol,
    pub authorizations: BTreeMap<AuthorizationRef, ClientAuthorization>,
    pub http_routes: BTreeMap<RouteRef, HttpRoute>,
    pub grpc_routes: BTreeMap<RouteRef, GrpcRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    pub hostnames: Vec<String>,
    pub rules: Vec<Vec<HttpRouteMatch>>,
    pub authorizations: BTreeMap<AuthorizationRef, ClientAuthorization>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRouteMatch {
    pub path: Option<PathMatch>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub method: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    Exact { name: String, value: String },
    Regex { name: String, value: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcRoute {
    pub hostnames: Vec<String>,
    pub rules: Vec<Vec<GrpcRouteMatch>>,
    pub authorizations: BTreeMap<AuthorizationRef, ClientAuthorization>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcRouteMatch {
    pub service: Option<String>,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
}

impl IdentityMatch {
    /// Linkerd's syntax: `*`, `*.suffix.labels`, or an exact name.
    pub fn parse(s: &str) -> Self {
        if s == "*" {
            return Self::Suffix(vec![]);
        }
        match s.strip_prefix("*.") {
            Some(rest) => Self::Suffix(rest.split('.').map(String::from).collect()),
            None => Self::Exact(s.to_string()),
        }
    }
}

impl std::fmt::Display for IdentityMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Suffix(parts) if parts.is_empty() => f.write_str("*"),
            Self::Suffix(parts) => write!(f, "*.{}", parts.join(".")),
        }
    }
}

impl NetworkMatch {
    pub fn all(net: IpNet) -> Self {
        Self {
            net,
            except: vec![],
        }
    }
}

/// The match-everything route a Server gets when no route attaches to it.
pub fn default_http_route() -> HttpRoute {
    HttpRoute {
        hostnames: vec![],
        rules: vec![vec![HttpRouteMatch {
            path: Some(PathMatch::Prefix("/".into())),
            ..Default::default()
        }]],
        authorizations: BTreeMap::new(),
    }
}

pub fn default_grpc_route() -> GrpcRoute {
    GrpcRoute {
        hostnames: vec![],
        rules: vec![vec![GrpcRouteMatch::default()]],
        authorizations: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Matching is ztmesh-authz's (the proxy's) alone: the pattern the
    /// policy serves, as the proxy reads it, matches as the table says.
    #[test]
    fn identity_match_table() {
        let books = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
        let spiffe = "spiffe://cluster.local/ns/booksapp/sa/books";
        let cases = [
            ("*", books, true),
            (
                "*.booksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                true,
            ),
            ("*.cluster.local", books, true),
            (
                "*.other.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            (
                "*.books.booksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            (
                "*.ooksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            (books, books, true),
            (
                "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            ("*", spiffe, true),
            ("*.cluster.local", spiffe, false),
            ("*.local", spiffe, false),
            (spiffe, spiffe, true),
        ];
        for (pattern, id, want) in cases {
            let m = IdentityMatch::parse(pattern);
            assert_eq!(m.to_string(), pattern);
            let served = ztmesh_authz::IdentityMatch::parse(&m.to_string());
            assert_eq!(served.matches(id), want, "{pattern} vs {id}");
        }
    }
}
