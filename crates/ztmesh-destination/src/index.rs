//! The synchronous destination index.
//!
//! Endpoints of a Service port are the addresses of the Pods and
//! ExternalWorkloads in its namespace that its selector matches, on the
//! target port. A Pod is meshed when it runs a proxy (a `linkerd-proxy`
//! container, or `linkerd.io/inject: enabled`, or ztmesh's proxy-mode
//! annotation); an ExternalWorkload always is. Meshed endpoints carry their
//! identity and the HTTP/2 hint; opaque ports and explicit-mode proxies add
//! the opaque-transport inbound port. After each change, watched sets and
//! profiles in the namespace are recomputed and published if they differ.

use crate::model::*;
use crate::target::Target;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::watch;
use ztmesh_resources::load::ResourceKey;
use ztmesh_resources::profile::{self as sp, ServiceProfileSpec};
use ztmesh_resources::{Pod, Resource, Service};

mod slices;
pub use slices::{EndpointSlice, SERVICE_NAME_LABEL};

/// ztmesh: the workload's proxy runs in explicit mode (no iptables).
pub const PROXY_MODE_ANNOTATION: &str = "config.ztmesh.io/proxy-mode";
/// ztmesh: the proxy's inbound port, when not 4143.
pub const INBOUND_PORT_ANNOTATION: &str = "config.ztmesh.io/inbound-port";
pub const DEFAULT_INBOUND_PORT: u16 = 4143;

#[derive(Clone, Debug)]
pub struct DestinationCluster {
    pub control_plane_ns: String,
    pub trust_domain: String,
    pub cluster_domain: String,
}

impl Default for DestinationCluster {
    fn default() -> Self {
        Self {
            control_plane_ns: "linkerd".into(),
            trust_domain: "cluster.local".into(),
            cluster_domain: "cluster.local".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceInfo {
    selector: Option<BTreeMap<String, String>>,
    /// port -> target port (number or container port name)
    ports: BTreeMap<u16, IntOrString>,
    cluster_ips: Vec<IpAddr>,
    opaque_ports: BTreeSet<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct WorkloadInfo {
    kind: &'static str,
    ips: Vec<IpAddr>,
    labels: BTreeMap<String, String>,
    port_names: BTreeMap<String, u16>,
    tls: Option<TlsIdentity>,
    opaque_ports: BTreeSet<u16>,
    /// Explicit-mode inbound port.
    explicit_inbound: Option<u16>,
    metric_labels: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error(transparent)]
    BadTarget(#[from] crate::target::TargetError),
}

pub struct Index {
    cluster: DestinationCluster,
    services: BTreeMap<(String, String), ServiceInfo>,
    workloads: BTreeMap<(String, String, &'static str), WorkloadInfo>,
    profiles: BTreeMap<(String, String), ServiceProfileSpec>,
    endpoint_watches: HashMap<(String, String, u16), watch::Sender<EndpointSet>>,
    profile_watches: HashMap<Target, watch::Sender<Profile>>,
    /// Endpoints from EndpointSlices (Kubernetes), when enabled.
    slices: slices::Slices,
}

impl Index {
    pub fn new(cluster: DestinationCluster) -> Self {
        Self {
            cluster,
            services: BTreeMap::new(),
            workloads: BTreeMap::new(),
            profiles: BTreeMap::new(),
            endpoint_watches: HashMap::new(),
            profile_watches: HashMap::new(),
            slices: slices::Slices::default(),
        }
    }

    pub fn cluster(&self) -> &DestinationCluster {
        &self.cluster
    }

    pub fn parse_target(&self, path: &str) -> Result<Target, DestinationError> {
        Target::parse(path, &self.cluster.cluster_domain).map_err(DestinationError::BadTarget)
    }

    pub fn apply(&mut self, resource: Resource) {
        let key = resource.key();
        let ns = key.namespace.clone();
        match resource {
            Resource::Service(svc) => {
                self.slices.service_applied(&ns, &key.name, &svc);
                self.services
                    .insert((ns.clone(), key.name), service_info(&svc));
            }
            Resource::Pod(pod) => {
                let info = self.pod_info(&ns, &pod);
                self.workloads.insert((ns.clone(), key.name, "pod"), info);
            }
            Resource::ExternalWorkload(ew) => {
                let meta = &ew.metadata;
                let annotations = meta.annotations.clone().unwrap_or_default();
                let info = WorkloadInfo {
                    kind: "external_workload",
                    ips: ew
                        .spec
                        .workload_ips
                        .iter()
                        .flatten()
                        .map(|w| w.ip)
                        .collect(),
                    labels: meta.labels.clone().unwrap_or_default(),
                    port_names: ew
                        .spec
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| p.name.clone().map(|n| (n, p.port)))
                        .collect(),
                    tls: Some(TlsIdentity {
                        identity: ew.spec.mesh_tls.identity.clone(),
                        server_name: ew.spec.mesh_tls.server_name.clone(),
                    }),
                    opaque_ports: opaque_ports(&annotations),
                    explicit_inbound: explicit_inbound(&annotations),
                    metric_labels: crate::metric_labels::external_workload(&ns, &key.name),
                };
                self.workloads
                    .insert((ns.clone(), key.name, "external_workload"), info);
            }
            Resource::ServiceProfile(p) => {
                self.profiles.insert((ns.clone(), key.name), p.spec);
            }
            _ => return,
        }
        self.reindex(&ns);
    }

    pub fn delete(&mut self, key: &ResourceKey) {
        let (ns, name) = (key.namespace.clone(), key.name.clone());
        let removed = match key.kind.as_str() {
            "Service" => {
                self.slices.service_deleted(&ns, &name);
                self.services.remove(&(ns.clone(), name)).is_some()
            }
            "EndpointSlice" => self.slices.delete(&ns, &name),
            "Pod" => self.workloads.remove(&(ns.clone(), name, "pod")).is_some(),
            "ExternalWorkload" => self
                .workloads
                .remove(&(ns.clone(), name, "external_workload"))
                .is_some(),
            "ServiceProfile" => self.profiles.remove(&(ns.clone(), name)).is_some(),
            _ => false,
        };
        if removed {
            self.reindex(&ns);
        }
    }

    /// The endpoints of a service port, watched.
    pub fn watch_endpoints(
        &mut self,
        ns: &str,
        name: &str,
        port: u16,
    ) -> watch::Receiver<EndpointSet> {
        let key = (ns.to_string(), name.to_string(), port);
        if let Some(tx) = self.endpoint_watches.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(self.endpoints(ns, name, port));
        self.endpoint_watches.insert(key, tx);
        rx
    }

    /// The profile of a target, watched.
    pub fn watch_profile(&mut self, target: &Target) -> watch::Receiver<Profile> {
        if let Some(tx) = self.profile_watches.get(target) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(self.profile(target));
        self.profile_watches.insert(target.clone(), tx);
        rx
    }

    pub fn endpoints(&self, ns: &str, name: &str, port: u16) -> EndpointSet {
        let Some(svc) = self.services.get(&(ns.to_string(), name.to_string())) else {
            return EndpointSet::unknown();
        };
        let mut set = EndpointSet {
            exists: true,
            endpoints: BTreeMap::new(),
            labels: BTreeMap::from([
                ("namespace".into(), ns.to_string()),
                ("service".into(), name.to_string()),
            ]),
        };
        if self.slices.enabled {
            self.slice_endpoints(&mut set, ns, name, port, svc);
        }
        let (Some(selector), Some(target)) = (&svc.selector, svc.ports.get(&port)) else {
            return set;
        };
        if selector.is_empty() {
            return set;
        }
        for ((wl_ns, _, kind), wl) in &self.workloads {
            // With EndpointSlices, pods come from the slices (above).
            if self.slices.enabled && *kind == "pod" {
                continue;
            }
            if wl_ns != ns || !selector.iter().all(|(k, v)| wl.labels.get(k) == Some(v)) {
                continue;
            }
            let target_port = match target {
                IntOrString::Int(p) => u16::try_from(*p).ok(),
                IntOrString::String(name) => wl.port_names.get(name).copied(),
            };
            let Some(target_port) = target_port else {
                continue;
            };
            let opaque = svc.opaque_ports.contains(&port) || wl.opaque_ports.contains(&target_port);
            for ip in &wl.ips {
                let endpoint = endpoint(wl, SocketAddr::new(*ip, target_port), opaque);
                set.endpoints.insert(endpoint.addr, endpoint);
            }
        }
        set
    }

    pub fn profile(&self, target: &Target) -> Profile {
        match target {
            Target::Service {
                namespace,
                name,
                port,
            } => self.service_profile(namespace, name, *port),
            Target::Addr(addr) => {
                // A Service's cluster IP resolves as the service.
                if let Some(((ns, name), _)) = self
                    .services
                    .iter()
                    .find(|(_, s)| s.cluster_ips.contains(&addr.ip()))
                {
                    return self.service_profile(ns, name, addr.port());
                }
                let workload = self.workloads.values().find(|w| w.ips.contains(&addr.ip()));
                let mut profile = empty_profile(String::new());
                if let Some(wl) = workload {
                    let opaque = wl.opaque_ports.contains(&addr.port());
                    profile.opaque_protocol = opaque;
                    profile.endpoint = Some(endpoint(wl, *addr, opaque));
                }
                profile
            }
        }
    }

    fn service_profile(&self, ns: &str, name: &str, port: u16) -> Profile {
        let fqn = format!("{name}.{ns}.svc.{}", self.cluster.cluster_domain);
        let mut profile = empty_profile(fqn.clone());
        profile.opaque_protocol = self
            .services
            .get(&(ns.to_string(), name.to_string()))
            .is_some_and(|s| s.opaque_ports.contains(&port));
        if let Some(spec) = self.profiles.get(&(ns.to_string(), fqn.clone())) {
            profile.profile_ref = Some((ns.to_string(), fqn));
            profile.routes = spec.routes.iter().flatten().map(route).collect();
            profile.retry_budget = Some(
                spec.retry_budget
                    .as_ref()
                    .map(|b| RetryBudget {
                        retry_ratio: b.retry_ratio,
                        min_retries_per_second: b.min_retries_per_second,
                        ttl: ztmesh_resources::duration::parse(&b.ttl)
                            .unwrap_or(Duration::from_secs(10)),
                    })
                    .unwrap_or_default(),
            );
        }
        profile
    }

    fn pod_info(&self, ns: &str, pod: &Pod) -> WorkloadInfo {
        let meta = &pod.metadata;
        let name = meta.name.clone().unwrap_or_default();
        let annotations = meta.annotations.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        let meshed = containers.iter().any(|c| c.name == "linkerd-proxy")
            || annotations
                .get("linkerd.io/inject")
                .is_some_and(|v| v == "enabled")
            || annotations.contains_key(PROXY_MODE_ANNOTATION);
        let sa = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let identity = format!(
            "{sa}.{ns}.serviceaccount.identity.{}.{}",
            self.cluster.control_plane_ns, self.cluster.trust_domain
        );
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.as_ref())
                .and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        WorkloadInfo {
            kind: "pod",
            ips,
            labels: meta.labels.clone().unwrap_or_default(),
            port_names: containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
                .collect(),
            tls: meshed.then(|| TlsIdentity {
                identity: identity.clone(),
                server_name: identity,
            }),
            opaque_ports: opaque_ports(&annotations),
            explicit_inbound: explicit_inbound(&annotations),
            metric_labels: crate::metric_labels::pod(ns, &name, &sa, pod),
        }
    }

    fn reindex(&mut self, ns: &str) {
        let keys: Vec<_> = self
            .endpoint_watches
            .keys()
            .filter(|(n, _, _)| n == ns)
            .cloned()
            .collect();
        for key in keys {
            let set = self.endpoints(&key.0, &key.1, key.2);
            if let Some(tx) = self.endpoint_watches.get(&key) {
                tx.send_if_modified(|cur| (*cur != set).then(|| *cur = set).is_some());
            }
        }
        // Profiles by address may move between namespaces: recompute all.
        let targets: Vec<Target> = self.profile_watches.keys().cloned().collect();
        for target in targets {
            let profile = self.profile(&target);
            if let Some(tx) = self.profile_watches.get(&target) {
                tx.send_if_modified(|cur| (*cur != profile).then(|| *cur = profile).is_some());
            }
        }
        self.endpoint_watches
            .retain(|_, tx| tx.receiver_count() > 0);
        self.profile_watches.retain(|_, tx| tx.receiver_count() > 0);
    }
}

fn endpoint(wl: &WorkloadInfo, addr: SocketAddr, opaque: bool) -> Endpoint {
    let meshed = wl.tls.is_some();
    let opaque_transport_port = match (meshed, wl.explicit_inbound) {
        (false, _) => None,
        (true, Some(inbound)) => Some(inbound),
        (true, None) if opaque => Some(DEFAULT_INBOUND_PORT),
        (true, None) => None,
    };
    Endpoint {
        addr,
        tls: wl.tls.clone(),
        h2: meshed && !opaque,
        opaque_transport_port,
        labels: wl.metric_labels.clone(),
    }
}

fn empty_profile(fqn: String) -> Profile {
    Profile {
        fully_qualified_name: fqn,
        opaque_protocol: false,
        routes: vec![],
        retry_budget: None,
        endpoint: None,
        profile_ref: None,
    }
}

fn service_info(svc: &Service) -> ServiceInfo {
    let spec = svc.spec.as_ref();
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let cluster_ips = ztmesh_resources::meta::cluster_ips(svc);
    ServiceInfo {
        selector: spec.and_then(|s| s.selector.clone()),
        ports: spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                Some((
                    port,
                    p.target_port.clone().unwrap_or(IntOrString::Int(p.port)),
                ))
            })
            .collect(),
        cluster_ips,
        opaque_ports: opaque_ports(&annotations),
    }
}

fn opaque_ports(annotations: &BTreeMap<String, String>) -> BTreeSet<u16> {
    ztmesh_resources::meta::opaque_ports(Some(annotations))
}

fn explicit_inbound(annotations: &BTreeMap<String, String>) -> Option<u16> {
    (annotations.get(PROXY_MODE_ANNOTATION).map(String::as_str) == Some("explicit")).then(|| {
        annotations
            .get(INBOUND_PORT_ANNOTATION)
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_INBOUND_PORT)
    })
}

fn route(r: &sp::RouteSpec) -> ProfileRoute {
    ProfileRoute {
        name: r.name.clone(),
        condition: request_match(&r.condition),
        is_retryable: r.is_retryable,
        timeout: r
            .timeout
            .as_deref()
            .and_then(|t| ztmesh_resources::duration::parse(t).ok()),
        response_classes: r
            .response_classes
            .iter()
            .flatten()
            .map(|c| ResponseClass {
                condition: response_match(&c.condition),
                is_failure: c.is_failure,
            })
            .collect(),
    }
}

/// A condition's fields are all required together (Linkerd ANDs them).
fn request_match(m: &sp::RequestMatch) -> RequestMatch {
    let mut all = Vec::new();
    if let Some(ms) = &m.all {
        all.push(RequestMatch::All(ms.iter().map(request_match).collect()));
    }
    if let Some(ms) = &m.any {
        all.push(RequestMatch::Any(ms.iter().map(request_match).collect()));
    }
    if let Some(n) = &m.not {
        all.push(RequestMatch::Not(Box::new(request_match(n))));
    }
    if let Some(re) = &m.path_regex {
        all.push(RequestMatch::PathRegex(re.clone()));
    }
    if let Some(method) = &m.method {
        all.push(RequestMatch::Method(method.clone()));
    }
    if all.len() == 1 {
        all.remove(0)
    } else {
        RequestMatch::All(all)
    }
}

fn response_match(m: &sp::ResponseMatch) -> ResponseMatch {
    let mut all = Vec::new();
    if let Some(ms) = &m.all {
        all.push(ResponseMatch::All(ms.iter().map(response_match).collect()));
    }
    if let Some(ms) = &m.any {
        all.push(ResponseMatch::Any(ms.iter().map(response_match).collect()));
    }
    if let Some(n) = &m.not {
        all.push(ResponseMatch::Not(Box::new(response_match(n))));
    }
    if let Some(s) = &m.status {
        all.push(ResponseMatch::Status {
            min: s.min.unwrap_or(100),
            max: s.max.unwrap_or(599),
        });
    }
    if all.len() == 1 {
        all.remove(0)
    } else {
        ResponseMatch::All(all)
    }
}

/// EndpointSlices ([`slices`]): on Kubernetes, Services' endpoints.
impl Index {
    /// From now on, Services' endpoints come from EndpointSlices
    /// ([`Index::apply_endpoint_slice`]) instead of their selectors.
    pub fn use_endpoint_slices(&mut self) {
        if !self.slices.enabled {
            self.slices.enabled = true;
            let namespaces: std::collections::BTreeSet<String> =
                self.services.keys().map(|(ns, _)| ns.clone()).collect();
            for ns in namespaces {
                self.reindex(&ns);
            }
        }
    }

    /// Adds or replaces an EndpointSlice (deleted with
    /// [`Index::delete`] of kind `EndpointSlice`).
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) {
        if let Some(ns) = self.slices.apply(slice) {
            self.reindex(&ns);
        }
    }

    fn slice_endpoints(
        &self,
        set: &mut crate::model::EndpointSet,
        ns: &str,
        name: &str,
        port: u16,
        svc: &ServiceInfo,
    ) {
        let workload = |kind: &str, wl: &str| {
            let kind = match kind {
                "Pod" => "pod",
                "ExternalWorkload" => "external_workload",
                _ => return None,
            };
            self.workloads.get(&(ns.to_string(), wl.to_string(), kind))
        };
        for (addr, wl) in self.slices.endpoints(ns, name, port, workload) {
            let endpoint = match wl {
                Some(wl) => {
                    let opaque =
                        svc.opaque_ports.contains(&port) || wl.opaque_ports.contains(&addr.port());
                    endpoint(wl, addr, opaque)
                }
                None => crate::model::Endpoint {
                    addr,
                    tls: None,
                    h2: false,
                    opaque_transport_port: None,
                    labels: BTreeMap::from([("namespace".into(), ns.to_string())]),
                },
            };
            set.endpoints.insert(addr, endpoint);
        }
    }
}
