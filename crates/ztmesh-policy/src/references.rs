//! Problems only visible across objects: references to objects that do not
//! exist, and Servers competing for the same workload port. They are
//! warnings (the index works around them as Linkerd does), reported by
//! `ztmesh controller --check` and logged by the controller.

use crate::index::Index;
use crate::view::NsResources;
use ztmesh_resources::policy::Port;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `Kind namespace/name` of the object at fault.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

pub fn findings(index: &Index) -> Vec<Finding> {
    let mut out = Vec::new();
    for (ns, res) in index.namespaces() {
        dangling(index, ns, res, &mut out);
        port_names(index, ns, res, &mut out);
    }
    conflicts(index, &mut out);
    out.sort();
    out
}

fn dangling(index: &Index, ns: &str, res: &NsResources, out: &mut Vec<Finding>) {
    let mut warn = |object: String, message: String| out.push(Finding { object, message });
    for (name, saz) in &res.server_authorizations {
        if let Some(server) = &saz.spec.server.name
            && !res.servers.contains_key(server)
        {
            warn(
                format!("ServerAuthorization {ns}/{name}"),
                format!(
                    "spec.server.name: Server {ns}/{server} does not exist; the authorization applies to nothing"
                ),
            );
        }
    }
    for (name, ap) in &res.authorization_policies {
        let object = format!("AuthorizationPolicy {ns}/{name}");
        let t = &ap.spec.target_ref;
        let exists = if t.kind.eq_ignore_ascii_case("Server") {
            res.servers.contains_key(&t.name)
        } else if t.kind.eq_ignore_ascii_case("HTTPRoute") {
            let group = t.group.clone().unwrap_or_default();
            res.http_routes.contains_key(&(group, t.name.clone()))
        } else if t.kind.eq_ignore_ascii_case("GRPCRoute") {
            res.grpc_routes.contains_key(&t.name)
        } else {
            t.name == ns
        };
        if !exists {
            warn(
                object.clone(),
                format!(
                    "spec.targetRef: {} {ns}/{} does not exist; the policy applies to nothing",
                    t.kind, t.name
                ),
            );
        }
        for (i, r) in ap.spec.required_authentication_refs.iter().enumerate() {
            let ref_ns = r.namespace.as_deref().unwrap_or(ns);
            let target = index.namespace(ref_ns);
            let missing = if r.kind.eq_ignore_ascii_case("MeshTLSAuthentication") {
                target.is_none_or(|t| !t.meshtls_authentications.contains_key(&r.name))
            } else if r.kind.eq_ignore_ascii_case("NetworkAuthentication") {
                target.is_none_or(|t| !t.network_authentications.contains_key(&r.name))
            } else {
                false
            };
            if missing {
                warn(
                    object.clone(),
                    format!(
                        "spec.requiredAuthenticationRefs[{i}]: {} {ref_ns}/{} does not exist; the policy is ignored (it admits no one)",
                        r.kind, r.name
                    ),
                );
            }
        }
    }
    for ((group, name), route) in &res.http_routes {
        for (i, p) in route.spec.parent_refs.iter().flatten().enumerate() {
            if p.is_server()
                && p.namespace.as_deref().is_none_or(|n| n == ns)
                && !res.servers.contains_key(&p.name)
            {
                warn(
                    format!("HTTPRoute.{group} {ns}/{name}"),
                    format!(
                        "spec.parentRefs[{i}]: Server {ns}/{} does not exist",
                        p.name
                    ),
                );
            }
        }
    }
}

/// A Server naming a port that none of the workloads it selects defines
/// applies nowhere.
fn port_names(index: &Index, ns: &str, res: &NsResources, out: &mut Vec<Finding>) {
    for (name, server) in &res.servers {
        let Port::Name(port) = &server.spec.port else {
            continue;
        };
        let selected: Vec<_> = index
            .workloads()
            .filter(|(wl_ns, _, wl)| {
                let selector = if wl.external {
                    &server.spec.external_workload_selector
                } else {
                    &server.spec.pod_selector
                };
                *wl_ns == ns && selector.as_ref().is_some_and(|s| s.matches(&wl.labels))
            })
            .collect();
        if !selected.is_empty()
            && selected
                .iter()
                .all(|(_, _, wl)| !wl.port_names.contains_key(port))
        {
            out.push(Finding {
                object: format!("Server {ns}/{name}"),
                message: format!(
                    "spec.port: none of the {} workload(s) it selects defines a port named {port:?}; the Server applies nowhere",
                    selected.len()
                ),
            });
        }
    }
}

/// "Two Servers selecting the same workload port are legal: the oldest
/// wins (then by name) and the other gets a warning."
fn conflicts(index: &Index, out: &mut Vec<Finding>) {
    for (ns, workload, wl) in index.workloads() {
        let Some(res) = index.namespace(ns) else {
            continue;
        };
        let mut by_port: std::collections::BTreeMap<
            u16,
            Vec<&ztmesh_resources::load::Object<ztmesh_resources::policy::ServerSpec>>,
        > = Default::default();
        for server in res.servers.values() {
            let selector = if wl.external {
                &server.spec.external_workload_selector
            } else {
                &server.spec.pod_selector
            };
            if !selector.as_ref().is_some_and(|s| s.matches(&wl.labels)) {
                continue;
            }
            let ports: Vec<u16> = match &server.spec.port {
                Port::Number(n) => vec![*n],
                Port::Name(name) => wl
                    .port_names
                    .get(name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect(),
            };
            for port in ports {
                by_port.entry(port).or_default().push(server);
            }
        }
        for (port, mut servers) in by_port {
            if servers.len() < 2 {
                continue;
            }
            servers.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
                    .then_with(|| a.name().cmp(b.name()))
            });
            for loser in &servers[1..] {
                out.push(Finding {
                    object: format!("Server {ns}/{}", loser.name()),
                    message: format!(
                        "{workload} port {port} is already selected by the older Server {}; this one does not apply there",
                        servers[0].name()
                    ),
                });
            }
        }
    }
}
