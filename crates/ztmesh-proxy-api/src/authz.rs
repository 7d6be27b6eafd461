//! linkerd2-proxy-api's `inbound.Server` as a decision-ready
//! [`ServerPolicy`] (ztmesh-authz): what the proxy builds from each
//! WatchPort update, and what `ztmesh diagnose policy` builds from the
//! controller's answer or from a manifests directory. An update that does
//! not make sense is refused whole, so the last good policy stays.

use linkerd2_proxy_api::inbound as proto;
use linkerd2_proxy_api::{grpc_route as grpc_proto, http_route as http_proto, meta};
use std::sync::Arc;
use ztmesh_authz::policy::{Authorizations, HostMatch};
use ztmesh_authz::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidPolicy {
    #[error("the server has no proxy protocol")]
    NoProtocol,
    #[error("authorization {0} has no networks")]
    NoNetworks(String),
    #[error("authorization {0} has no authentication")]
    NoAuthentication(String),
    #[error("authorization {name}: network {net:?} is not a CIDR")]
    BadNetwork { name: String, net: String },
    #[error("route {route}: method {method:?} is not an HTTP method")]
    BadMethod { route: String, method: String },
}

/// `(kind, name)` of a metadata, lowercased kind as Linkerd's labels.
pub fn names(
    m: Option<&meta::Metadata>,
    labels: Option<&std::collections::HashMap<String, String>>,
) -> (String, String) {
    match m.and_then(|m| m.kind.as_ref()) {
        Some(meta::metadata::Kind::Default(name)) => ("default".into(), name.clone()),
        Some(meta::metadata::Kind::Resource(r)) => (r.kind.to_ascii_lowercase(), r.name.clone()),
        None => {
            let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
            (get("kind"), get("name"))
        }
    }
}

pub fn server_policy(server: &proto::Server) -> Result<ServerPolicy, InvalidPolicy> {
    use proto::proxy_protocol::Kind;
    let (kind, name) = (
        server
            .labels
            .get("kind")
            .cloned()
            .unwrap_or_else(|| "server".into()),
        server.labels.get("name").cloned().unwrap_or_default(),
    );
    let authorizations = Arc::new(authorizations(&server.authorizations)?);
    let kind_of = server
        .protocol
        .as_ref()
        .and_then(|p| p.kind.as_ref())
        .ok_or(InvalidPolicy::NoProtocol)?;
    let (protocol, http, grpc): (Protocol, &[proto::HttpRoute], &[proto::GrpcRoute]) = match kind_of
    {
        Kind::Detect(d) => (Protocol::Detect, &d.http_routes, &[]),
        Kind::Http1(h) => (Protocol::Http1, &h.routes, &[]),
        Kind::Http2(h) => (Protocol::Http2, &h.routes, &[]),
        Kind::Grpc(g) => (Protocol::Grpc, &[], &g.routes),
        Kind::Opaque(_) => (Protocol::Opaque, &[], &[]),
        Kind::Tls(_) => (Protocol::Tls, &[], &[]),
    };
    let mut http_routes = http.iter().map(http_route).collect::<Result<Vec<_>, _>>()?;
    let mut grpc_routes = grpc.iter().map(grpc_route).collect::<Result<Vec<_>, _>>()?;
    // "A server without routes gets the default route", as linkerd2-proxy
    // fills it in (the controller normally sends one).
    if http_routes.is_empty() {
        http_routes.push(Route::default_http());
    }
    if grpc_routes.is_empty() {
        grpc_routes.push(Route::default_grpc());
    }
    Ok(ServerPolicy {
        kind,
        name,
        protocol,
        authorizations,
        http_routes,
        grpc_routes,
    })
}

fn authorizations(list: &[proto::Authz]) -> Result<Authorizations, InvalidPolicy> {
    list.iter()
        .map(authorization)
        .collect::<Result<Vec<_>, _>>()
        .map(Authorizations::new)
}

fn authorization(a: &proto::Authz) -> Result<Authorization, InvalidPolicy> {
    use proto::authn::{Permit, permit_mesh_tls::Clients};
    let (kind, name) = names(a.metadata.as_ref(), Some(&a.labels));
    if a.networks.is_empty() {
        return Err(InvalidPolicy::NoNetworks(name));
    }
    let net = |n: &linkerd2_proxy_api::net::IpNetwork| {
        ipnet::IpNet::try_from(*n).map_err(|_| InvalidPolicy::BadNetwork {
            name: name.clone(),
            net: format!("{n:?}"),
        })
    };
    let mut networks = Vec::new();
    for n in &a.networks {
        let Some(main) = &n.net else {
            return Err(InvalidPolicy::NoNetworks(name));
        };
        networks.push(Network {
            net: net(main)?,
            except: n.except.iter().map(net).collect::<Result<_, _>>()?,
        });
    }
    let authentication = match a.authentication.as_ref().and_then(|p| p.permit.as_ref()) {
        Some(Permit::Unauthenticated(_)) => Authentication::Unauthenticated,
        Some(Permit::MeshTls(tls)) => match &tls.clients {
            Some(Clients::Unauthenticated(_)) => Authentication::TlsUnauthenticated,
            Some(Clients::Identities(ids)) => Authentication::TlsAuthenticated(
                ids.identities
                    .iter()
                    .map(|i| IdentityMatch::Exact(i.name.clone()))
                    .chain(
                        ids.suffixes
                            .iter()
                            .map(|s| IdentityMatch::Suffix(s.parts.join("."))),
                    )
                    .collect(),
            ),
            None => return Err(InvalidPolicy::NoAuthentication(name)),
        },
        None => return Err(InvalidPolicy::NoAuthentication(name)),
    };
    Ok(Authorization {
        kind,
        name,
        networks,
        authentication,
    })
}

fn host_matches(hosts: &[http_proto::HostMatch]) -> Vec<HostMatch> {
    use http_proto::host_match::Match;
    hosts
        .iter()
        .filter_map(|h| match h.r#match.as_ref()? {
            Match::Exact(e) => Some(HostMatch::Exact(e.to_ascii_lowercase())),
            Match::Suffix(s) => {
                let labels: Vec<&str> = s.reverse_labels.iter().rev().map(String::as_str).collect();
                Some(HostMatch::Suffix(
                    format!(".{}", labels.join(".")).to_ascii_lowercase(),
                ))
            }
        })
        .collect()
}

fn header_match(h: &http_proto::HeaderMatch) -> Option<ValueMatch> {
    use http_proto::header_match::Value;
    match h.value.as_ref()? {
        Value::Exact(v) => Some(ValueMatch::exact(&h.name, &String::from_utf8_lossy(v))),
        Value::Regex(r) => Some(ValueMatch::regex(&h.name, r)),
    }
}

/// An HTTP route match in linkerd2-proxy-api's terms as ztmesh-authz's
/// (shared by inbound routes and the outbound proxy's HTTPRoutes).
pub fn http_match(m: &http_proto::HttpRouteMatch, route: &str) -> Result<HttpMatch, InvalidPolicy> {
    use http_proto::path_match::Kind as P;
    use http_proto::query_param_match::Value as Q;
    let method =
        match &m.method {
            None => None,
            Some(method) => Some(http::Method::try_from(method.clone()).map_err(|_| {
                InvalidPolicy::BadMethod {
                    route: route.to_string(),
                    method: format!("{method:?}"),
                }
            })?),
        };
    Ok(HttpMatch {
        path: m
            .path
            .as_ref()
            .and_then(|p| p.kind.as_ref())
            .map(|k| match k {
                P::Exact(e) => PathMatch::Exact(e.clone()),
                P::Prefix(p) => PathMatch::prefix(p),
                P::Regex(r) => PathMatch::regex(r),
            }),
        headers: m.headers.iter().filter_map(header_match).collect(),
        query_params: m
            .query_params
            .iter()
            .filter_map(|q| match q.value.as_ref()? {
                Q::Exact(v) => Some(ValueMatch::exact(&q.name, v)),
                Q::Regex(r) => Some(ValueMatch::regex(&q.name, r)),
            })
            .collect(),
        method,
    })
}

fn http_route(r: &proto::HttpRoute) -> Result<Route<HttpMatch>, InvalidPolicy> {
    let (kind, name) = names(r.metadata.as_ref(), None);
    let mut rules = Vec::new();
    for rule in &r.rules {
        let matches = rule
            .matches
            .iter()
            .map(|m| http_match(m, &name))
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(RouteMatches { matches });
    }
    Ok(Route {
        kind,
        name,
        hostnames: host_matches(&r.hosts),
        rules,
        authorizations: Arc::new(authorizations(&r.authorizations)?),
    })
}

fn grpc_route(r: &proto::GrpcRoute) -> Result<Route<GrpcMatch>, InvalidPolicy> {
    let (kind, name) = names(r.metadata.as_ref(), None);
    let rules = r
        .rules
        .iter()
        .map(|rule| RouteMatches {
            matches: rule
                .matches
                .iter()
                .map(|m: &grpc_proto::GrpcRouteMatch| GrpcMatch {
                    service: m
                        .rpc
                        .as_ref()
                        .map(|r| r.service.clone())
                        .filter(|s| !s.is_empty()),
                    method: m
                        .rpc
                        .as_ref()
                        .map(|r| r.method.clone())
                        .filter(|s| !s.is_empty()),
                    headers: m.headers.iter().filter_map(header_match).collect(),
                })
                .collect(),
        })
        .collect();
    Ok(Route {
        kind,
        name,
        hostnames: host_matches(&r.hosts),
        rules,
        authorizations: Arc::new(authorizations(&r.authorizations)?),
    })
}
