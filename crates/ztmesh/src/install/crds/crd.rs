//! One CustomResourceDefinition: a kind, its served [`Version`]s, and how
//! it is written out ([`Crd::to_json`]).

use crate::install::schema::{Schema, obj};
use serde_json::{Value, json};

pub(crate) const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// One served version of a kind.
pub(crate) struct Version {
    pub(crate) name: &'static str,
    pub(crate) storage: bool,
    /// Linkerd's (or the Gateway API's) deprecation warning, if deprecated.
    pub(crate) deprecation: Option<String>,
    pub(crate) spec: Schema,
    /// Whether `status` is a subresource (the controller writes it).
    pub(crate) status: bool,
}

impl Version {
    pub(crate) fn new(name: &'static str, spec: Schema) -> Self {
        Self {
            name,
            storage: false,
            deprecation: None,
            spec,
            status: false,
        }
    }

    pub(crate) fn storage(mut self) -> Self {
        self.storage = true;
        self
    }

    pub(crate) fn deprecated(mut self, warning: String) -> Self {
        self.deprecation = Some(warning);
        self
    }

    pub(crate) fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    /// The whole object's schema: `spec`, and `status` kept as written.
    pub(crate) fn root(&self) -> Schema {
        obj(vec![
            ("apiVersion", Schema::Str),
            ("kind", Schema::Str),
            ("metadata", Schema::AnyObj),
            ("spec", self.spec.clone()),
            ("status", Schema::AnyObj),
        ])
    }
}

/// One kind's CustomResourceDefinition.
pub(crate) struct Crd {
    pub(crate) group: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) short_names: &'static [&'static str],
    pub(crate) versions: Vec<Version>,
}

impl Crd {
    pub(crate) fn to_json(&self) -> Value {
        let versions: Vec<Value> = self
            .versions
            .iter()
            .map(|v| {
                let mut root = v.root().to_json();
                // apiVersion, kind and metadata are the API server's.
                if let Some(props) = root["properties"].as_object_mut() {
                    props.retain(|k, _| k == "spec" || k == "status");
                }
                root["required"] = json!(["spec"]);
                let mut version = json!({
                    "name": v.name,
                    "served": true,
                    "storage": v.storage,
                    "schema": {"openAPIV3Schema": root},
                });
                if let Some(warning) = &v.deprecation {
                    version["deprecated"] = json!(true);
                    version["deprecationWarning"] = json!(warning);
                }
                if v.status {
                    version["subresources"] = json!({"status": {}});
                }
                version
            })
            .collect();
        let singular = self.kind.to_ascii_lowercase();
        let mut names = json!({
            "kind": self.kind,
            "listKind": format!("{}List", self.kind),
            "plural": self.plural,
            "singular": singular,
        });
        if !self.short_names.is_empty() {
            names["shortNames"] = json!(self.short_names);
        }
        if self.group == GATEWAY_GROUP {
            names["categories"] = json!(["gateway-api"]);
        }
        let mut metadata = json!({
            "name": format!("{}.{}", self.plural, self.group),
            "labels": {"app.kubernetes.io/part-of": "ztmesh"},
        });
        if self.group.ends_with(".k8s.io") {
            // Groups under k8s.io are protected: the API server refuses a CRD
            // without a reference to the API review that approved it.
            metadata["annotations"] = json!({
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2997",
            });
        }
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": metadata,
            "spec": {
                "group": self.group,
                "names": names,
                "scope": "Namespaced",
                "versions": versions,
            },
        })
    }
}

/// Linkerd's deprecation warning for `kind` at `old`.
pub(crate) fn use_instead(group: &str, kind: &str, old: &str, new: &str) -> String {
    format!("{group}/{old} {kind} is deprecated; use {group}/{new} {kind}")
}
