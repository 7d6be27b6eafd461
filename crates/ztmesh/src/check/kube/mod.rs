//! `ztmesh check --kubernetes`: the same checks on a cluster, through
//! the API server (kube-rs).
//!
//! [`observe`] is the only async step: per mode, every API call (and,
//! for `--proxy`, every bounded probe of a pod's proxy) into plain data.
//! The groups are pure functions of it, one file each, table-tested
//! without a cluster: [`pre`] (`--pre`: API server, version, RBAC for the
//! install, CRDs), [`control_plane`] (the default: Deployments and pods
//! ready, the injector reached by a server-side dry run, webhook
//! caBundles) with [`identity`] (trust roots ConfigMap, issuer Secret),
//! [`proxy`] (`--proxy`) and [`compliance`] (`--compliance`, per
//! namespace). [`run_checks`] wires a mode to its observation and group.

mod compliance;
mod control_plane;
mod identity;
mod observe;
mod pre;
mod proxy;

use super::result::{CheckResult, Group};
use super::{Mode, ProxyPorts, Report};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Which cluster, and where its control plane is.
#[derive(Clone, Debug)]
pub(crate) struct KubeTarget {
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) context: Option<String>,
    /// The control plane's namespace.
    pub(crate) namespace: String,
    /// Only this namespace's workloads (`--proxy`, `--compliance`).
    pub(crate) workloads: Option<String>,
    pub(crate) ports: ProxyPorts,
    pub(crate) timeout: Duration,
}

pub(crate) async fn run_checks(target: &KubeTarget, mode: Mode) -> Report {
    let (client, server) = match observe::client(target).await {
        Ok(c) => c,
        Err(e) => {
            return Report::new(vec![CheckResult::fail(
                Group::KubernetesApi,
                "api-server",
                "API server reachable",
                e.to_string(),
                "pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG",
            )]);
        }
    };
    let now = SystemTime::now();
    // Every mode first says whether the API server answers.
    let pre = observe::pre(&client, server, target, mode == Mode::Pre).await;
    if pre.version.is_err() {
        return Report::new(pre::server(&pre));
    }
    let mut checks = Vec::new();
    match mode {
        Mode::Pre => checks.extend(pre::checks(&pre, &pre::needed(&target.namespace))),
        Mode::Mesh => {
            checks.extend(pre::server(&pre));
            let obs = observe::control_plane(&client, target).await;
            checks.extend(control_plane::checks(&obs, now));
        }
        Mode::Proxy => {
            checks.extend(pre::server(&pre));
            let obs = observe::proxies(&client, target).await;
            checks.extend(proxy::checks(&obs, &target.namespace, now));
        }
        Mode::Compliance => {
            checks.extend(pre::server(&pre));
            let obs = observe::compliance(&client, target).await;
            checks.extend(compliance::checks(&obs));
        }
    }
    Report::new(checks)
}
