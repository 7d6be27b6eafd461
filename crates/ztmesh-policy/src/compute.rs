//! How one workload port's inbound policy is derived. Each step quotes the
//! rule it implements; together they follow Linkerd's policy controller.

use crate::defaults::{DefaultPolicy, all_networks};
use crate::model::*;
use crate::view::{NsResources, View, Workload};
use std::collections::BTreeMap;
use ztmesh_resources::load::Object;
use ztmesh_resources::policy::{self as api, AuthorizationPolicySpec, ServerSpec};
use ztmesh_resources::route::{self as routes, PathMatchType, ValueMatchType};

const POLICY_GROUP: &str = "policy.linkerd.io";

pub fn inbound_server(view: &View, ns: &str, wl: &Workload, port: u16) -> InboundServer {
    // "A port is governed by the Servers in its namespace whose selector
    // matches the workload and whose port matches the port. If several do,
    // the oldest wins (no creationTimestamp sorts first), then by name."
    if let Some(res) = view.namespace(ns) {
        let mut servers: Vec<&Object<ServerSpec>> = res
            .servers
            .values()
            .filter(|s| selects(s, wl, port))
            .collect();
        servers.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.name().cmp(b.name()))
        });
        if let Some(server) = servers.first() {
            for other in &servers[1..] {
                tracing::warn!(
                    namespace = ns,
                    port,
                    server = server.name(),
                    conflict = other.name(),
                    "port already selected by an older Server; ignoring this one"
                );
            }
            return server_policy(view, ns, res, server, wl, port);
        }
    }
    default_server(view, ns, wl, port)
}

fn selects(server: &Object<ServerSpec>, wl: &Workload, port: u16) -> bool {
    let selector = if wl.external {
        &server.spec.external_workload_selector
    } else {
        &server.spec.pod_selector
    };
    let port_matches = match &server.spec.port {
        api::Port::Number(n) => *n == port,
        api::Port::Name(name) => wl
            .port_names
            .get(name)
            .is_some_and(|ports| ports.contains(&port)),
    };
    port_matches && selector.as_ref().is_some_and(|s| s.matches(&wl.labels))
}

/// "Without a Server, the default policy applies: the workload's
/// annotation, else its namespace's, else the cluster's."
fn default_server(view: &View, ns: &str, wl: &Workload, port: u16) -> InboundServer {
    let cluster = view.cluster();
    let policy = wl
        .default_policy
        .or_else(|| view.namespace(ns).and_then(|r| r.default_policy))
        .unwrap_or(cluster.default_policy);
    let protocol = if wl.opaque_ports.contains(&port) {
        ProxyProtocol::Opaque
    } else {
        ProxyProtocol::Detect {
            timeout: cluster.default_detect_timeout,
        }
    };
    InboundServer {
        reference: ServerRef::Default(policy.as_str()),
        server_ips: wl.ips.clone(),
        protocol,
        authorizations: policy.authorizations(cluster),
        http_routes: default_http_routes(view, wl, port),
        grpc_routes: BTreeMap::new(),
    }
}

/// "Without routes, a Server gets a route matching everything, plus, for
/// a pod with HTTP probes on the port, a route authorizing GET on exactly
/// those paths from the probe networks."
fn default_http_routes(view: &View, wl: &Workload, port: u16) -> BTreeMap<RouteRef, HttpRoute> {
    let mut out = BTreeMap::from([(RouteRef::Default("default"), default_http_route())]);
    let cluster = view.cluster();
    let paths = wl.probes.get(&port);
    if cluster.probe_networks.is_empty() || paths.is_none_or(|p| p.is_empty()) {
        return out;
    }
    let matches = paths
        .into_iter()
        .flatten()
        .map(|p| HttpRouteMatch {
            path: Some(PathMatch::Exact(p.clone())),
            method: Some("GET".into()),
            ..Default::default()
        })
        .collect();
    let authz = ClientAuthorization {
        networks: cluster
            .probe_networks
            .iter()
            .copied()
            .map(NetworkMatch::all)
            .collect(),
        authentication: ClientAuthentication::Unauthenticated,
    };
    out.insert(
        RouteRef::Default("probe"),
        HttpRoute {
            hostnames: vec![],
            rules: vec![matches],
            authorizations: BTreeMap::from([(AuthorizationRef::Default("probe"), authz)]),
        },
    );
    out
}

fn server_policy(
    view: &View,
    ns: &str,
    res: &NsResources,
    server: &Object<ServerSpec>,
    wl: &Workload,
    port: u16,
) -> InboundServer {
    let cluster = view.cluster();
    let name = server.name();
    let protocol = match server.spec.proxy_protocol {
        None | Some(api::ProxyProtocol::Unknown) => ProxyProtocol::Detect {
            timeout: cluster.default_detect_timeout,
        },
        Some(api::ProxyProtocol::Http1) => ProxyProtocol::Http1,
        Some(api::ProxyProtocol::Http2) => ProxyProtocol::Http2,
        Some(api::ProxyProtocol::Grpc) => ProxyProtocol::Grpc,
        Some(api::ProxyProtocol::Opaque) => ProxyProtocol::Opaque,
        Some(api::ProxyProtocol::Tls) => ProxyProtocol::Tls,
    };

    let mut authorizations = BTreeMap::new();
    // "A ServerAuthorization applies to the Servers it names or whose labels
    // its selector matches."
    let server_labels = server.metadata.labels.clone().unwrap_or_default();
    for (saz_name, saz) in &res.server_authorizations {
        let sel = &saz.spec.server;
        let applies = match (&sel.name, &sel.selector) {
            (Some(n), _) => n == name,
            (None, Some(s)) => s.matches(&server_labels),
            (None, None) => false,
        };
        if applies {
            authorizations.insert(
                AuthorizationRef::ServerAuthorization(saz_name.clone()),
                server_authorization(view, ns, &saz.spec.client),
            );
        }
    }
    // "An AuthorizationPolicy applies to the Server it targets by name, or
    // to every Server of the Namespace it targets. Policies targeting routes
    // attach to those routes instead."
    for (ap_name, ap) in &res.authorization_policies {
        let t = &ap.spec.target_ref;
        if t.namespace.as_deref().is_some_and(|n| n != ns) {
            continue;
        }
        let applies = (t.is_kind(POLICY_GROUP, "Server") && t.name == name)
            || ((t.is_kind("", "Namespace") || t.is_kind("core", "Namespace")) && t.name == ns);
        if !applies {
            continue;
        }
        match policy_authorization(view, ns, &ap.spec) {
            Ok(authz) => {
                authorizations.insert(
                    AuthorizationRef::AuthorizationPolicy(ap_name.clone()),
                    authz,
                );
            }
            Err(error) => {
                tracing::warn!(namespace = ns, authorizationpolicy = %ap_name, server = name, %error, "AuthorizationPolicy ignored")
            }
        }
    }
    // "Server v1beta3 accessPolicy: the default policy for clients no
    // authorization admits."
    if let Some(access) = &server.spec.access_policy
        && let Ok(policy) = access.parse::<DefaultPolicy>()
    {
        authorizations.extend(policy.authorizations(cluster));
    }

    let http_routes = http_routes(view, ns, res, name);
    let http_routes = if http_routes.is_empty() {
        default_http_routes(view, wl, port)
    } else {
        http_routes
    };
    let grpc_routes = grpc_routes(view, ns, res, name);
    let grpc_routes = if grpc_routes.is_empty() {
        BTreeMap::from([(RouteRef::Default("default"), default_grpc_route())])
    } else {
        grpc_routes
    };
    InboundServer {
        reference: ServerRef::Server(name.to_string()),
        server_ips: wl.ips.clone(),
        protocol,
        authorizations,
        http_routes,
        grpc_routes,
    }
}

/// Legacy semantics: no networks means the cluster networks;
/// `unauthenticated: true` admits anyone; `unauthenticatedTLS` any TLS client.
fn server_authorization(view: &View, ns: &str, client: &api::Client) -> ClientAuthorization {
    let cluster = view.cluster();
    let networks = match client.networks.as_deref() {
        Some(nets) if !nets.is_empty() => nets.iter().map(network).collect(),
        _ => cluster
            .networks
            .iter()
            .copied()
            .map(NetworkMatch::all)
            .collect(),
    };
    let authentication = match (&client.mesh_tls, client.unauthenticated) {
        (_, true) | (None, false) => ClientAuthentication::Unauthenticated,
        (Some(mtls), false) if mtls.unauthenticated_tls => ClientAuthentication::TlsUnauthenticated,
        (Some(mtls), false) => {
            let ids = mtls
                .identities
                .iter()
                .flatten()
                .map(|id| IdentityMatch::parse(id));
            let sas = mtls.service_accounts.iter().flatten().map(|sa| {
                let sa_ns = sa.namespace.as_deref().unwrap_or(ns);
                IdentityMatch::Exact(cluster.service_account_identity(sa_ns, &sa.name))
            });
            ClientAuthentication::TlsAuthenticated(ids.chain(sas).collect())
        }
    };
    ClientAuthorization {
        networks,
        authentication,
    }
}

fn network(n: &api::Network) -> NetworkMatch {
    NetworkMatch {
        net: n.cidr.0,
        except: n.except.iter().flatten().map(|c| c.0).collect(),
    }
}

/// Why an AuthorizationPolicy is ignored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{kind} {namespace}/{name} does not exist")]
    Missing {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("more than one MeshTLSAuthentication or ServiceAccount is required")]
    TwoIdentitySources,
    #[error("more than one NetworkAuthentication is required")]
    TwoNetworkSources,
}

/// "The required authentications combine: identities from one
/// MeshTLSAuthentication or ServiceAccount, networks from one
/// NetworkAuthentication; what is not required is not restricted."
pub fn policy_authorization(
    view: &View,
    ns: &str,
    spec: &AuthorizationPolicySpec,
) -> Result<ClientAuthorization, PolicyError> {
    let missing = |kind, namespace: &str, name: &str| PolicyError::Missing {
        kind,
        namespace: namespace.into(),
        name: name.into(),
    };
    let cluster = view.cluster();
    let mut identities: Option<Vec<IdentityMatch>> = None;
    let mut networks: Option<Vec<NetworkMatch>> = None;
    for r in &spec.required_authentication_refs {
        let ref_ns = r.namespace.as_deref().unwrap_or(ns);
        if r.is_kind(POLICY_GROUP, "MeshTLSAuthentication") {
            let authn = view
                .namespace(ref_ns)
                .and_then(|res| res.meshtls_authentications.get(&r.name))
                .ok_or_else(|| missing("MeshTLSAuthentication", ref_ns, &r.name))?;
            if identities.is_some() {
                return Err(PolicyError::TwoIdentitySources);
            }
            let mut ids: Vec<IdentityMatch> = authn
                .spec
                .identities
                .iter()
                .flatten()
                .map(|i| IdentityMatch::parse(i))
                .collect();
            for id_ref in authn.spec.identity_refs.iter().flatten() {
                let id_ns = id_ref.namespace.as_deref().unwrap_or(ref_ns);
                if id_ref.kind.eq_ignore_ascii_case("ServiceAccount") {
                    ids.push(IdentityMatch::Exact(
                        cluster.service_account_identity(id_ns, &id_ref.name),
                    ));
                } else if id_ref.name == "*" {
                    ids.push(IdentityMatch::Suffix(vec![]));
                } else {
                    // A Namespace: every service account in it.
                    let suffix = format!(
                        "{}.serviceaccount.identity.{}.{}",
                        id_ref.name, cluster.control_plane_ns, cluster.trust_domain
                    );
                    ids.push(IdentityMatch::Suffix(
                        suffix.split('.').map(String::from).collect(),
                    ));
                }
            }
            identities = Some(ids);
        } else if r.is_kind(POLICY_GROUP, "NetworkAuthentication") {
            let authn = view
                .namespace(ref_ns)
                .and_then(|res| res.network_authentications.get(&r.name))
                .ok_or_else(|| missing("NetworkAuthentication", ref_ns, &r.name))?;
            if networks.is_some() {
                return Err(PolicyError::TwoNetworkSources);
            }
            networks = Some(authn.spec.networks.iter().map(network).collect());
        } else if r.is_kind("", "ServiceAccount") || r.is_kind("core", "ServiceAccount") {
            if identities.is_some() {
                return Err(PolicyError::TwoIdentitySources);
            }
            identities = Some(vec![IdentityMatch::Exact(
                cluster.service_account_identity(ref_ns, &r.name),
            )]);
        }
    }
    Ok(ClientAuthorization {
        authentication: identities
            .map(ClientAuthentication::TlsAuthenticated)
            .unwrap_or(ClientAuthentication::Unauthenticated),
        networks: networks.unwrap_or_else(all_networks),
    })
}

/// "An HTTPRoute attaches to a Server through a parentRef of kind Server in
/// group policy.linkerd.io; its authorizations are the AuthorizationPolicies
/// that target the route."
fn http_routes(
    view: &View,
    ns: &str,
    res: &NsResources,
    server: &str,
) -> BTreeMap<RouteRef, HttpRoute> {
    res.http_routes
        .iter()
        .filter(|(_, r)| attaches(r.spec.parent_refs.as_deref(), ns, server))
        .map(|((group, name), r)| {
            let reference = RouteRef::Resource {
                group: group.clone(),
                kind: "HTTPRoute".into(),
                name: name.clone(),
            };
            let route = HttpRoute {
                hostnames: r.spec.hostnames.clone().unwrap_or_default(),
                rules: r
                    .spec
                    .rules
                    .iter()
                    .flatten()
                    .map(|rule| match rule.matches.as_deref() {
                        Some(ms) if !ms.is_empty() => ms.iter().map(http_match).collect(),
                        _ => default_http_route().rules.remove(0),
                    })
                    .collect::<Vec<_>>(),
                authorizations: route_authorizations(view, ns, res, group, "HTTPRoute", name),
            };
            let route = if route.rules.is_empty() {
                HttpRoute {
                    rules: default_http_route().rules,
                    ..route
                }
            } else {
                route
            };
            (reference, route)
        })
        .collect()
}

fn grpc_routes(
    view: &View,
    ns: &str,
    res: &NsResources,
    server: &str,
) -> BTreeMap<RouteRef, GrpcRoute> {
    res.grpc_routes
        .iter()
        .filter(|(_, r)| attaches(r.spec.parent_refs.as_deref(), ns, server))
        .map(|(name, r)| {
            let group = "gateway.networking.k8s.io";
            let reference = RouteRef::Resource {
                group: group.into(),
                kind: "GRPCRoute".into(),
                name: name.clone(),
            };
            let rules = r
                .spec
                .rules
                .iter()
                .flatten()
                .map(|rule| match rule.matches.as_deref() {
                    Some(ms) if !ms.is_empty() => ms
                        .iter()
                        .map(|m| GrpcRouteMatch {
                            service: m.method.as_ref().and_then(|x| x.service.clone()),
                            method: m.method.as_ref().and_then(|x| x.method.clone()),
                            headers: m.headers.iter().flatten().map(value_match).collect(),
                        })
                        .collect(),
                    _ => vec![GrpcRouteMatch::default()],
                })
                .collect();
            let route = GrpcRoute {
                hostnames: r.spec.hostnames.clone().unwrap_or_default(),
                rules,
                authorizations: route_authorizations(view, ns, res, group, "GRPCRoute", name),
            };
            (reference, route)
        })
        .collect()
}

fn attaches(parents: Option<&[routes::ParentRef]>, ns: &str, server: &str) -> bool {
    parents.into_iter().flatten().any(|p| {
        p.is_server() && p.name == server && p.namespace.as_deref().is_none_or(|n| n == ns)
    })
}

fn route_authorizations(
    view: &View,
    ns: &str,
    res: &NsResources,
    group: &str,
    kind: &str,
    name: &str,
) -> BTreeMap<AuthorizationRef, ClientAuthorization> {
    let mut out = BTreeMap::new();
    for (ap_name, ap) in &res.authorization_policies {
        let t = &ap.spec.target_ref;
        if !(t.is_kind(group, kind)
            && t.name == name
            && t.namespace.as_deref().is_none_or(|n| n == ns))
        {
            continue;
        }
        match policy_authorization(view, ns, &ap.spec) {
            Ok(authz) => {
                out.insert(
                    AuthorizationRef::AuthorizationPolicy(ap_name.clone()),
                    authz,
                );
            }
            Err(error) => {
                tracing::warn!(namespace = ns, authorizationpolicy = %ap_name, route = name, %error, "AuthorizationPolicy ignored")
            }
        }
    }
    out
}

fn http_match(m: &routes::HttpRouteMatch) -> HttpRouteMatch {
    let path = m.path.as_ref().map(|p| {
        let value = p.value.clone().unwrap_or_else(|| "/".into());
        match p.kind.unwrap_or(PathMatchType::PathPrefix) {
            PathMatchType::Exact => PathMatch::Exact(value),
            PathMatchType::PathPrefix => PathMatch::Prefix(value),
            PathMatchType::RegularExpression => PathMatch::Regex(value),
        }
    });
    HttpRouteMatch {
        path,
        headers: m.headers.iter().flatten().map(value_match).collect(),
        query_params: m.query_params.iter().flatten().map(value_match).collect(),
        method: m.method.clone(),
    }
}

fn value_match(v: &routes::ValueMatch) -> ValueMatch {
    match v.kind.unwrap_or(ValueMatchType::Exact) {
        ValueMatchType::Exact => ValueMatch::Exact {
            name: v.name.clone(),
            value: v.value.clone(),
        },
        ValueMatchType::RegularExpression => ValueMatch::Regex {
            name: v.name.clone(),
            value: v.value.clone(),
        },
    }
}
