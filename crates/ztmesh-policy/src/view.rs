//! What [`crate::compute`] reads: the cluster's settings, the policy
//! resources of each namespace and the workloads, as the index holds them.
//! A leaf: the index owns a [`View`] and mutates it; compute is a pure
//! function of a `&View`, so neither depends on the other.

use crate::defaults::{ClusterInfo, DefaultPolicy};
use std::collections::{BTreeMap, BTreeSet};
use ztmesh_resources::load::Object;
use ztmesh_resources::meta::Labels;
use ztmesh_resources::policy::*;
use ztmesh_resources::route::{GrpcRouteSpec, HttpRouteSpec};

/// A workload within its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadRef {
    Pod(String),
    External(String),
}

impl std::fmt::Display for WorkloadRef {
    /// `pod/NAME` or `externalworkload/NAME`, as the CLI takes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pod(name) => write!(f, "pod/{name}"),
            Self::External(name) => write!(f, "externalworkload/{name}"),
        }
    }
}

/// What the index knows of a workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    pub labels: Labels,
    pub ips: Vec<std::net::IpAddr>,
    pub external: bool,
    pub default_policy: Option<DefaultPolicy>,
    pub opaque_ports: BTreeSet<u16>,
    pub port_names: BTreeMap<String, BTreeSet<u16>>,
    /// HTTP probe paths by port (pods only).
    pub probes: BTreeMap<u16, BTreeSet<String>>,
}

/// The policy resources of one namespace.
#[derive(Clone, Debug, Default)]
pub struct NsResources {
    pub servers: BTreeMap<String, Object<ServerSpec>>,
    pub server_authorizations: BTreeMap<String, Object<ServerAuthorizationSpec>>,
    pub authorization_policies: BTreeMap<String, Object<AuthorizationPolicySpec>>,
    pub meshtls_authentications: BTreeMap<String, Object<MeshTlsAuthenticationSpec>>,
    pub network_authentications: BTreeMap<String, Object<NetworkAuthenticationSpec>>,
    /// Keyed by (group, name): both API groups may name a route alike.
    pub http_routes: BTreeMap<(String, String), Object<HttpRouteSpec>>,
    pub grpc_routes: BTreeMap<String, Object<GrpcRouteSpec>>,
    pub default_policy: Option<DefaultPolicy>,
}

/// The resources and workloads the policy is computed from.
pub struct View {
    pub(crate) cluster: ClusterInfo,
    pub(crate) namespaces: BTreeMap<String, NsResources>,
    pub(crate) workloads: BTreeMap<(String, WorkloadRef), Workload>,
}

impl View {
    pub fn new(cluster: ClusterInfo) -> Self {
        Self {
            cluster,
            namespaces: BTreeMap::new(),
            workloads: BTreeMap::new(),
        }
    }

    pub fn cluster(&self) -> &ClusterInfo {
        &self.cluster
    }

    pub fn namespace(&self, ns: &str) -> Option<&NsResources> {
        self.namespaces.get(ns)
    }

    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &NsResources)> {
        self.namespaces.iter().map(|(ns, r)| (ns.as_str(), r))
    }

    pub fn workload(&self, ns: &str, workload: &WorkloadRef) -> Option<&Workload> {
        self.workloads.get(&(ns.to_string(), workload.clone()))
    }

    pub fn workloads(&self) -> impl Iterator<Item = (&str, &WorkloadRef, &Workload)> {
        self.workloads
            .iter()
            .map(|((ns, w), wl)| (ns.as_str(), w, wl))
    }
}
