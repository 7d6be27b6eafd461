//! `policy.linkerd.io` kinds: who may talk to which port.
//!
//! One struct per kind covers every version Linkerd serves; the loader
//! refuses fields a version does not have (`externalWorkloadSelector` before
//! Server v1beta2, `accessPolicy` before v1beta3).

use crate::meta::LabelSelector;
use serde::{Deserialize, Deserializer, Serialize};

/// Server: a port (by number or name) on the workloads a selector picks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub external_workload_selector: Option<LabelSelector>,
    pub port: Port,
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// v1beta3: the default policy for clients no authorization admits.
    #[serde(default)]
    pub access_policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Port {
    Number(u16),
    Name(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProxyProtocol {
    #[serde(rename = "unknown")]
    Unknown,
    #[serde(rename = "HTTP/1")]
    Http1,
    #[serde(rename = "HTTP/2")]
    Http2,
    #[serde(rename = "gRPC")]
    Grpc,
    #[serde(rename = "opaque")]
    Opaque,
    #[serde(rename = "TLS")]
    Tls,
}

/// ServerAuthorization (legacy): clients allowed on the Servers it names or selects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerAuthorizationSpec {
    pub server: ServerSelector,
    pub client: Client,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSelector {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Client {
    #[serde(default)]
    pub networks: Option<Vec<Network>>,
    #[serde(default, rename = "meshTLS")]
    pub mesh_tls: Option<MeshTls>,
    #[serde(default)]
    pub unauthenticated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTls {
    #[serde(default, rename = "unauthenticatedTLS")]
    pub unauthenticated_tls: bool,
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    #[serde(default)]
    pub service_accounts: Option<Vec<ServiceAccountRef>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A CIDR with exceptions. A bare address means that one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    pub cidr: Cidr,
    #[serde(default)]
    pub except: Option<Vec<Cidr>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Cidr(pub ipnet::IpNet);

/// A string that is neither a CIDR nor an IP address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address")]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| CidrError(s.into()))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// AuthorizationPolicy: the authentications required to reach a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    pub target_ref: TargetRef,
    pub required_authentication_refs: Vec<TargetRef>,
}

/// A reference by group, kind and name (namespace defaults to the referrer's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl TargetRef {
    /// Kind comparison is case-insensitive, as Linkerd's controller does.
    pub fn is_kind(&self, group: &str, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.group.as_deref().unwrap_or("") == group
    }
}

/// MeshTLSAuthentication: clients by identity (`*` and `*.suffix` allowed)
/// or by ServiceAccount / Namespace reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTlsAuthenticationSpec {
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    #[serde(default)]
    pub identity_refs: Option<Vec<TargetRef>>,
}

/// NetworkAuthentication: clients by source network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkAuthenticationSpec {
    pub networks: Vec<Network>,
}
