//! `ztmesh install --kubernetes`: the control plane as objects for
//! `kubectl apply -f -`, on Linkerd's names so injected proxies find it.
//!
//! [`options`] holds what they are made from and the shared names;
//! [`pki`] reads or generates the certificates; [`rbac`] the service
//! account and its least-privilege roles; [`workload`] the controller's
//! Deployment (and, with `--ha`, its PodDisruptionBudget) and the
//! Services on Linkerd's names and ports; [`webhook`] the proxy
//! injector's Service, Secret and MutatingWebhookConfiguration, and the
//! injection enforcement's ValidatingWebhookConfiguration. This
//! module adds the Namespace, the trust roots ConfigMap and the issuer
//! Secret, and orders everything so each object's dependencies come first.

mod options;
pub(crate) mod pki;
mod rbac;
#[cfg(test)]
mod tests;
mod webhook;
mod workload;

use serde_json::{Value, json};

pub(crate) use options::Options;
use options::{ISSUER_SECRET, TRUST_ROOTS, base64};

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
