//! INV-7 over the compiled policy: what each workload port's
//! authorizations admit once `ztmesh_policy` has compiled them (as the
//! proxies receive them), so a grant is judged by its effect whatever
//! form its manifests took. Default policies are the `default-deny`
//! item's, not INV-7's.

use std::collections::BTreeSet;
use ztmesh_policy::{AuthorizationRef, ClientAuthentication, ClientAuthorization, IdentityMatch};
use ztmesh_resources::Resource;

/// What `a` admits beyond namespace `ns`, in words (none when scoped).
pub(crate) fn beyond(ns: &str, a: &ClientAuthorization) -> Vec<String> {
    let nets = || {
        a.networks
            .iter()
            .map(|n| n.net.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &a.authentication {
        ClientAuthentication::Unauthenticated => {
            vec![format!("admits unauthenticated clients from {}", nets())]
        }
        ClientAuthentication::TlsUnauthenticated => {
            vec!["admits TLS clients without identity".into()]
        }
        ClientAuthentication::TlsAuthenticated(ids) => ids
            .iter()
            .filter_map(|id| match id {
                IdentityMatch::Exact(id) => match identity_namespace(id) {
                    Some(n) if n == ns => None,
                    Some(n) => Some(format!("admits {id} of namespace {n}")),
                    None => Some(format!("admits {id}, of no namespace that can be told")),
                },
                IdentityMatch::Suffix(labels) if labels.is_empty() => {
                    Some("admits every mesh identity".into())
                }
                IdentityMatch::Suffix(labels) => match &labels[..] {
                    [n, sa, identity, ..]
                        if n == ns && sa == "serviceaccount" && identity == "identity" =>
                    {
                        None
                    }
                    _ => Some(format!("admits *.{}", labels.join("."))),
                },
            })
            .collect(),
    }
}

/// Every compiled authorization of every declared workload port that
/// admits more than its namespace, named with where it applies.
pub(crate) fn compiled(resources: &[Resource]) -> Vec<String> {
    let mut index = ztmesh_policy::Index::new(ztmesh_policy::ClusterInfo::default());
    for r in resources {
        index.apply(r.clone());
    }
    let mut out = BTreeSet::new();
    for w in super::workloads::workloads(resources, None) {
        for port in &w.ports {
            let Ok(server) = index.server(&w.namespace, &w.workload, *port) else {
                continue;
            };
            let grants = server
                .authorizations
                .iter()
                .chain(server.http_routes.values().flat_map(|r| &r.authorizations))
                .chain(server.grpc_routes.values().flat_map(|r| &r.authorizations));
            for (reference, a) in grants {
                let name = match reference {
                    AuthorizationRef::Default(_) => continue,
                    AuthorizationRef::ServerAuthorization(n) => format!("ServerAuthorization {n}"),
                    AuthorizationRef::AuthorizationPolicy(n) => format!("AuthorizationPolicy {n}"),
                };
                for what in beyond(&w.namespace, a) {
                    out.insert(format!(
                        "{}/{name}, compiled for {}:{port}: {what}",
                        w.namespace,
                        w.display()
                    ));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The namespace an identity (DNS or SPIFFE form) belongs to, when it can
/// be told exactly: `SA.NS.serviceaccount.identity.CP.TRUST-DOMAIN` (SA
/// may be `*`) or `spiffe://TRUST-DOMAIN/ns/NS/sa/SA`. A suffix wildcard
/// (`*.cluster.local`, `*.serviceaccount.identity...`) or another form has
/// none: it may admit any namespace.
pub(crate) fn identity_namespace(id: &str) -> Option<&str> {
    if let Some(rest) = id.strip_prefix("spiffe://") {
        return match rest.split('/').collect::<Vec<_>>()[..] {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Some(ns)
            }
            _ => None,
        };
    }
    let labels: Vec<&str> = id.split('.').collect();
    match labels[..] {
        [sa, ns, "serviceaccount", "identity", cp, td, ..]
            if !sa.is_empty() && !ns.is_empty() && !cp.is_empty() && !td.is_empty() =>
        {
            Some(ns)
        }
        _ => None,
    }
}
