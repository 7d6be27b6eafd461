//! The proxy injector as Linkerd declares it: its Service, its serving
//! certificate (Secret `linkerd-proxy-injector-k8s-tls`) and the
//! `MutatingWebhookConfiguration` `linkerd-proxy-injector-webhook-config`,
//! addressed by the Service or, with `--webhook-url`, by URL. Part 2 of
//! the Kubernetes work serves it; until then `failurePolicy: Ignore` lets
//! pods through uninjected.

use super::options::{INJECTOR_SERVICE as SERVICE, Options, base64, selector};
use super::pki::WebhookTls;
use serde_json::{Value, json};

pub(crate) const TLS_SECRET: &str = "linkerd-proxy-injector-k8s-tls";
pub(crate) const CONFIG: &str = "linkerd-proxy-injector-webhook-config";

pub(super) fn objects(opts: &Options, tls: &WebhookTls) -> Vec<Value> {
    let ns = &opts.namespace;
    let client_config = match &opts.webhook_url {
        Some(url) => json!({"url": url, "caBundle": base64(&tls.ca_pem)}),
        None => json!({
            "service": {"name": SERVICE, "namespace": ns, "path": "/", "port": 443},
            "caBundle": base64(&tls.ca_pem),
        }),
    };
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": opts.meta(SERVICE, "proxy-injector"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(),
                "ports": [{"name": "proxy-injector", "port": 443, "targetPort": "proxy-injector"}],
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": opts.meta(TLS_SECRET, "proxy-injector"),
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64(&tls.cert_pem),
                "tls.key": base64(&tls.key_pem),
                "ca.crt": base64(&tls.ca_pem),
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": CONFIG, "labels": opts.labels("proxy-injector")},
            "webhooks": [{
                "name": "linkerd-proxy-injector.linkerd.io",
                "namespaceSelector": {"matchExpressions": [
                    {"key": "config.linkerd.io/admission-webhooks", "operator": "NotIn", "values": ["disabled"]},
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
                ]},
                "objectSelector": {"matchExpressions": [
                    {"key": "linkerd.io/control-plane-component", "operator": "DoesNotExist"},
                    {"key": "linkerd.io/cni-resource", "operator": "DoesNotExist"},
                ]},
                "clientConfig": client_config,
                "failurePolicy": "Ignore",
                "admissionReviewVersions": ["v1", "v1beta1"],
                "reinvocationPolicy": "Never",
                "rules": [{
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods", "services"],
                    "scope": "Namespaced",
                }],
                "sideEffects": "None",
                "timeoutSeconds": 10,
            }],
        }),
    ]
}
