//! What a pod shows: its proxy (a container, or a native sidecar), why
//! it is not ready, its name, and the identity its proxy certifies
//! itself for. A leaf over [`super::names`].

use super::names::PROXY_CONTAINER;
use k8s_openapi::api::core::v1::{Container, Pod};

/// The pod's proxy: a container, or a native sidecar (an init container).
pub(crate) fn proxy_container(pod: &Pod) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == PROXY_CONTAINER)
}

/// Whether a pod carries the proxy (a container or a native sidecar).
pub(crate) fn has_proxy(pod: &Pod) -> bool {
    proxy_container(pod).is_some()
}

/// Why a pod is not ready, from its phase, conditions and containers.
pub(crate) fn not_ready(pod: &Pod) -> Option<String> {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        return None;
    }
    let phase = status.phase.unwrap_or_else(|| "Unknown".into());
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let waiting: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "{} {}",
                c.name,
                w.reason.clone().unwrap_or_default()
            ))
        })
        .collect();
    let mut why = format!("phase {phase}");
    if node.is_none() {
        why.push_str(", not scheduled to a node");
    }
    if !waiting.is_empty() {
        why.push_str(&format!(", waiting: {}", waiting.join(", ")));
    }
    Some(why)
}

pub(crate) fn name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The identity a pod's proxy certifies itself for: its
/// `LINKERD2_PROXY_IDENTITY_LOCAL_NAME`, else Linkerd's default name.
pub(crate) fn pod_identity(pod: &Pod, control_plane: &str) -> String {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let env = proxy_container(pod)
        .and_then(|c| c.env.as_ref())
        .and_then(|env| {
            env.iter()
                .find(|e| e.name == "LINKERD2_PROXY_IDENTITY_LOCAL_NAME")
        })
        .and_then(|e| e.value.clone());
    match env {
        Some(v) => v.replace("$(_pod_sa)", &sa).replace("$(_pod_ns)", &ns),
        None => format!("{sa}.{ns}.serviceaccount.identity.{control_plane}.cluster.local"),
    }
}
