//! What a cluster check is pointed at ([`KubeTarget`]) and which checks
//! it makes ([`KubeMode`]). A leaf.

use std::path::PathBuf;
use std::time::Duration;

/// Which cluster, and where its control plane is.
#[derive(Clone, Debug)]
pub(crate) struct KubeTarget {
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) context: Option<String>,
    /// The control plane's namespace.
    pub(crate) namespace: String,
    /// Only this namespace's workloads (`--proxy`, `--compliance`).
    pub(crate) workloads: Option<String>,
    /// The proxies' admin port (`/live`, `/ready`, `/metrics`).
    pub(crate) admin_port: u16,
    /// The proxies' inbound port (where their chain is read).
    pub(crate) inbound_port: u16,
    /// How long each API call or probe may take.
    pub(crate) timeout: Duration,
}

/// Which checks a run makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KubeMode {
    /// `--pre`.
    Pre,
    /// The default: control plane and identity.
    ControlPlane,
    /// `--proxy`.
    Proxy,
    /// `--compliance`.
    Compliance,
}
