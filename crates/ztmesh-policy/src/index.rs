//! The synchronous policy index.
//!
//! Resources and workloads are applied and deleted one at a time; after
//! each change every watched (workload, port) whose policy could change is
//! recomputed and, if different, published on its `watch` channel. Tests
//! `apply()` a resource and assert on the receiver.

use crate::compute;
use crate::defaults::{ClusterInfo, DEFAULT_POLICY_ANNOTATION, DefaultPolicy};
use crate::model::InboundServer;
use crate::view::{NsResources, View, Workload, WorkloadRef};
use std::collections::{BTreeMap, HashMap};
use tokio::sync::watch;
use ztmesh_resources::load::{Object, ResourceKey};
use ztmesh_resources::meta::opaque_ports;
use ztmesh_resources::workload::ExternalWorkloadSpec;
use ztmesh_resources::{Pod, Resource};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error(
        "no workload {workload} in namespace {namespace} (add a Pod or ExternalWorkload manifest)"
    )]
    UnknownWorkload {
        namespace: String,
        workload: WorkloadRef,
    },
    #[error("port 0 is not a port")]
    PortZero,
}

type PortKey = (String, WorkloadRef, u16);

pub struct Index {
    view: View,
    watches: HashMap<PortKey, watch::Sender<InboundServer>>,
}

impl Index {
    pub fn new(cluster: ClusterInfo) -> Self {
        Self {
            view: View::new(cluster),
            watches: HashMap::new(),
        }
    }

    /// What the policy is computed from.
    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn cluster(&self) -> &ClusterInfo {
        self.view.cluster()
    }

    pub fn namespace(&self, ns: &str) -> Option<&NsResources> {
        self.view.namespace(ns)
    }

    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &NsResources)> {
        self.view.namespaces()
    }

    pub fn workload(&self, ns: &str, workload: &WorkloadRef) -> Option<&Workload> {
        self.view.workload(ns, workload)
    }

    pub fn workloads(&self) -> impl Iterator<Item = (&str, &WorkloadRef, &Workload)> {
        self.view.workloads()
    }

    /// Applies (adds or replaces) a resource. Kinds without inbound policy
    /// meaning (Service, ServiceProfile, ServiceAccount,
    /// ClusterFederatedTrustDomain) are ignored here.
    pub fn apply(&mut self, resource: Resource) {
        let key = resource.key();
        let ns = key.namespace.clone();
        let name = key.name.clone();
        let scope = match resource {
            Resource::Server(o) => {
                self.ns(&ns).servers.insert(name, o);
                Scope::Namespace(ns)
            }
            Resource::ServerAuthorization(o) => {
                self.ns(&ns).server_authorizations.insert(name, o);
                Scope::Namespace(ns)
            }
            Resource::AuthorizationPolicy(o) => {
                self.ns(&ns).authorization_policies.insert(name, o);
                Scope::Namespace(ns)
            }
            // Authentications may be referenced from any namespace.
            Resource::MeshTlsAuthentication(o) => {
                self.ns(&ns).meshtls_authentications.insert(name, o);
                Scope::All
            }
            Resource::NetworkAuthentication(o) => {
                self.ns(&ns).network_authentications.insert(name, o);
                Scope::All
            }
            Resource::HttpRoute(o) => {
                let group = o
                    .api_version
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.ns(&ns).http_routes.insert((group, name), o);
                Scope::Namespace(ns)
            }
            Resource::GrpcRoute(o) => {
                self.ns(&ns).grpc_routes.insert(name, o);
                Scope::Namespace(ns)
            }
            Resource::Namespace(o) => {
                let policy = default_policy_annotation(
                    o.metadata.annotations.as_ref(),
                    &format!("Namespace {name}"),
                );
                self.ns(&name).default_policy = policy;
                Scope::Namespace(name)
            }
            Resource::Pod(pod) => {
                let workload = pod_workload(&pod);
                self.view
                    .workloads
                    .insert((ns.clone(), WorkloadRef::Pod(name)), workload);
                Scope::Namespace(ns)
            }
            Resource::ExternalWorkload(o) => {
                let workload = external_workload(&o);
                self.view
                    .workloads
                    .insert((ns.clone(), WorkloadRef::External(name)), workload);
                Scope::Namespace(ns)
            }
            Resource::Service(_)
            | Resource::ServiceProfile(_)
            | Resource::ServiceAccount(_)
            | Resource::ClusterFederatedTrustDomain(_) => {
                return;
            }
        };
        self.reindex(scope);
    }

    /// Deletes a resource by key; unknown keys are ignored.
    pub fn delete(&mut self, key: &ResourceKey) {
        let (ns, name) = (key.namespace.clone(), key.name.clone());
        let scope = match key.kind.as_str() {
            "Pod" => {
                self.remove_workload(&ns, WorkloadRef::Pod(name));
                Scope::None
            }
            "ExternalWorkload" => {
                self.remove_workload(&ns, WorkloadRef::External(name));
                Scope::None
            }
            "Namespace" => {
                if let Some(r) = self.view.namespaces.get_mut(&name) {
                    r.default_policy = None;
                }
                Scope::Namespace(name)
            }
            kind => {
                let Some(r) = self.view.namespaces.get_mut(&ns) else {
                    return;
                };
                match kind {
                    "Server" => r.servers.remove(&name).map(|_| Scope::Namespace(ns)),
                    "ServerAuthorization" => r
                        .server_authorizations
                        .remove(&name)
                        .map(|_| Scope::Namespace(ns)),
                    "AuthorizationPolicy" => r
                        .authorization_policies
                        .remove(&name)
                        .map(|_| Scope::Namespace(ns)),
                    "MeshTLSAuthentication" => {
                        r.meshtls_authentications.remove(&name).map(|_| Scope::All)
                    }
                    "NetworkAuthentication" => {
                        r.network_authentications.remove(&name).map(|_| Scope::All)
                    }
                    "HTTPRoute.policy.linkerd.io" => r
                        .http_routes
                        .remove(&("policy.linkerd.io".into(), name))
                        .map(|_| Scope::Namespace(ns)),
                    "HTTPRoute.gateway.networking.k8s.io" => r
                        .http_routes
                        .remove(&("gateway.networking.k8s.io".into(), name))
                        .map(|_| Scope::Namespace(ns)),
                    "GRPCRoute" => r.grpc_routes.remove(&name).map(|_| Scope::Namespace(ns)),
                    _ => None,
                }
                .unwrap_or(Scope::None)
            }
        };
        self.reindex(scope);
    }

    /// The current policy of a workload port, without watching it.
    pub fn server(
        &self,
        ns: &str,
        workload: &WorkloadRef,
        port: u16,
    ) -> Result<InboundServer, LookupError> {
        if port == 0 {
            return Err(LookupError::PortZero);
        }
        let wl = self
            .workload(ns, workload)
            .ok_or_else(|| LookupError::UnknownWorkload {
                namespace: ns.into(),
                workload: workload.clone(),
            })?;
        Ok(compute::inbound_server(&self.view, ns, wl, port))
    }

    /// A receiver that always holds the port's current policy.
    pub fn watch(
        &mut self,
        ns: &str,
        workload: &WorkloadRef,
        port: u16,
    ) -> Result<watch::Receiver<InboundServer>, LookupError> {
        let key = (ns.to_string(), workload.clone(), port);
        if let Some(tx) = self.watches.get(&key) {
            return Ok(tx.subscribe());
        }
        let server = self.server(ns, workload, port)?;
        let (tx, rx) = watch::channel(server);
        self.watches.insert(key, tx);
        Ok(rx)
    }

    /// Number of (workload, port) pairs being watched.
    pub fn watched_ports(&self) -> usize {
        self.watches.len()
    }

    /// Forgets a workload; its watches end and proxies ask again.
    fn remove_workload(&mut self, ns: &str, workload: WorkloadRef) {
        self.view
            .workloads
            .remove(&(ns.to_string(), workload.clone()));
        self.watches
            .retain(|(n, w, _), _| !(n == ns && *w == workload));
    }

    fn ns(&mut self, ns: &str) -> &mut NsResources {
        self.view.namespaces.entry(ns.to_string()).or_default()
    }

    fn reindex(&mut self, scope: Scope) {
        let keys: Vec<PortKey> = match &scope {
            Scope::None => return,
            Scope::All => self.watches.keys().cloned().collect(),
            Scope::Namespace(ns) => self
                .watches
                .keys()
                .filter(|(n, _, _)| n == ns)
                .cloned()
                .collect(),
        };
        for key in keys {
            let (ns, workload, port) = &key;
            let Some(wl) = self.view.workload(ns, workload) else {
                continue;
            };
            let server = compute::inbound_server(&self.view, ns, wl, *port);
            if let Some(tx) = self.watches.get(&key) {
                tx.send_if_modified(|current| {
                    if *current == server {
                        return false;
                    }
                    *current = server;
                    true
                });
            }
        }
        // Receivers that went away leave their senders behind; drop those.
        self.watches.retain(|_, tx| tx.receiver_count() > 0);
    }
}

enum Scope {
    None,
    Namespace(String),
    All,
}

fn default_policy_annotation(
    annotations: Option<&BTreeMap<String, String>>,
    what: &str,
) -> Option<DefaultPolicy> {
    let value = annotations?.get(DEFAULT_POLICY_ANNOTATION)?;
    match value.parse() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("{what}: {DEFAULT_POLICY_ANNOTATION}: {e}; using the default");
            None
        }
    }
}

fn pod_workload(pod: &Pod) -> Workload {
    let meta = &pod.metadata;
    let what = format!("Pod {}", meta.name.as_deref().unwrap_or_default());
    let mut wl = Workload {
        labels: meta.labels.clone().unwrap_or_default(),
        external: false,
        default_policy: default_policy_annotation(meta.annotations.as_ref(), &what),
        opaque_ports: opaque_ports(meta.annotations.as_ref()),
        ..Default::default()
    };
    let status = pod.status.as_ref();
    wl.ips = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if wl.ips.is_empty() {
        wl.ips.extend(
            status
                .and_then(|s| s.pod_ip.as_ref())
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok()),
        );
    }
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    for c in containers.clone() {
        for p in c.ports.iter().flatten() {
            if let (Some(name), Ok(port)) = (&p.name, u16::try_from(p.container_port)) {
                wl.port_names.entry(name.clone()).or_default().insert(port);
            }
        }
    }
    for c in containers {
        for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
            .into_iter()
            .flatten()
        {
            let Some(get) = &probe.http_get else { continue };
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            let port = match &get.port {
                IntOrString::Int(p) => u16::try_from(*p).ok(),
                IntOrString::String(name) => {
                    wl.port_names.get(name).and_then(|ps| ps.first().copied())
                }
            };
            if let Some(port) = port {
                wl.probes
                    .entry(port)
                    .or_default()
                    .insert(get.path.clone().unwrap_or_else(|| "/".into()));
            }
        }
    }
    wl
}

fn external_workload(o: &Object<ExternalWorkloadSpec>) -> Workload {
    let meta = &o.metadata;
    let mut wl = Workload {
        labels: meta.labels.clone().unwrap_or_default(),
        external: true,
        default_policy: default_policy_annotation(
            meta.annotations.as_ref(),
            &format!("ExternalWorkload {}", o.name()),
        ),
        opaque_ports: opaque_ports(meta.annotations.as_ref()),
        ..Default::default()
    };
    wl.ips = o.spec.workload_ips.iter().flatten().map(|w| w.ip).collect();
    for p in o.spec.ports.iter().flatten() {
        if let Some(name) = &p.name {
            wl.port_names
                .entry(name.clone())
                .or_default()
                .insert(p.port);
        }
    }
    wl
}
