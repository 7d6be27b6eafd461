//! From YAML text to typed resources, and every problem on the way.
//!
//! Each document is routed by `apiVersion` and `kind` to its schema and
//! deserialized strictly (an unknown field is an error, with its path), then
//! checked by [`crate::validate`] for what a schema cannot say (a Server
//! needs a selector, a regex must compile, ...). Problems become
//! [`Diagnostic`]s naming the file, the document's index (1-based), the
//! object and the field. Documents Linkerd's own schema would reject but
//! whose meaning is clear load with a warning that says the fix; kinds the
//! mesh does not use are skipped with a note naming them. Before any of
//! that, the file's size and nesting are checked against [`Limits`]
//! ([`crate::bounds`]), so a hostile file is refused in linear time.

use crate::bounds::Limits;
use crate::diagnostic::DocContext;
pub use crate::diagnostic::{Diagnostic, Loaded, Severity};
pub use crate::object::{Object, Resource, ResourceKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Parses every document in `text`; `file` names it in diagnostics.
/// The default [`Limits`] apply.
pub fn load_str(text: &str, file: &str) -> Loaded {
    load_str_with(text, file, &Limits::default())
}

/// As [`load_str`], refusing a file beyond `limits` before parsing it.
pub fn load_str_with(text: &str, file: &str, limits: &Limits) -> Loaded {
    let mut loaded = Loaded::default();
    if let Err(e) = crate::bounds::check(text, limits) {
        loaded.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            document: 0,
            object: None,
            field: None,
            message: e.to_string(),
        });
        return loaded;
    }
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let mut cx = DocContext {
            file,
            document,
            object: None,
            diagnostics: &mut loaded.diagnostics,
        };
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                cx.error(None, format!("not valid YAML: {e}"));
                // The rest of the stream cannot be trusted after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Some(resource) = load_value(value, &mut cx) {
            loaded.resources.push(resource);
            loaded.documents.push(document);
        }
    }
    loaded
}

fn load_value(value: serde_yaml::Value, cx: &mut DocContext<'_>) -> Option<Resource> {
    let Some(map) = value.as_mapping() else {
        cx.error(
            None,
            "a document must be a mapping with apiVersion, kind and metadata",
        );
        return None;
    };
    let text = |key: &str| map.get(key).and_then(|v| v.as_str()).map(String::from);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        cx.error(None, "apiVersion and kind are required");
        return None;
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>");
    let ns = map
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(|n| n.as_str());
    cx.object = Some(match ns {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    });
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));

    let served: &[&str] = match (group, kind.as_str()) {
        ("policy.linkerd.io", "Server") => &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"],
        ("policy.linkerd.io", "ServerAuthorization") => &["v1alpha1", "v1beta1"],
        (
            "policy.linkerd.io",
            "AuthorizationPolicy" | "MeshTLSAuthentication" | "NetworkAuthentication",
        ) => &["v1alpha1"],
        ("policy.linkerd.io", "HTTPRoute") => &["v1alpha1", "v1beta1", "v1beta2", "v1beta3"],
        ("gateway.networking.k8s.io", "HTTPRoute") => &["v1beta1", "v1"],
        ("gateway.networking.k8s.io", "GRPCRoute") => &["v1alpha2", "v1"],
        ("linkerd.io", "ServiceProfile") => &["v1alpha1", "v1alpha2"],
        ("workload.linkerd.io", "ExternalWorkload") => &["v1alpha1", "v1beta1"],
        ("spire.spiffe.io", "ClusterFederatedTrustDomain") => &["v1alpha1"],
        ("", "Namespace" | "ServiceAccount" | "Service" | "Pod") => &["v1"],
        ("networking.k8s.io", "NetworkPolicy") => {
            cx.warn(
                None,
                "skipped: Kubernetes NetworkPolicy is enforced by the CNI, not by the mesh; ztmesh neither enforces nor ignores it silently",
            );
            return None;
        }
        _ => {
            cx.warn(
                None,
                format!("skipped: {api_version} {kind} is not a kind ztmesh uses"),
            );
            return None;
        }
    };
    let mut value = value;
    if !served.contains(&version) {
        if group == "policy.linkerd.io" && kind == "ServerAuthorization" && version == "v1beta2" {
            // The seeds write it so; the schema is v1beta1's, so the meaning is clear.
            cx.warn(
                Some("apiVersion"),
                "policy.linkerd.io/v1beta2 is not a version Linkerd serves for ServerAuthorization; loaded as policy.linkerd.io/v1beta1 (change apiVersion to policy.linkerd.io/v1beta1)",
            );
            if let Some(m) = value.as_mapping_mut() {
                m.insert("apiVersion".into(), "policy.linkerd.io/v1beta1".into());
            }
        } else {
            cx.error(
                Some("apiVersion"),
                format!(
                    "{api_version} is not a served version of {kind}; use one of: {}",
                    served
                        .iter()
                        .map(|v| if group.is_empty() {
                            v.to_string()
                        } else {
                            format!("{group}/{v}")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
    }

    let resource = match kind.as_str() {
        "Server" => Resource::Server(typed(value, cx)?),
        "ServerAuthorization" => Resource::ServerAuthorization(typed(value, cx)?),
        "AuthorizationPolicy" => Resource::AuthorizationPolicy(typed(value, cx)?),
        "MeshTLSAuthentication" => Resource::MeshTlsAuthentication(typed(value, cx)?),
        "NetworkAuthentication" => Resource::NetworkAuthentication(typed(value, cx)?),
        "HTTPRoute" => Resource::HttpRoute(typed(value, cx)?),
        "GRPCRoute" => Resource::GrpcRoute(typed(value, cx)?),
        "ServiceProfile" => Resource::ServiceProfile(typed(value, cx)?),
        "ExternalWorkload" => Resource::ExternalWorkload(typed(value, cx)?),
        "ClusterFederatedTrustDomain" => Resource::ClusterFederatedTrustDomain(typed(value, cx)?),
        "Namespace" => Resource::Namespace(typed(value, cx)?),
        "ServiceAccount" => Resource::ServiceAccount(typed(value, cx)?),
        "Service" => Resource::Service(typed(value, cx)?),
        "Pod" => Resource::Pod(typed(value, cx)?),
        _ => unreachable!("every served kind is listed above"),
    };
    let before = cx
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    crate::validate::resource(&resource, cx);
    let after = cx
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (after == before).then_some(resource)
}

fn typed<T: DeserializeOwned>(value: serde_yaml::Value, cx: &mut DocContext<'_>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            cx.error(field.as_deref(), e.into_inner().to_string());
            None
        }
    }
}
