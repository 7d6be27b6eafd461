//! `check --kubernetes --proxy`: every injected pod (labelled
//! `linkerd.io/control-plane-ns=<control plane>`) has its `linkerd-proxy`
//! container (or native sidecar) ready by its container status, and, when
//! its pod IP is reachable from where check runs, the local data-plane
//! checks ([`crate::check::proxy::workload_checks`]: admin `/ready`, the
//! chain read on 4143 verified under the trust roots ConfigMap and the
//! issuer Secret, the anchors its metrics export). An unreachable pod IP
//! is a WARN naming it, never a hang (the probe is bounded). Pure over
//! [`ProxyObs`].

use super::observe::{PodProbe, ProxyObs, Reach};
use crate::check::mesh::TrustFiles;
use crate::check::result::{CheckResult, Group};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::time::SystemTime;

use super::names::PROXY_CONTAINER;
use super::pods::{name, not_ready, proxy_container};

fn proxy_status(pod: &Pod) -> Option<&ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == PROXY_CONTAINER)
}

pub(crate) fn checks(obs: &ProxyObs, control_plane: &str, now: SystemTime) -> Vec<CheckResult> {
    let pods = match &obs.pods {
        Err(e) => {
            return vec![CheckResult::fail(
                Group::DataPlane,
                "injected-pods",
                "injected pods listed",
                e.to_string(),
                "allow listing pods (cluster-wide, or pass -n NAMESPACE)",
            )];
        }
        Ok(p) => p,
    };
    if pods.is_empty() {
        return vec![CheckResult::warn(
            Group::DataPlane,
            "injected-pods",
            "injected pods listed",
            format!("no pod labelled linkerd.io/control-plane-ns={control_plane}"),
            "inject workloads: kubectl annotate namespace NS linkerd.io/inject=enabled, or ztmesh inject",
        )];
    }
    let trust = super::identity::trust_files(&obs.trust_roots, &obs.issuer, control_plane, now);
    pods.iter()
        .flat_map(|p| pod_checks(p, &trust, now))
        .collect()
}

fn pod_checks(p: &PodProbe, trust: &TrustFiles, now: SystemTime) -> Vec<CheckResult> {
    let name = name(&p.pod);
    let mut out = vec![container(&p.pod, &name)];
    let (id, title) = ("proxy-certificate", "certificate from the current issuer");
    match &p.reach {
        Reach::NoIp => out.push(CheckResult::warn(
            Group::DataPlane,
            id,
            &format!("{name}: {title}"),
            "not asked: the pod has no IP yet",
            format!("kubectl describe pod -n {}", p.pod.metadata.namespace.as_deref().unwrap_or_default()),
        )),
        Reach::Unreachable { addr, reason } => out.push(CheckResult::warn(
            Group::DataPlane,
            id,
            &format!("{name}: {title}"),
            format!(
                "not asked: the pod IP {} is not reachable from where check runs ({addr}: {reason})",
                addr.ip()
            ),
            "run ztmesh check --proxy where pod IPs route (a node, or a pod in the cluster)",
        )),
        Reach::Probed(w) => {
            for mut c in crate::check::proxy::workload_checks(w, trust, now) {
                if let Some(detail) = c.detail.strip_prefix(&format!("{name}: ")) {
                    c.detail = detail.to_string();
                }
                c.title = format!("{name}: {}", c.title);
                out.push(c);
            }
        }
    }
    out
}

fn container(pod: &Pod, name: &str) -> CheckResult {
    let (id, title) = ("proxy-container", format!("{name}: proxy container ready"));
    if proxy_container(pod).is_none() {
        return CheckResult::fail(
            Group::DataPlane,
            id,
            &title,
            format!("labelled as injected, but has no {PROXY_CONTAINER} container"),
            "re-create the pod through the injector (kubectl rollout restart its workload)",
        );
    }
    let Some(status) = proxy_status(pod) else {
        return CheckResult::fail(
            Group::DataPlane,
            id,
            &title,
            format!(
                "{PROXY_CONTAINER} has no status ({})",
                not_ready(pod).unwrap_or_else(|| "not started".into())
            ),
            "kubectl describe pod: is it scheduled and its image pulled?",
        );
    };
    if status.ready {
        return CheckResult::pass(
            Group::DataPlane,
            id,
            &title,
            format!("ready, {} restart(s)", status.restart_count),
        );
    }
    let state = status.state.as_ref();
    let why = match (
        state.and_then(|s| s.waiting.as_ref()),
        state.and_then(|s| s.terminated.as_ref()),
    ) {
        (Some(w), _) => format!(
            "waiting: {} {}",
            w.reason.as_deref().unwrap_or_default(),
            w.message.as_deref().unwrap_or_default()
        ),
        (_, Some(t)) => format!(
            "terminated: {} (exit {})",
            t.reason.as_deref().unwrap_or_default(),
            t.exit_code
        ),
        _ => "running, not ready (its readiness probe on the admin port fails)".into(),
    };
    CheckResult::fail(
        Group::DataPlane,
        id,
        &title,
        format!("not ready: {}", why.trim()),
        format!(
            "kubectl logs -n {} {} -c {PROXY_CONTAINER}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
    )
}

#[cfg(test)]
mod tests;
