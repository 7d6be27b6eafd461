//! The decision: a permit or a typed denial, and optionally the trace of
//! how it was reached (what `ztmesh diagnose policy` prints).
//!
//! Rules, as linkerd2-proxy applies them:
//! - opaque connections: "the first of the server's authorizations that
//!   admits the client permits the connection; none: the connection is
//!   refused";
//! - HTTP and gRPC requests: "the request takes its best-matching route;
//!   no route: 404 (route not found). The first of the route's
//!   authorizations, then the server's, that admits the client permits the
//!   request; none: 403 (unauthorized)";
//! - "an authorization admits a client whose address is in one of its
//!   networks but none of that network's exceptions, and whose TLS
//!   satisfies its authentication: anyone (unauthenticated), any TLS
//!   client, or mesh TLS with a listed identity or identity suffix".

use crate::policy::{Authorization, Authorizations, Protocol, ServerPolicy};
use crate::route::{RequestFacts, find_grpc, find_http};
use std::net::IpAddr;

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client<'a> {
    pub ip: IpAddr,
    /// The connection is (mesh) TLS terminated by the proxy.
    pub tls: bool,
    /// The identity the client's certificate proved.
    pub identity: Option<&'a str>,
}

/// Why the answer is yes: the names metrics and logs carry, borrowed from
/// the policy (deciding allocates nothing).
#[derive(Clone, Copy, Debug)]
pub struct Permit<'p> {
    pub server: &'p ServerPolicy,
    /// (kind, name) of the route (requests only).
    pub route: Option<(&'p str, &'p str)>,
    pub authorization: &'p Authorization,
    /// Where in the server's policy the route and the authorization are.
    pub key: PermitKey,
}

/// Where a permit was found in its [`ServerPolicy`]: the route's position
/// among the server's HTTP (or gRPC) routes, and the admitting
/// authorization's list and position in it. Two permits of the same
/// policy value with equal keys name the same route and authorization, so
/// what a caller derives from a permit may be cached under its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PermitKey {
    pub route: Option<usize>,
    pub authorization: (AuthzList, usize),
}

/// Which list an authorization came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthzList {
    /// The route's own authorizations.
    Route,
    /// The server's.
    Server,
}

impl Permit<'_> {
    /// Admitted only by the `audit` default: it would have been denied.
    pub fn audit(&self) -> bool {
        self.authorization.is_audit()
    }

    pub fn route_name(&self) -> &str {
        self.route.map(|(_, n)| n).unwrap_or("")
    }
}

/// Why the answer is no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("{server}: no route matches the request")]
    RouteNotFound { server: String },
    #[error(
        "{}: the client presented no mesh identity, and every authorization that admits its address requires one",
        place(server, route)
    )]
    Unauthenticated {
        server: String,
        route: Option<String>,
    },
    #[error("{}: no authorization admits the client", place(server, route))]
    Unauthorized {
        server: String,
        route: Option<String>,
    },
}

fn place(server: &str, route: &Option<String>) -> String {
    match route {
        Some(r) => format!("{server}, {r}"),
        None => server.to_string(),
    }
}

impl Denial {
    pub fn server(&self) -> &str {
        match self {
            Self::RouteNotFound { server }
            | Self::Unauthenticated { server, .. }
            | Self::Unauthorized { server, .. } => server,
        }
    }

    pub fn route(&self) -> Option<&str> {
        match self {
            Self::RouteNotFound { .. } => None,
            Self::Unauthenticated { route, .. } | Self::Unauthorized { route, .. } => {
                route.as_deref()
            }
        }
    }
}

/// Lines explaining a decision, collected only when asked for.
pub type Trace = Vec<String>;

/// An opaque connection (or a connection before its protocol is known).
pub fn decide_connection<'p>(
    server: &'p ServerPolicy,
    client: Client<'_>,
    mut trace: Option<&mut Trace>,
) -> Result<Permit<'p>, Denial> {
    if let Some(t) = trace.as_deref_mut() {
        t.push(format!(
            "{} governs the port; its {} authorization(s) decide connections",
            server.label(),
            server.authorizations.list().len()
        ));
    }
    authorize(
        server,
        None,
        &[(AuthzList::Server, &server.authorizations)],
        client,
        trace,
    )
}

/// An HTTP request (gRPC when the server's protocol is gRPC, or when the
/// request says `content-type: application/grpc` and the server has
/// gRPC routes but no HTTP ones).
pub fn decide_request<'p, B>(
    server: &'p ServerPolicy,
    client: Client<'_>,
    req: &http::Request<B>,
    mut trace: Option<&mut Trace>,
) -> Result<Permit<'p>, Denial> {
    let facts = RequestFacts::new(req);
    let grpc = server.protocol == Protocol::Grpc;
    let found = if grpc {
        find_grpc(&server.grpc_routes, &facts)
            .map(|(i, r, _)| (i, (r.kind.as_str(), r.name.as_str()), &r.authorizations))
    } else {
        find_http(&server.http_routes, &facts)
            .map(|(i, r, _)| (i, (r.kind.as_str(), r.name.as_str()), &r.authorizations))
    };
    let Some((route_index, route, route_authzs)) = found else {
        let server_label = server.label();
        if let Some(t) = trace.as_deref_mut() {
            let (kind, routes): (&str, Vec<String>) = if grpc {
                (
                    "gRPC",
                    server.grpc_routes.iter().map(|r| r.label()).collect(),
                )
            } else {
                (
                    "HTTP",
                    server.http_routes.iter().map(|r| r.label()).collect(),
                )
            };
            t.push(format!(
                "{server_label}: no {kind} route matches {} {} (routes: {})",
                req.method(),
                req.uri().path(),
                if routes.is_empty() {
                    "none".into()
                } else {
                    routes.join(", ")
                }
            ));
        }
        return Err(Denial::RouteNotFound {
            server: server_label,
        });
    };
    if let Some(t) = trace.as_deref_mut() {
        t.push(format!(
            "{}: {} {} takes route {}/{}",
            server.label(),
            req.method(),
            req.uri().path(),
            route.0,
            route.1
        ));
    }
    authorize(
        server,
        Some((route_index, route)),
        &[
            (AuthzList::Route, route_authzs),
            (AuthzList::Server, &server.authorizations),
        ],
        client,
        trace,
    )
}

fn authorize<'p>(
    server: &'p ServerPolicy,
    route: Option<(usize, (&'p str, &'p str))>,
    lists: &[(AuthzList, &'p Authorizations)],
    client: Client<'_>,
    trace: Option<&mut Trace>,
) -> Result<Permit<'p>, Denial> {
    let found = lists.iter().find_map(|(list, l)| {
        l.first_admitting_at(client.ip, client.tls, client.identity)
            .map(|(i, a)| ((*list, i), a))
    });
    if let Some(t) = trace {
        explain(lists, client, found.map(|(_, a)| a), t);
    }
    if let Some((at, authorization)) = found {
        return Ok(Permit {
            server,
            route: route.map(|(_, r)| r),
            authorization,
            key: PermitKey {
                route: route.map(|(i, _)| i),
                authorization: at,
            },
        });
    }
    let route = route.map(|(_, r)| r);
    // Unauthenticated: an identity would have been the missing piece.
    let wanted_identity = client.identity.is_none()
        && lists
            .iter()
            .flat_map(|(_, l)| l.list())
            .any(|a| a.admits_network(client.ip) && !a.admits_tls(client.tls, None));
    let server = server.label();
    let route = route.map(|(kind, name)| format!("{kind}/{name}"));
    Err(if wanted_identity {
        Denial::Unauthenticated { server, route }
    } else {
        Denial::Unauthorized { server, route }
    })
}

/// One line per authorization looked at, in order, up to the one that
/// admitted the client.
fn explain(
    lists: &[(AuthzList, &Authorizations)],
    client: Client<'_>,
    found: Option<&Authorization>,
    t: &mut Trace,
) {
    let all: Vec<&Authorization> = lists.iter().flat_map(|(_, l)| l.list()).collect();
    if all.is_empty() {
        t.push("no authorizations apply here: everything is denied".into());
        return;
    }
    for a in all {
        let verdict = if found.is_some_and(|f| std::ptr::eq(f, a)) {
            "admits the client".to_string()
        } else if !a.admits_network(client.ip) {
            format!("does not admit {}: not in its networks", client.ip)
        } else if !a.admits_tls(client.tls, client.identity) {
            match (client.tls, client.identity) {
                (false, _) => "requires TLS; the connection is plaintext".into(),
                (true, None) => "requires a mesh identity; the client presented none".into(),
                (true, Some(id)) => format!("does not list identity {id}"),
            }
        } else {
            "admits the client, but an earlier one did first".into()
        };
        t.push(format!("authorization {}: {verdict}", a.label()));
        if found.is_some_and(|f| std::ptr::eq(f, a)) {
            break;
        }
    }
}
