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
//! namespace). [`names`] and [`pods`] are the leaves they share,
//! [`target`] what a run is pointed at. [`run_checks`] wires a mode to its
//! observation and group.

mod compliance;
mod control_plane;
mod identity;
mod names;
mod observe;
mod pods;
mod pre;
mod proxy;
mod target;

pub(crate) use target::{KubeMode, KubeTarget};

use super::result::{CheckResult, Group};
use std::time::SystemTime;

/// The checks of `mode` (the API server's first, in every mode).
pub(crate) async fn run_checks(target: &KubeTarget, mode: KubeMode) -> Vec<CheckResult> {
    let (client, server) = match observe::client(target).await {
        Ok(c) => c,
        Err(e) => {
            return vec![CheckResult::fail(
                Group::KubernetesApi,
                "api-server",
                "API server reachable",
                e.to_string(),
                "pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG",
            )];
        }
    };
    let now = SystemTime::now();
    // Every mode first says whether the API server answers.
    let pre = observe::pre(&client, server, target, mode == KubeMode::Pre).await;
    if pre.version.is_err() {
        return pre::server(&pre);
    }
    let mut checks = Vec::new();
    match mode {
        KubeMode::Pre => checks.extend(pre::checks(&pre, &pre::needed(&target.namespace))),
        KubeMode::ControlPlane => {
            checks.extend(pre::server(&pre));
            let obs = observe::control_plane(&client, target).await;
            checks.extend(control_plane::checks(&obs, now));
        }
        KubeMode::Proxy => {
            checks.extend(pre::server(&pre));
            let obs = observe::proxies(&client, target).await;
            checks.extend(proxy::checks(&obs, &target.namespace, now));
        }
        KubeMode::Compliance => {
            checks.extend(pre::server(&pre));
            let obs = observe::compliance(&client, target).await;
            checks.extend(compliance::checks(&obs));
        }
    }
    checks
}
