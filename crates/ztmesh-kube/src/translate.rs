//! From an API object (JSON, as the API server sends it) to the
//! [`Resource`] the indexes take, through ztmesh-resources' own loader:
//! the object is read exactly as a manifest file's document would be, so
//! a bad object is refused with the same reason, naming its field.
//!
//! Pods are then made meshed or not as Linkerd decides it: labelled
//! `linkerd.io/control-plane-ns=<control plane namespace>` (what Linkerd's
//! injector sets and its policy controller watches). A labelled pod is
//! marked `linkerd.io/inject: enabled`, which the indexes read as "runs a
//! proxy"; an unlabelled one loses that annotation and ztmesh's
//! proxy-mode one, so no index serves a TLS identity for a pod no
//! injector meshed.

use ztmesh_resources::bounds::Limits;
use ztmesh_resources::load::{Diagnostic, Severity};
use ztmesh_resources::{Resource, load_str_with};

/// Linkerd's label on meshed pods; its value is the control plane namespace.
pub const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
const INJECT_ANNOTATION: &str = "linkerd.io/inject";
const PROXY_MODE_ANNOTATION: &str = "config.ztmesh.io/proxy-mode";

/// An object refused, with every reason (`field: message`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{object} refused: {}", reasons.join("; "))]
pub struct Rejection {
    /// `Kind namespace/name`.
    pub object: String,
    pub reasons: Vec<String>,
    /// The first field named by a reason, if any.
    pub field: Option<String>,
}

/// The outcome of one object: the resource, with the loader's warnings.
#[derive(Debug)]
pub struct Translated {
    pub resource: Resource,
    pub warnings: Vec<Diagnostic>,
}

/// Reads `object` (with `apiVersion` and `kind`) as ztmesh-resources does;
/// `control_plane_ns` decides which pods are meshed.
pub fn translate(
    object: &serde_json::Value,
    control_plane_ns: &str,
) -> Result<Translated, Rejection> {
    let name = object_name(object);
    // JSON is YAML: one document, read by the manifests' loader.
    let text = serde_json::to_string(object).unwrap_or_default();
    let loaded = load_str_with(&text, &format!("kubernetes:{name}"), &Limits::default());
    let errors: Vec<&Diagnostic> = loaded.errors().collect();
    if !errors.is_empty() || loaded.resources.is_empty() {
        let mut reasons: Vec<String> = errors.iter().map(|d| reason(d)).collect();
        if reasons.is_empty() {
            // Skipped (a kind ztmesh does not use): say why.
            reasons = loaded.diagnostics.iter().map(reason).collect();
        }
        return Err(Rejection {
            object: name,
            field: errors.iter().find_map(|d| d.field.clone()),
            reasons,
        });
    }
    let warnings = loaded
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    let mut resource = loaded.resources.into_iter().next().expect("checked above");
    if let Resource::Pod(pod) = &mut resource {
        mesh_as_linkerd(&mut pod.metadata, control_plane_ns);
    }
    Ok(Translated { resource, warnings })
}

/// Reads an EndpointSlice (discovery.k8s.io/v1) for the destination index.
pub fn translate_slice(
    object: &serde_json::Value,
) -> Result<ztmesh_destination::index::EndpointSlice, Rejection> {
    serde_json::from_value(object.clone()).map_err(|e| Rejection {
        object: object_name(object),
        reasons: vec![e.to_string()],
        field: None,
    })
}

/// Whether ztmesh-resources reads `kind` at `api_version` as it is (no
/// error or warning about its apiVersion): asked of the loader itself with
/// a stub object, so the list of versions lives in one place.
pub fn reads_version(api_version: &str, kind: &str) -> bool {
    let stub =
        serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "stub"}});
    let loaded = load_str_with(&stub.to_string(), "version probe", &Limits::default());
    let skipped = loaded
        .diagnostics
        .iter()
        .any(|d| d.message.starts_with("skipped"));
    !skipped
        && !loaded
            .diagnostics
            .iter()
            .any(|d| d.field.as_deref() == Some("apiVersion"))
}

/// Whether Linkerd counts a pod with these labels as meshed.
pub fn is_meshed(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    control_plane_ns: &str,
) -> bool {
    labels
        .and_then(|l| l.get(CONTROL_PLANE_NS_LABEL))
        .is_some_and(|ns| ns == control_plane_ns)
}

fn mesh_as_linkerd(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    control_plane_ns: &str,
) {
    let meshed = is_meshed(meta.labels.as_ref(), control_plane_ns);
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    if meshed {
        annotations.insert(INJECT_ANNOTATION.into(), "enabled".into());
    } else {
        annotations.remove(INJECT_ANNOTATION);
        annotations.remove(PROXY_MODE_ANNOTATION);
    }
}

/// `field: message`, or the message alone.
fn reason(d: &Diagnostic) -> String {
    match &d.field {
        Some(field) => format!("{field}: {}", d.message),
        None => d.message.clone(),
    }
}

/// `Kind namespace/name` (or `Kind name`) of a JSON object.
pub fn object_name(object: &serde_json::Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("<no kind>");
    let name = object["metadata"]["name"].as_str().unwrap_or("<unnamed>");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests;
