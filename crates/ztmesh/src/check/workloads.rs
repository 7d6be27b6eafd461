//! The workloads a run looks at: every workload the manifests declare
//! with an address, its identity, declared ports, labels and proxy mode,
//! read through the policy index as the controller reads them.

use std::net::IpAddr;
use ztmesh_resources::Resource;

/// A workload the manifests declare, with an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Workload {
    pub(crate) namespace: String,
    /// `externalworkload/NAME` or the pod's name, as `viz stat` prints it.
    pub(crate) name: String,
    pub(crate) workload: ztmesh_policy::WorkloadRef,
    pub(crate) ip: IpAddr,
    /// The identity its service account (or meshTLS) gives it.
    pub(crate) identity: String,
    /// Its declared ports.
    pub(crate) ports: Vec<u16>,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    /// Its proxy runs in explicit mode (no iptables: its app's ports are
    /// reachable without the proxy).
    pub(crate) explicit: bool,
}

impl Workload {
    pub(crate) fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Workloads with an address, their identities and ports.
pub(crate) fn workloads(resources: &[Resource], namespace: Option<&str>) -> Vec<Workload> {
    let cluster = ztmesh_policy::ClusterInfo::default();
    let mut index = ztmesh_policy::Index::new(cluster.clone());
    let mut identities = Vec::new();
    for r in resources {
        identities.extend(crate::diagnose_policy::workload_identity(r, &cluster));
        index.apply(r.clone());
    }
    let mut out: Vec<Workload> = index
        .workloads()
        .filter(|(ns, _, _)| namespace.is_none_or(|n| n == *ns))
        .filter_map(|(ns, wref, wl)| {
            let identity = identities
                .iter()
                .find(|w| w.namespace == ns && &w.workload == wref)?
                .identity
                .clone();
            let name = match wref {
                ztmesh_policy::WorkloadRef::Pod(n) => n.clone(),
                ztmesh_policy::WorkloadRef::External(n) => format!("externalworkload/{n}"),
            };
            let ports = declared_ports(resources, ns, wref);
            Some(Workload {
                namespace: ns.to_string(),
                name,
                workload: wref.clone(),
                ip: *wl.ips.first()?,
                identity,
                ports,
                labels: wl.labels.clone(),
                explicit: explicit_mode(resources, ns, wref),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn object_of<'a>(
    resources: &'a [Resource],
    ns: &str,
    wref: &ztmesh_policy::WorkloadRef,
) -> Option<&'a Resource> {
    resources.iter().find(|r| {
        let k = r.key();
        k.namespace == ns
            && match (r, wref) {
                (Resource::Pod(_), ztmesh_policy::WorkloadRef::Pod(n))
                | (Resource::ExternalWorkload(_), ztmesh_policy::WorkloadRef::External(n)) => {
                    &k.name == n
                }
                _ => false,
            }
    })
}

/// The ports a workload declares (an ExternalWorkload's `ports`, a Pod's
/// container ports).
fn declared_ports(resources: &[Resource], ns: &str, wref: &ztmesh_policy::WorkloadRef) -> Vec<u16> {
    match object_of(resources, ns, wref) {
        Some(Resource::ExternalWorkload(o)) => {
            o.spec.ports.iter().flatten().map(|p| p.port).collect()
        }
        Some(Resource::Pod(p)) => p
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// The annotation local-mode workloads carry when their proxy runs
/// without iptables.
const PROXY_MODE: &str = "config.ztmesh.io/proxy-mode";

fn explicit_mode(resources: &[Resource], ns: &str, wref: &ztmesh_policy::WorkloadRef) -> bool {
    let annotations = match object_of(resources, ns, wref) {
        Some(Resource::ExternalWorkload(o)) => o.metadata.annotations.as_ref(),
        Some(Resource::Pod(p)) => p.metadata.annotations.as_ref(),
        _ => None,
    };
    annotations
        .and_then(|a| a.get(PROXY_MODE))
        .is_some_and(|m| m == "explicit")
}
