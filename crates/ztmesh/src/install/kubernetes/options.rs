//! What the control plane objects are made from ([`Options`]), the names
//! they share, and the label helpers every object uses.

use base64::Engine;
use serde_json::{Value, json};

/// Linkerd's names for what the controller reads and serves.
pub(crate) const TRUST_ROOTS: &str = "linkerd-identity-trust-roots";
pub(crate) const ISSUER_SECRET: &str = "linkerd-identity-issuer";
pub(crate) const CONTROLLER: &str = "ztmesh-controller";
/// The proxy injector's Service, and the controller's port it targets.
pub(crate) const INJECTOR_SERVICE: &str = "linkerd-proxy-injector";
pub(crate) const INJECTOR_PORT: u16 = 8443;

/// The labels the controller's pods carry and every Service selects.
pub(crate) fn selector() -> Value {
    json!({"ztmesh.io/control-plane-component": "controller"})
}

/// What the objects are made from.
pub(crate) struct Options {
    pub(crate) namespace: String,
    pub(crate) trust_domain: String,
    pub(crate) cluster_domain: String,
    pub(crate) image: String,
    pub(crate) ha: bool,
    /// Address the injector webhook by this URL instead of its Service.
    pub(crate) webhook_url: Option<String>,
}

impl Options {
    /// The names the injector's serving certificate must hold.
    pub(crate) fn webhook_names(&self) -> Vec<String> {
        let svc = format!("{}.{}.svc", INJECTOR_SERVICE, self.namespace);
        let mut names = vec![svc.clone(), format!("{svc}.{}", self.cluster_domain)];
        if let Some(host) = self
            .webhook_url
            .as_deref()
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()))
        {
            names.push(host);
        }
        names
    }

    /// Labels every object carries.
    pub(crate) fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/part-of": "ztmesh",
            "app.kubernetes.io/component": component,
            "linkerd.io/control-plane-ns": self.namespace,
        })
    }

    pub(crate) fn meta(&self, name: &str, component: &str) -> Value {
        json!({"name": name, "namespace": self.namespace, "labels": self.labels(component)})
    }
}

pub(crate) fn base64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}
