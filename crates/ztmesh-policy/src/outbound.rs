//! Outbound policy: what a client proxy does with traffic to a Service port.
//!
//! HTTPRoutes whose parentRef is the Service (producer routes, in the
//! Service's namespace) route requests; each rule sends to its
//! `backendRefs` in proportion to their weights (default weight 1; no
//! backendRefs means the parent Service itself). Without routes, one default
//! route sends everything to the Service. The Service's annotations set
//! opaque ports and failure accrual, as in Linkerd.

use crate::model::{HttpRouteMatch, PathMatch, RouteRef, ValueMatch};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::watch;
use ztmesh_resources::load::{Object, ResourceKey};
use ztmesh_resources::route::{HttpRouteSpec, PathMatchType, ValueMatchType};
use ztmesh_resources::{Resource, Service};

mod annotations;
pub use annotations::{
    AnnotationError, ConsecutiveFailures, RouteRetry, failure_accrual, http_retry,
    timeout_annotation,
};

#[derive(Clone, Debug, PartialEq)]
pub struct OutboundPolicy {
    pub namespace: String,
    pub service: String,
    pub port: u16,
    /// `svc.ns.svc.cluster.local:port`, what the proxy resolves.
    pub authority: String,
    pub opaque: bool,
    pub http_routes: Vec<(RouteRef, OutboundRoute)>,
    pub failure_accrual: Option<ConsecutiveFailures>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRoute {
    pub hostnames: Vec<String>,
    pub rules: Vec<OutboundRule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRule {
    pub matches: Vec<HttpRouteMatch>,
    pub backends: Vec<Backend>,
    /// HTTPRoute `timeouts.request`, else the `timeout.linkerd.io/request`
    /// (or `/response`) annotation.
    pub request_timeout: Option<Duration>,
    /// The route's `retry.linkerd.io/*` annotations.
    pub retry: Option<RouteRetry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    pub weight: u32,
    pub authority: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceInfo {
    ports: BTreeSet<u16>,
    cluster_ips: Vec<IpAddr>,
    annotations: BTreeMap<String, String>,
}

/// An HTTPRoute by namespace, API group and name.
type RouteKey = (String, String, String);

/// What a proxy asks about: a name or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OutboundTarget {
    Authority(String),
    Addr(SocketAddr),
}

pub struct OutboundIndex {
    cluster_domain: String,
    services: BTreeMap<(String, String), ServiceInfo>,
    routes: BTreeMap<RouteKey, Object<HttpRouteSpec>>,
    watches: HashMap<(String, String, u16), watch::Sender<OutboundPolicy>>,
}

impl OutboundIndex {
    pub fn new(cluster_domain: &str) -> Self {
        Self {
            cluster_domain: cluster_domain.into(),
            services: BTreeMap::new(),
            routes: BTreeMap::new(),
            watches: HashMap::new(),
        }
    }

    pub fn apply(&mut self, resource: &Resource) {
        let key = resource.key();
        match resource {
            Resource::Service(svc) => {
                self.services
                    .insert((key.namespace.clone(), key.name), service_info(svc));
            }
            Resource::HttpRoute(route) => {
                let group = route
                    .api_version
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.routes
                    .insert((key.namespace.clone(), group, key.name), route.clone());
            }
            _ => return,
        }
        self.reindex(&key.namespace);
    }

    pub fn delete(&mut self, key: &ResourceKey) {
        let removed = match key.kind.as_str() {
            "Service" => self
                .services
                .remove(&(key.namespace.clone(), key.name.clone()))
                .is_some(),
            kind => match kind.strip_prefix("HTTPRoute.") {
                Some(group) => self
                    .routes
                    .remove(&(key.namespace.clone(), group.to_string(), key.name.clone()))
                    .is_some(),
                None => false,
            },
        };
        if removed {
            self.reindex(&key.namespace);
        }
    }

    /// Resolves a target to (namespace, service, port), if it is a Service port.
    pub fn resolve(&self, target: &OutboundTarget) -> Option<(String, String, u16)> {
        match target {
            OutboundTarget::Addr(addr) => self
                .services
                .iter()
                .find(|(_, s)| s.cluster_ips.contains(&addr.ip()) && s.ports.contains(&addr.port()))
                .map(|((ns, name), _)| (ns.clone(), name.clone(), addr.port())),
            OutboundTarget::Authority(authority) => {
                let (host, port) = authority.rsplit_once(':')?;
                let port: u16 = port.parse().ok()?;
                let rest = host
                    .trim_end_matches('.')
                    .strip_suffix(&format!(".svc.{}", self.cluster_domain))?;
                let (name, ns) = rest.split_once('.')?;
                let svc = self.services.get(&(ns.to_string(), name.to_string()))?;
                svc.ports
                    .contains(&port)
                    .then(|| (ns.to_string(), name.to_string(), port))
            }
        }
    }

    pub fn policy(&self, ns: &str, name: &str, port: u16) -> Option<OutboundPolicy> {
        let svc = self.services.get(&(ns.to_string(), name.to_string()))?;
        let parent = Backend {
            namespace: ns.into(),
            name: name.into(),
            port,
            weight: 1,
            authority: self.authority(ns, name, port),
        };
        let mut routes: Vec<(&RouteKey, &Object<HttpRouteSpec>)> = self
            .routes
            .iter()
            .filter(|((route_ns, _, _), r)| {
                route_ns == ns
                    && r.spec.parent_refs.iter().flatten().any(|p| {
                        p.is_service()
                            && p.name == name
                            && p.namespace.as_deref().is_none_or(|n| n == ns)
                            && p.port.is_none_or(|p| p == port)
                    })
            })
            .collect();
        // "Routes are ordered by creation time, then name."
        routes.sort_by(|(a_key, a), (b_key, b)| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a_key.2.cmp(&b_key.2))
        });
        let mut http_routes: Vec<(RouteRef, OutboundRoute)> = routes
            .into_iter()
            .map(|((route_ns, group, route_name), r)| {
                let annotations: BTreeMap<String, String> = r
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let retry = http_retry(&annotations).unwrap_or_else(|error| {
                    tracing::warn!(namespace = ns, httproute = %route_name, %error, "retry annotations ignored");
                    None
                });
                let annotated_timeout = timeout_annotation(&annotations).unwrap_or_else(|error| {
                    tracing::warn!(namespace = ns, httproute = %route_name, %error, "timeout annotations ignored");
                    None
                });
                let rules = r
                    .spec
                    .rules
                    .iter()
                    .flatten()
                    .map(|rule| OutboundRule {
                        matches: match rule.matches.as_deref() {
                            Some(ms) if !ms.is_empty() => ms.iter().map(http_match).collect(),
                            _ => vec![match_all()],
                        },
                        backends: match rule.backend_refs.as_deref() {
                            Some(refs) if !refs.is_empty() => refs
                                .iter()
                                .map(|b| {
                                    let b_ns =
                                        b.namespace.clone().unwrap_or_else(|| route_ns.clone());
                                    let b_port = b.port.unwrap_or(port);
                                    Backend {
                                        authority: self.authority(&b_ns, &b.name, b_port),
                                        namespace: b_ns,
                                        name: b.name.clone(),
                                        port: b_port,
                                        weight: b.weight.unwrap_or(1),
                                    }
                                })
                                .collect(),
                            _ => vec![parent.clone()],
                        },
                        request_timeout: rule
                            .timeouts
                            .as_ref()
                            .and_then(|t| t.request.as_deref())
                            .and_then(|t| ztmesh_resources::duration::parse(t).ok())
                            .or(annotated_timeout),
                        retry: retry.clone(),
                    })
                    .collect();
                (
                    RouteRef::Resource {
                        group: group.clone(),
                        kind: "HTTPRoute".into(),
                        name: route_name.clone(),
                    },
                    OutboundRoute {
                        hostnames: r.spec.hostnames.clone().unwrap_or_default(),
                        rules,
                    },
                )
            })
            .collect();
        if http_routes.is_empty() {
            http_routes.push((
                RouteRef::Default("default"),
                OutboundRoute {
                    hostnames: vec![],
                    rules: vec![OutboundRule {
                        matches: vec![match_all()],
                        backends: vec![parent.clone()],
                        request_timeout: None,
                        retry: None,
                    }],
                },
            ));
        }
        let opaque = ztmesh_resources::meta::opaque_ports(Some(&svc.annotations)).contains(&port);
        let failure_accrual = match failure_accrual(&svc.annotations) {
            Ok(f) => f,
            Err(error) => {
                tracing::warn!(namespace = ns, service = name, %error, "failure accrual annotations ignored");
                None
            }
        };
        Some(OutboundPolicy {
            namespace: ns.into(),
            service: name.into(),
            port,
            authority: parent.authority,
            opaque,
            http_routes,
            failure_accrual,
        })
    }

    /// Watches a Service port's policy; None if it is not a Service port.
    pub fn watch(
        &mut self,
        ns: &str,
        name: &str,
        port: u16,
    ) -> Option<watch::Receiver<OutboundPolicy>> {
        let key = (ns.to_string(), name.to_string(), port);
        if let Some(tx) = self.watches.get(&key) {
            return Some(tx.subscribe());
        }
        let (tx, rx) = watch::channel(self.policy(ns, name, port)?);
        self.watches.insert(key, tx);
        Some(rx)
    }

    fn authority(&self, ns: &str, name: &str, port: u16) -> String {
        format!("{name}.{ns}.svc.{}:{port}", self.cluster_domain)
    }

    fn reindex(&mut self, ns: &str) {
        let keys: Vec<_> = self
            .watches
            .keys()
            .filter(|(n, _, _)| n == ns)
            .cloned()
            .collect();
        for key in keys {
            // A deleted Service keeps its last policy; the stream's clients
            // see the Service vanish through Destination.
            let Some(policy) = self.policy(&key.0, &key.1, key.2) else {
                continue;
            };
            if let Some(tx) = self.watches.get(&key) {
                tx.send_if_modified(|cur| (*cur != policy).then(|| *cur = policy).is_some());
            }
        }
        self.watches.retain(|_, tx| tx.receiver_count() > 0);
    }
}

fn match_all() -> HttpRouteMatch {
    HttpRouteMatch {
        path: Some(PathMatch::Prefix("/".into())),
        ..Default::default()
    }
}

fn http_match(m: &ztmesh_resources::route::HttpRouteMatch) -> HttpRouteMatch {
    let value_match =
        |v: &ztmesh_resources::route::ValueMatch| match v.kind.unwrap_or(ValueMatchType::Exact) {
            ValueMatchType::Exact => ValueMatch::Exact {
                name: v.name.clone(),
                value: v.value.clone(),
            },
            ValueMatchType::RegularExpression => ValueMatch::Regex {
                name: v.name.clone(),
                value: v.value.clone(),
            },
        };
    HttpRouteMatch {
        path: m.path.as_ref().map(|p| {
            let v = p.value.clone().unwrap_or_else(|| "/".into());
            match p.kind.unwrap_or(PathMatchType::PathPrefix) {
                PathMatchType::Exact => PathMatch::Exact(v),
                PathMatchType::PathPrefix => PathMatch::Prefix(v),
                PathMatchType::RegularExpression => PathMatch::Regex(v),
            }
        }),
        headers: m.headers.iter().flatten().map(value_match).collect(),
        query_params: m.query_params.iter().flatten().map(value_match).collect(),
        method: m.method.clone(),
    }
}

fn service_info(svc: &Service) -> ServiceInfo {
    let spec = svc.spec.as_ref();
    let cluster_ips = ztmesh_resources::meta::cluster_ips(svc);
    ServiceInfo {
        ports: spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect(),
        cluster_ips,
        annotations: svc.metadata.annotations.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retry_annotations_table() {
        let retry = |limit, timeout, statuses| {
            Some(RouteRetry {
                limit,
                timeout,
                statuses,
            })
        };
        let cases: Vec<(Vec<(&str, &str)>, Result<Option<RouteRetry>, &str>)> = vec![
            (vec![], Ok(None)),
            (
                vec![("retry.linkerd.io/http", "5xx")],
                Ok(retry(1, None, vec![(500, 599)])),
            ),
            (
                vec![
                    ("retry.linkerd.io/http", "gateway-error,429,500-502"),
                    ("retry.linkerd.io/limit", "3"),
                    ("retry.linkerd.io/timeout", "300ms"),
                ],
                Ok(retry(
                    3,
                    Some(Duration::from_millis(300)),
                    vec![(502, 504), (429, 429), (500, 502)],
                )),
            ),
            (
                vec![("retry.linkerd.io/limit", "2")],
                Ok(retry(2, None, vec![])),
            ),
            (
                vec![("retry.linkerd.io/http", "4xx")],
                Err("retry.linkerd.io/http"),
            ),
            (
                vec![("retry.linkerd.io/http", "504-500")],
                Err("not a retry condition"),
            ),
            (vec![("retry.linkerd.io/limit", "lots")], Err("not a count")),
            (
                vec![("retry.linkerd.io/timeout", "soon")],
                Err("retry.linkerd.io/timeout"),
            ),
        ];
        for (pairs, want) in cases {
            let got = http_retry(&ann(&pairs));
            match want {
                Ok(w) => assert_eq!(got, Ok(w), "{pairs:?}"),
                Err(needle) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(needle), "{pairs:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn timeout_annotations() {
        assert_eq!(
            timeout_annotation(&ann(&[("timeout.linkerd.io/request", "2s")])),
            Ok(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            timeout_annotation(&ann(&[("timeout.linkerd.io/response", "750ms")])),
            Ok(Some(Duration::from_millis(750)))
        );
        assert!(timeout_annotation(&ann(&[("timeout.linkerd.io/request", "x")])).is_err());
        assert_eq!(timeout_annotation(&ann(&[])), Ok(None));
    }
}
