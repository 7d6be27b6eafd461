//! `ztmesh install --kubernetes`: the control plane as objects for
//! `kubectl apply -f -`, on Linkerd's names so injected proxies find it.
//!
//! [`pki`] reads or generates the certificates; [`rbac`] the service
//! account and its least-privilege roles; [`workload`] the controller's
//! Deployment (and, with `--ha`, its PodDisruptionBudget) and the
//! Services on Linkerd's names and ports; [`webhook`] the proxy
//! injector's Service, Secret and MutatingWebhookConfiguration. This
//! module adds the Namespace, the trust roots ConfigMap and the issuer
//! Secret, and orders everything so each object's dependencies come first.

pub(crate) mod pki;
mod rbac;
#[cfg(test)]
mod tests;
mod webhook;
mod workload;

use base64::Engine;
use serde_json::{Value, json};

/// Linkerd's names for what the controller reads and serves.
pub(crate) const TRUST_ROOTS: &str = "linkerd-identity-trust-roots";
pub(crate) const ISSUER_SECRET: &str = "linkerd-identity-issuer";
pub(crate) const CONTROLLER: &str = "ztmesh-controller";

/// What the objects are made from.
pub(crate) struct Options {
    pub(crate) namespace: String,
    pub(crate) trust_domain: String,
    pub(crate) cluster_domain: String,
    pub(crate) image: String,
    pub(crate) ha: bool,
    /// The issuer Secret is `kubernetes.io/tls`, managed elsewhere.
    pub(crate) external_issuer: bool,
    /// Address the injector webhook by this URL instead of its Service.
    pub(crate) webhook_url: Option<String>,
}

impl Options {
    /// The names the injector's serving certificate must hold.
    pub(crate) fn webhook_names(&self) -> Vec<String> {
        let svc = format!("{}.{}.svc", webhook::SERVICE, self.namespace);
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
    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/part-of": "ztmesh",
            "app.kubernetes.io/component": component,
            "linkerd.io/control-plane-ns": self.namespace,
        })
    }

    fn meta(&self, name: &str, component: &str) -> Value {
        json!({"name": name, "namespace": self.namespace, "labels": self.labels(component)})
    }
}

pub(crate) fn base64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Every object, in apply order.
pub(crate) fn objects(opts: &Options, material: &pki::Material) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": opts.namespace,
            "labels": {
                "linkerd.io/is-control-plane": "true",
                "config.linkerd.io/admission-webhooks": "disabled",
                "linkerd.io/control-plane-ns": opts.namespace,
            },
        },
    })];
    out.extend(rbac::objects(opts));
    out.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": opts.meta(TRUST_ROOTS, "identity"),
        "data": {"ca-bundle.crt": material.anchors_pem},
    }));
    if let Some((cert, key)) = &material.issuer {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": opts.meta(ISSUER_SECRET, "identity"),
            "type": "Opaque",
            "data": {"crt.pem": base64(cert), "key.pem": base64(key)},
        }));
    }
    out.extend(workload::services(opts));
    out.extend(webhook::objects(opts, &material.webhook));
    out.extend(workload::controller(opts));
    out
}
