//! Problems only visible across objects: references to objects that do not
//! exist, and Servers competing for the same workload port. They are
//! warnings (the index works around them as Linkerd does), reported by
//! `ztmesh controller --check` and logged by the controller.
//! [`dangling_references`] (and [`dangling_in`], over loaded resources) is
//! the one definition of a dangling reference: the controller's findings
//! and `ztmesh check`'s "no dangling references" both use it.

use crate::index::Index;
use crate::view::NsResources;
use ztmesh_resources::Resource;
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

/// Every reference to an object that does not exist in `index`.
pub fn dangling_references(index: &Index) -> Vec<Finding> {
    let mut out = Vec::new();
    for (ns, res) in index.namespaces() {
        dangling(index, ns, res, &mut out);
    }
    out.sort();
    out
}

/// [`dangling_references`] among `resources` (loaded manifests).
pub fn dangling_in(resources: impl IntoIterator<Item = Resource>) -> Vec<Finding> {
    let mut index = Index::new(crate::ClusterInfo::default());
    for r in resources {
        index.apply(r);
    }
    dangling_references(&index)
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
    // A route's parent Servers, in the parent's namespace.
    let routes = res
        .http_routes
        .iter()
        .map(|((group, name), r)| {
            (
                format!("HTTPRoute.{group} {ns}/{name}"),
                &r.spec.parent_refs,
            )
        })
        .chain(
            res.grpc_routes
                .iter()
                .map(|(name, r)| (format!("GRPCRoute {ns}/{name}"), &r.spec.parent_refs)),
        );
    for (object, parents) in routes {
        for (i, p) in parents.iter().flatten().enumerate() {
            let parent_ns = p.namespace.as_deref().unwrap_or(ns);
            if p.is_server()
                && index
                    .namespace(parent_ns)
                    .is_none_or(|t| !t.servers.contains_key(&p.name))
            {
                warn(
                    object.clone(),
                    format!(
                        "spec.parentRefs[{i}]: Server {parent_ns}/{} does not exist",
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: authn, namespace: booksapp}\nspec: {identities: [\"books.booksapp.serviceaccount.identity.linkerd.cluster.local\"]}\n";

    #[test]
    fn dangling_references_are_named() {
        let cases: [(&str, &[&str]); 7] = [
            // Everything referenced exists.
            (
                "apiVersion: policy.linkerd.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: r, namespace: booksapp}\nspec:\n  parentRefs: [{name: authors, kind: Server, group: policy.linkerd.io}]\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: booksapp}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: r}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: authn}]\n",
                &[],
            ),
            (
                "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: bad, namespace: booksapp}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: nope}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: missing}]\n",
                &[
                    "AuthorizationPolicy booksapp/bad: spec.requiredAuthenticationRefs[0]: MeshTLSAuthentication booksapp/missing does not exist; the policy is ignored (it admits no one)",
                    "AuthorizationPolicy booksapp/bad: spec.targetRef: Server booksapp/nope does not exist; the policy applies to nothing",
                ],
            ),
            (
                "apiVersion: policy.linkerd.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: r, namespace: booksapp}\nspec:\n  parentRefs: [{name: ghost, kind: Server, group: policy.linkerd.io}]\n",
                &[
                    "HTTPRoute.policy.linkerd.io booksapp/r: spec.parentRefs[0]: Server booksapp/ghost does not exist",
                ],
            ),
            // A parent in another namespace is looked for there.
            (
                "apiVersion: policy.linkerd.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: r, namespace: other}\nspec:\n  parentRefs: [{name: authors, namespace: booksapp, kind: Server, group: policy.linkerd.io}, {name: authors, kind: Server, group: policy.linkerd.io}]\n",
                &[
                    "HTTPRoute.policy.linkerd.io other/r: spec.parentRefs[1]: Server other/authors does not exist",
                ],
            ),
            (
                "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: booksapp}\nspec:\n  parentRefs: [{name: ghost, kind: Server, group: policy.linkerd.io}]\n",
                &["GRPCRoute booksapp/g: spec.parentRefs[0]: Server booksapp/ghost does not exist"],
            ),
            (
                "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: saz, namespace: booksapp}\nspec: {server: {name: nope}, client: {unauthenticated: true}}\n",
                &[
                    "ServerAuthorization booksapp/saz: spec.server.name: Server booksapp/nope does not exist; the authorization applies to nothing",
                ],
            ),
            // A Service parent is outbound policy, not a reference to check.
            (
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: s, namespace: booksapp}\nspec:\n  parentRefs: [{name: books, kind: Service, group: core}]\n",
                &[],
            ),
        ];
        for (extra, want) in cases {
            let loaded = ztmesh_resources::load_str(&format!("{BASE}---\n{extra}"), "test.yaml");
            let got: Vec<String> = dangling_in(loaded.resources)
                .iter()
                .map(|f| f.to_string())
                .collect();
            assert_eq!(got, want, "{extra}");
        }
    }
}
