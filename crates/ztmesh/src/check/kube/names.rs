//! The names a cluster check looks for: Linkerd's objects and
//! annotations, ztmesh's enforcement label and exemption annotation, and
//! the check's own scratch objects. A leaf: every other file of the tree
//! may use it.

/// The controller's pods.
pub(crate) const CONTROLLER_SELECTOR: &str = "ztmesh.io/control-plane-component=controller";
/// The proxy injector's serving certificate and its webhook configuration.
pub(crate) const SERVING_SECRET: &str = "linkerd-proxy-injector-k8s-tls";
pub(crate) const INJECTOR_CONFIG: &str = "linkerd-proxy-injector-webhook-config";
/// The identity objects.
pub(crate) const TRUST_ROOTS: &str = "linkerd-identity-trust-roots";
pub(crate) const ISSUER_SECRET: &str = "linkerd-identity-issuer";
/// The injected proxy's container.
pub(crate) const PROXY_CONTAINER: &str = "linkerd-proxy";
/// Enforcement and its per-pod exemption (the validating webhook's).
pub(crate) const ENFORCE_LABEL: &str = "config.ztmesh.io/enforce-injection";
pub(crate) const EXEMPT_ANNOTATION: &str = "config.ztmesh.io/injection-exempt";
pub(crate) const SKIP_INBOUND: &str = "config.linkerd.io/skip-inbound-ports";
/// The dry run's Pod (and ServiceAccount) and its scratch namespace: a
/// name prefix the API server completes, and a label.
pub(crate) const PROBE_POD: &str = "ztmesh-check-injection-probe";
pub(crate) const SCRATCH_PREFIX: &str = "ztmesh-check-";
pub(crate) const SCRATCH_LABEL: (&str, &str) = ("ztmesh.io/check", "scratch");

/// The Pod the dry run creates.
pub(crate) fn probe_pod() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": PROBE_POD,
            "annotations": {"linkerd.io/inject": "enabled"},
        },
        "spec": {
            "serviceAccountName": PROBE_POD,
            "containers": [{"name": "app", "image": "ztmesh-check-probe"}],
        },
    })
}
