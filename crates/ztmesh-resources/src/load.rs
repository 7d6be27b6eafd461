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
use crate::policy::*;
use crate::profile::ServiceProfileSpec;
use crate::route::{GrpcRouteSpec, HttpRouteSpec};
use crate::workload::ExternalWorkloadSpec;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A Linkerd-style object: apiVersion, metadata, spec (status is ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    #[serde(default, skip_serializing)]
    status: Option<serde::de::IgnoredAny>,
}

impl<S> Object<S> {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The `apiVersion`'s version part (`v1beta2` of `policy.linkerd.io/v1beta2`).
    pub fn version(&self) -> &str {
        self.api_version.rsplit('/').next().unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    Server(Object<ServerSpec>),
    ServerAuthorization(Object<ServerAuthorizationSpec>),
    AuthorizationPolicy(Object<AuthorizationPolicySpec>),
    MeshTlsAuthentication(Object<MeshTlsAuthenticationSpec>),
    NetworkAuthentication(Object<NetworkAuthenticationSpec>),
    HttpRoute(Object<HttpRouteSpec>),
    GrpcRoute(Object<GrpcRouteSpec>),
    ServiceProfile(Object<ServiceProfileSpec>),
    ExternalWorkload(Object<ExternalWorkloadSpec>),
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    Service(Box<Service>),
    Pod(Box<Pod>),
}

/// Identifies one object across files: kind, namespace ("" when cluster
/// scoped), name. HTTPRoutes of the two API groups are distinct kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl Resource {
    pub fn key(&self) -> ResourceKey {
        let (kind, meta) = self.kind_and_meta();
        let namespace = match self {
            Resource::Namespace(_) => String::new(),
            _ => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        };
        ResourceKey {
            kind: kind.into(),
            namespace,
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        self.kind_and_meta().1
    }

    fn kind_and_meta(&self) -> (&'static str, &ObjectMeta) {
        match self {
            Resource::Server(o) => ("Server", &o.metadata),
            Resource::ServerAuthorization(o) => ("ServerAuthorization", &o.metadata),
            Resource::AuthorizationPolicy(o) => ("AuthorizationPolicy", &o.metadata),
            Resource::MeshTlsAuthentication(o) => ("MeshTLSAuthentication", &o.metadata),
            Resource::NetworkAuthentication(o) => ("NetworkAuthentication", &o.metadata),
            Resource::HttpRoute(o) if o.api_version.starts_with("gateway.") => {
                ("HTTPRoute.gateway.networking.k8s.io", &o.metadata)
            }
            Resource::HttpRoute(o) => ("HTTPRoute.policy.linkerd.io", &o.metadata),
            Resource::GrpcRoute(o) => ("GRPCRoute", &o.metadata),
            Resource::ServiceProfile(o) => ("ServiceProfile", &o.metadata),
            Resource::ExternalWorkload(o) => ("ExternalWorkload", &o.metadata),
            Resource::Namespace(o) => ("Namespace", &o.metadata),
            Resource::ServiceAccount(o) => ("ServiceAccount", &o.metadata),
            Resource::Service(o) => ("Service", &o.metadata),
            Resource::Pod(o) => ("Pod", &o.metadata),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located as precisely as it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based index of the YAML document in the file; 0 when the problem
    /// is the file's as a whole (unreadable, too large, too deep).
    pub document: usize,
    /// `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// Field path, e.g. `spec.client.meshTLS.serviceAccounts[0].name`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.file)?;
        if self.document > 0 {
            write!(f, " document {}", self.document)?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The resources in one file and the problems found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    /// The 1-based document each of `resources` came from, in the same order.
    pub documents: Vec<usize>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Collects diagnostics for one document.
pub(crate) struct DocContext<'a> {
    pub file: &'a str,
    pub document: usize,
    pub object: Option<String>,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl DocContext<'_> {
    pub fn error(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }

    pub fn warn(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }

    fn push(&mut self, severity: Severity, field: Option<&str>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.into(),
            document: self.document,
            object: self.object.clone(),
            field: field.map(String::from),
            message: message.into(),
        });
    }
}

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
