//! A server's policy, ready for decisions.
//!
//! Built once per policy update (adapters convert linkerd2-proxy-api's
//! `inbound.Server`); regexes are compiled here and an invalid one makes
//! its match never match, so a bad pattern can only deny, never allow.
//! Exact client identities are indexed, so a port with a thousand
//! authorizations still decides in one lookup.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// How the proxy treats the port's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Detect,
    Http1,
    Http2,
    Grpc,
    Opaque,
    Tls,
}

/// One port's policy.
#[derive(Clone, Debug)]
pub struct ServerPolicy {
    /// `server` (a Server resource) or `default` (a default policy).
    pub kind: String,
    pub name: String,
    pub protocol: Protocol,
    /// The server's authorizations: they govern opaque connections and
    /// follow every route's own authorizations for requests.
    pub authorizations: Arc<Authorizations>,
    pub http_routes: Vec<Route<HttpMatch>>,
    pub grpc_routes: Vec<Route<GrpcMatch>>,
}

/// An ordered list of authorizations with an index of exact identities:
/// the first one (in order) that admits a client is the one reported.
#[derive(Clone, Debug, Default)]
pub struct Authorizations {
    list: Vec<Authorization>,
    /// Exact identity -> indexes (ascending) of the authorizations naming it.
    by_identity: HashMap<String, Vec<usize>>,
    /// Indexes (ascending) of the authorizations that admit more than named
    /// identities: unauthenticated, any TLS, identity suffixes.
    generic: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Authorization {
    /// `default`, `serverauthorization`, `authorizationpolicy`, ...
    pub kind: String,
    pub name: String,
    pub networks: Vec<Network>,
    pub authentication: Authentication,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub net: IpNet,
    pub except: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// Any client, meshed or not.
    Unauthenticated,
    /// Any TLS client, with or without an identity.
    TlsUnauthenticated,
    /// Mesh TLS with one of these identities.
    TlsAuthenticated(Vec<IdentityMatch>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityMatch {
    Exact(String),
    /// Labels after `*.` (`booksapp.serviceaccount.identity.linkerd.cluster.local`);
    /// empty for `*`, any identity.
    Suffix(String),
}

/// A route: where it matches and who may use it.
#[derive(Clone, Debug)]
pub struct Route<M> {
    pub kind: String,
    pub name: String,
    pub hostnames: Vec<HostMatch>,
    pub rules: Vec<RouteMatches<M>>,
    /// The route's own authorizations (the server's follow them).
    pub authorizations: Arc<Authorizations>,
}

/// A rule's matches: any one suffices; none at all matches everything.
#[derive(Clone, Debug)]
pub struct RouteMatches<M> {
    pub matches: Vec<M>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` as `.example.com`.
    Suffix(String),
}

#[derive(Clone, Debug, Default)]
pub struct HttpMatch {
    pub path: Option<PathMatch>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub method: Option<http::Method>,
}

#[derive(Clone, Debug)]
pub enum PathMatch {
    Exact(String),
    /// Stored without trailing slashes (except `/` itself).
    Prefix(String),
    /// Must match the whole path; `None` when the pattern did not compile.
    Regex(Option<regex::Regex>, String),
}

#[derive(Clone, Debug)]
pub enum ValueMatch {
    Exact {
        name: String,
        value: String,
    },
    Regex {
        name: String,
        value: Option<regex::Regex>,
        pattern: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct GrpcMatch {
    pub service: Option<String>,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
}

impl Authorizations {
    pub fn new(list: Vec<Authorization>) -> Self {
        let mut by_identity: HashMap<String, Vec<usize>> = HashMap::new();
        let mut generic = Vec::new();
        for (i, a) in list.iter().enumerate() {
            match &a.authentication {
                Authentication::TlsAuthenticated(ids)
                    if ids.iter().all(|m| matches!(m, IdentityMatch::Exact(_))) =>
                {
                    for m in ids {
                        if let IdentityMatch::Exact(id) = m {
                            let v = by_identity.entry(id.clone()).or_default();
                            if v.last() != Some(&i) {
                                v.push(i);
                            }
                        }
                    }
                }
                _ => generic.push(i),
            }
        }
        Self {
            list,
            by_identity,
            generic,
        }
    }

    pub fn list(&self) -> &[Authorization] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first authorization (in order) admitting the client; only the
    /// ones that could admit this identity are looked at.
    pub fn first_admitting(
        &self,
        ip: IpAddr,
        tls: bool,
        identity: Option<&str>,
    ) -> Option<&Authorization> {
        self.first_admitting_at(ip, tls, identity).map(|(_, a)| a)
    }

    /// [`Self::first_admitting`], with the authorization's position in the list.
    pub fn first_admitting_at(
        &self,
        ip: IpAddr,
        tls: bool,
        identity: Option<&str>,
    ) -> Option<(usize, &Authorization)> {
        let named = identity
            .and_then(|id| self.by_identity.get(id))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // Merge the two ascending index lists, in order.
        let (mut a, mut b) = (named.iter().peekable(), self.generic.iter().peekable());
        loop {
            let i = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x <= y => {
                    a.next();
                    x
                }
                (Some(_), Some(_)) | (None, Some(_)) => *b.next().expect("peeked"),
                (Some(_), None) => *a.next().expect("peeked"),
                (None, None) => return None,
            };
            let authz = &self.list[i];
            if authz.admits(ip, tls, identity) {
                return Some((i, authz));
            }
        }
    }
}

impl Authorization {
    /// Linkerd's `audit` default: admits everyone, and says so in the logs.
    pub fn is_audit(&self) -> bool {
        self.kind == "default" && self.name == "audit"
    }

    /// "A client is authorized when its address is in one of the networks
    /// (and in none of that network's exceptions) and its TLS status
    /// satisfies the authentication."
    pub fn admits(&self, ip: IpAddr, tls: bool, identity: Option<&str>) -> bool {
        self.admits_network(ip) && self.admits_tls(tls, identity)
    }

    pub fn admits_network(&self, ip: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|n| n.net.contains(&ip) && !n.except.iter().any(|e| e.contains(&ip)))
    }

    pub fn admits_tls(&self, tls: bool, identity: Option<&str>) -> bool {
        match &self.authentication {
            Authentication::Unauthenticated => true,
            Authentication::TlsUnauthenticated => tls,
            Authentication::TlsAuthenticated(ids) => match identity {
                Some(id) => ids.iter().any(|m| m.matches(id)),
                None => false,
            },
        }
    }

    /// `kind/name`, as logs and traces name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

impl IdentityMatch {
    /// Linkerd's syntax: `*`, `*.suffix.labels`, or an exact identity.
    pub fn parse(s: &str) -> Self {
        if s == "*" {
            return Self::Suffix(String::new());
        }
        match s.strip_prefix("*.") {
            Some(rest) => Self::Suffix(rest.to_string()),
            None => Self::Exact(s.to_string()),
        }
    }

    /// A suffix matches whole labels: `*.booksapp.serviceaccount...`
    /// matches `books.booksapp.serviceaccount...` but not `booksapp...`
    /// itself. SPIFFE IDs only match exactly.
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(name) => name == identity,
            Self::Suffix(s) if s.is_empty() => true,
            Self::Suffix(_) if identity.starts_with("spiffe://") => false,
            Self::Suffix(s) => {
                identity.len() > s.len() + 1
                    && identity.ends_with(s.as_str())
                    && identity.as_bytes()[identity.len() - s.len() - 1] == b'.'
            }
        }
    }
}

impl std::fmt::Display for IdentityMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Suffix(s) if s.is_empty() => f.write_str("*"),
            Self::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

impl PathMatch {
    pub fn prefix(p: &str) -> Self {
        let trimmed = p.trim_end_matches('/');
        Self::Prefix(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        })
    }

    /// A regex anchored on both ends, as the Gateway API means it.
    pub fn regex(pattern: &str) -> Self {
        Self::Regex(anchored(pattern), pattern.to_string())
    }
}

impl ValueMatch {
    pub fn regex(name: &str, pattern: &str) -> Self {
        Self::Regex {
            name: name.to_string(),
            value: anchored(pattern),
            pattern: pattern.to_string(),
        }
    }

    pub fn exact(name: &str, value: &str) -> Self {
        Self::Exact {
            name: name.to_string(),
            value: value.to_string(),
        }
    }
}

fn anchored(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

impl HostMatch {
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix('*') {
            Some(rest) => Self::Suffix(rest.to_ascii_lowercase()),
            None => Self::Exact(s.to_ascii_lowercase()),
        }
    }
}

impl ServerPolicy {
    /// `kind/name`, as logs and traces name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// A default policy's server: its authorizations, and one route for
    /// every HTTP request and one for every gRPC call (which carry none of
    /// their own, as Linkerd's default routes).
    pub fn default_policy(name: &str, authorizations: Vec<Authorization>) -> Self {
        Self {
            kind: "default".into(),
            name: name.into(),
            protocol: Protocol::Detect,
            authorizations: Arc::new(Authorizations::new(authorizations)),
            http_routes: vec![Route::default_http()],
            grpc_routes: vec![Route::default_grpc()],
        }
    }
}

impl Route<HttpMatch> {
    /// Linkerd's `default` route: every path.
    pub fn default_http() -> Self {
        Self {
            kind: "default".into(),
            name: "default".into(),
            hostnames: vec![],
            rules: vec![RouteMatches {
                matches: vec![HttpMatch {
                    path: Some(PathMatch::prefix("/")),
                    ..Default::default()
                }],
            }],
            authorizations: Arc::default(),
        }
    }
}

impl Route<GrpcMatch> {
    pub fn default_grpc() -> Self {
        Self {
            kind: "default".into(),
            name: "default".into(),
            hostnames: vec![],
            rules: vec![RouteMatches {
                matches: vec![GrpcMatch::default()],
            }],
            authorizations: Arc::default(),
        }
    }
}

impl<M> Route<M> {
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_matches() {
        let books = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
        let cases = [
            ("*", books, true),
            (
                "*.booksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                true,
            ),
            (
                "*.serviceaccount.identity.linkerd.cluster.local",
                books,
                true,
            ),
            (
                "*.webapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            // A suffix needs at least one label before it.
            (
                "*.booksapp.serviceaccount.identity.linkerd.cluster.local",
                "booksapp.serviceaccount.identity.linkerd.cluster.local",
                false,
            ),
            // Whole labels only.
            (
                "*.ksapp.serviceaccount.identity.linkerd.cluster.local",
                books,
                false,
            ),
            (books, books, true),
            (
                books,
                "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
                false,
            ),
            (
                "*.local",
                "spiffe://cluster.local/ns/booksapp/sa/books",
                false,
            ),
            (
                "spiffe://cluster.local/ns/booksapp/sa/books",
                "spiffe://cluster.local/ns/booksapp/sa/books",
                true,
            ),
        ];
        for (pattern, identity, want) in cases {
            assert_eq!(
                IdentityMatch::parse(pattern).matches(identity),
                want,
                "{pattern} vs {identity}"
            );
        }
    }

    #[test]
    fn first_admitting_keeps_the_order_across_the_index() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let all = vec![Network {
            net: "0.0.0.0/0".parse().unwrap(),
            except: vec![],
        }];
        let authz = |name: &str, auth: Authentication| Authorization {
            kind: "authorizationpolicy".into(),
            name: name.into(),
            networks: all.clone(),
            authentication: auth,
        };
        let exact = |id: &str| Authentication::TlsAuthenticated(vec![IdentityMatch::parse(id)]);
        let list = Authorizations::new(vec![
            authz("a-web", exact("web.ns")),
            authz(
                "b-suffix",
                Authentication::TlsAuthenticated(vec![IdentityMatch::parse("*.ns")]),
            ),
            authz("c-books", exact("books.ns")),
            authz("d-any", Authentication::Unauthenticated),
        ]);
        let first = |id: Option<&str>| {
            list.first_admitting(ip, id.is_some(), id)
                .map(|a| a.name.as_str())
        };
        assert_eq!(first(Some("web.ns")), Some("a-web"));
        assert_eq!(first(Some("books.ns")), Some("b-suffix"));
        assert_eq!(first(Some("x.other")), Some("d-any"));
        assert_eq!(first(None), Some("d-any"));
    }

    /// A MeshTLSAuthentication's `spiffe://` entries admit exactly that ID,
    /// through the index as through the list; a suffix never reaches one.
    #[test]
    fn spiffe_ids_are_admitted_exactly_table() {
        const BOOKS: &str = "spiffe://cluster.local/ns/booksapp/sa/books";
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let all = vec![Network {
            net: "0.0.0.0/0".parse().unwrap(),
            except: vec![],
        }];
        let authz = |ids: &[&str]| {
            Authorizations::new(vec![Authorization {
                kind: "authorizationpolicy".into(),
                name: "books".into(),
                networks: all.clone(),
                authentication: Authentication::TlsAuthenticated(
                    ids.iter().map(|i| IdentityMatch::parse(i)).collect(),
                ),
            }])
        };
        let cases: [(&[&str], Option<&str>, bool); 11] = [
            (&[BOOKS], Some(BOOKS), true),
            (
                &[BOOKS],
                Some("spiffe://cluster.local/ns/booksapp/sa/books2"),
                false,
            ),
            (
                &[BOOKS],
                Some("spiffe://cluster.local/ns/booksapp/sa/book"),
                false,
            ),
            (
                &[BOOKS],
                Some("spiffe://other.domain/ns/booksapp/sa/books"),
                false,
            ),
            (
                &[BOOKS],
                Some("SPIFFE://cluster.local/ns/booksapp/sa/books"),
                false,
            ),
            // The same workload's DNS-form name is another identity.
            (
                &[BOOKS],
                Some("books.booksapp.serviceaccount.identity.linkerd.cluster.local"),
                false,
            ),
            (&[BOOKS], None, false),
            // A suffix entry never matches a SPIFFE ID, whatever its tail.
            (
                &["*.cluster.local/ns/booksapp/sa/books"],
                Some(BOOKS),
                false,
            ),
            (&["*.local"], Some(BOOKS), false),
            // `*` is any authenticated identity, SPIFFE ones included.
            (&["*"], Some(BOOKS), true),
            // Mixed with DNS entries: still exact.
            (&["web.ns", BOOKS], Some(BOOKS), true),
        ];
        for (ids, client, want) in cases {
            let got = authz(ids)
                .first_admitting(ip, client.is_some(), client)
                .is_some();
            assert_eq!(got, want, "{ids:?} vs {client:?}");
        }
    }
}
