//! What a proxy learns about a destination.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How a meshed peer proves itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsIdentity {
    /// DNS form, or a SPIFFE ID (ExternalWorkloads may use either).
    pub identity: String,
    /// The name to send as SNI.
    pub server_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// None: not meshed; connect in plaintext.
    pub tls: Option<TlsIdentity>,
    /// Meshed HTTP endpoints accept HTTP/2 between proxies.
    pub h2: bool,
    /// Dial this inbound port and name the target in the transport header
    /// (opaque ports, and proxies in explicit mode).
    pub opaque_transport_port: Option<u16>,
    pub labels: BTreeMap<String, String>,
}

/// A service port's endpoints. `exists` is false when the Service is unknown
/// (the proxy may fall back to other discovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSet {
    pub exists: bool,
    pub endpoints: BTreeMap<SocketAddr, Endpoint>,
    pub labels: BTreeMap<String, String>,
}

impl EndpointSet {
    pub fn unknown() -> Self {
        Self {
            exists: false,
            endpoints: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// A ServiceProfile as the proxy uses it (or the empty profile).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `svc.ns.svc.cluster.local`, or empty for an address that is no service.
    pub fully_qualified_name: String,
    pub opaque_protocol: bool,
    pub routes: Vec<ProfileRoute>,
    pub retry_budget: Option<RetryBudget>,
    /// Set when the target is a known endpoint (a workload's ip:port).
    pub endpoint: Option<Endpoint>,
    /// `(namespace, name)` of the ServiceProfile, when one exists.
    pub profile_ref: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRoute {
    pub name: String,
    pub condition: RequestMatch,
    pub is_retryable: bool,
    pub timeout: Option<Duration>,
    pub response_classes: Vec<ResponseClass>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestMatch {
    All(Vec<RequestMatch>),
    Any(Vec<RequestMatch>),
    Not(Box<RequestMatch>),
    PathRegex(String),
    Method(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseClass {
    pub condition: ResponseMatch,
    pub is_failure: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseMatch {
    All(Vec<ResponseMatch>),
    Any(Vec<ResponseMatch>),
    Not(Box<ResponseMatch>),
    Status { min: u16, max: u16 },
}

/// Linkerd's defaults: 0.2, 10/s, 10s.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    pub retry_ratio: f32,
    pub min_retries_per_second: u32,
    pub ttl: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            min_retries_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RequestMatch {
    /// Whether a request matches (used by tests and `diagnose`; the proxy has its own).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            Self::All(ms) => ms.iter().all(|m| m.matches(method, path)),
            Self::Any(ms) => ms.iter().any(|m| m.matches(method, path)),
            Self::Not(m) => !m.matches(method, path),
            // Linkerd anchors pathRegex to the whole path.
            Self::PathRegex(re) => {
                regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(path))
            }
            Self::Method(m) => m.eq_ignore_ascii_case(method),
        }
    }
}
