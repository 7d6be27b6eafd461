//! The admission webhooks the controller serves (`--webhook-addr`): the
//! proxy injector as Linkerd declares it, its Service, its serving
//! certificate (Secret `linkerd-proxy-injector-k8s-tls`, mounted into the
//! controller) and the `MutatingWebhookConfiguration`
//! `linkerd-proxy-injector-webhook-config` (`POST /inject`; `failurePolicy:
//! Ignore` as Linkerd's: a pod the injector misses is admitted, and
//! enforcement catches it where it applies); and injection enforcement,
//! the `ValidatingWebhookConfiguration` `ztmesh-injection-enforcement`
//! (`POST /validate`, `failurePolicy: Fail`), called only for pods created
//! in namespaces labelled `config.ztmesh.io/enforce-injection: "true"`.
//! Both are addressed by the Service or, with `--webhook-url BASE`, by
//! `BASE/inject` and `BASE/validate`.

use super::options::{INJECTOR_SERVICE as SERVICE, Options, base64, selector};
use super::pki::WebhookTls;
use serde_json::{Value, json};

pub(crate) const TLS_SECRET: &str = "linkerd-proxy-injector-k8s-tls";
pub(crate) const CONFIG: &str = "linkerd-proxy-injector-webhook-config";
pub(crate) const ENFORCEMENT: &str = "ztmesh-injection-enforcement";
/// The controller's paths for the two webhooks.
pub(crate) const INJECT_PATH: &str = "/inject";
pub(crate) const VALIDATE_PATH: &str = "/validate";

/// Where the API server calls `path`: the Service, or the URL's base.
fn client_config(opts: &Options, tls: &WebhookTls, path: &str) -> Value {
    match &opts.webhook_url {
        Some(base) => json!({
            "url": format!("{}{path}", base.trim_end_matches('/')),
            "caBundle": base64(&tls.ca_pem),
        }),
        None => json!({
            "service": {"name": SERVICE, "namespace": opts.namespace, "path": path, "port": 443},
            "caBundle": base64(&tls.ca_pem),
        }),
    }
}

/// Enforcement: pods created in a labelled namespace, never in
/// kube-system or the control plane's. No objectSelector: a pod's labels
/// are its creator's to set, so one would be an unlogged way out; the
/// exemption annotation is the logged one.
fn enforcement(opts: &Options, tls: &WebhookTls) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": ENFORCEMENT, "labels": opts.labels("proxy-injector")},
        "webhooks": [{
            "name": "injection-enforcement.ztmesh.io",
            "namespaceSelector": {
                "matchLabels": {ztmesh_webhook::ENFORCE_LABEL: "true"},
                "matchExpressions": [{
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", opts.namespace],
                }],
            },
            "clientConfig": client_config(opts, tls, VALIDATE_PATH),
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "admissionReviewVersions": ["v1", "v1beta1"],
            // CREATE only: a pod's containers cannot change afterwards, and
            // refusing UPDATEs of pods created before the label would block
            // their label and finalizer changes.
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        }],
    })
}

pub(super) fn objects(opts: &Options, tls: &WebhookTls) -> Vec<Value> {
    let client_config = client_config(opts, tls, INJECT_PATH);
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
        enforcement(opts, tls),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::pki::WebhookTls;
    use super::*;

    fn opts(url: Option<&str>) -> Options {
        let mut opts = super::super::tests::options("mesh", false);
        opts.webhook_url = url.map(String::from);
        opts
    }

    fn tls() -> WebhookTls {
        WebhookTls {
            ca_pem: "CA".into(),
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        }
    }

    #[test]
    fn enforcement_webhook() {
        // (--webhook-url, the clientConfig expected)
        let cases = [
            (
                None,
                json!({"service": {"name": SERVICE, "namespace": "mesh", "path": "/validate", "port": 443},
                       "caBundle": base64("CA")}),
            ),
            (
                Some("https://127.0.20.1:8443/"),
                json!({"url": "https://127.0.20.1:8443/validate", "caBundle": base64("CA")}),
            ),
        ];
        for (url, client_config) in cases {
            let objs = objects(&opts(url), &tls());
            let cfg = objs
                .iter()
                .find(|o| o["kind"] == "ValidatingWebhookConfiguration")
                .expect("the enforcement webhook");
            assert_eq!(cfg["metadata"]["name"], ENFORCEMENT);
            assert_eq!(cfg["webhooks"].as_array().map(Vec::len), Some(1));
            let hook = &cfg["webhooks"][0];
            assert_eq!(hook["clientConfig"], client_config, "{url:?}");
            assert_eq!(hook["failurePolicy"], "Fail");
            assert_eq!(hook["sideEffects"], "None");
            assert_eq!(
                hook["namespaceSelector"],
                json!({
                    "matchLabels": {"config.ztmesh.io/enforce-injection": "true"},
                    "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                          "values": ["kube-system", "mesh"]}],
                })
            );
            // A pod's labels are its creator's: no way out by label.
            assert!(hook.get("objectSelector").is_none());
            assert_eq!(
                hook["rules"],
                json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["pods"], "scope": "Namespaced"}])
            );
            assert_eq!(hook["admissionReviewVersions"], json!(["v1", "v1beta1"]));
        }
    }
}
