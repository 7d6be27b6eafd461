//! `workload.linkerd.io` ExternalWorkload (v1alpha1, v1beta1): a workload
//! outside Kubernetes (in local mode, every workload) with its addresses,
//! ports and mesh identity.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalWorkloadSpec {
    #[serde(rename = "meshTLS")]
    pub mesh_tls: MeshTls,
    #[serde(default)]
    pub ports: Option<Vec<PortSpec>>,
    #[serde(default, rename = "workloadIPs")]
    pub workload_ips: Option<Vec<WorkloadIp>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTls {
    /// The workload's identity: DNS form, or its SPIFFE ID.
    pub identity: String,
    /// The TLS server name clients use to reach it.
    pub server_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    pub port: u16,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadIp {
    pub ip: std::net::IpAddr,
}
