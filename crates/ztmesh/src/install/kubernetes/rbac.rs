//! The controller's ServiceAccount and least-privilege RBAC, exactly what
//! ztmesh-kube uses: list and watch what its indexes read, create
//! TokenReviews, patch HTTPRoute status (both groups), create and patch
//! the trust roots' copy in each namespace (that ConfigMap only, but for
//! create, which RBAC cannot limit by name); in its own
//! namespace only, get/create/update of Leases (leader election) and
//! get/list/watch of the two identity objects by name (the store lists
//! and watches them with a `metadata.name=` field selector, which
//! resourceNames rules allow).

use super::options::{CONTROLLER, ISSUER_SECRET, Options, TRUST_ROOTS};
use serde_json::{Value, json};

const READ: [&str; 2] = ["list", "watch"];

/// Cluster-wide rules: (API group, resources, verbs).
pub(crate) fn cluster_rules() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (
            "",
            vec!["namespaces", "pods", "services", "serviceaccounts"],
            READ.to_vec(),
        ),
        ("discovery.k8s.io", vec!["endpointslices"], READ.to_vec()),
        (
            "policy.linkerd.io",
            vec![
                "servers",
                "serverauthorizations",
                "authorizationpolicies",
                "meshtlsauthentications",
                "networkauthentications",
                "httproutes",
            ],
            READ.to_vec(),
        ),
        (
            "policy.linkerd.io",
            vec!["httproutes/status"],
            vec!["patch"],
        ),
        (
            "gateway.networking.k8s.io",
            vec!["httproutes", "grpcroutes"],
            READ.to_vec(),
        ),
        (
            "gateway.networking.k8s.io",
            vec!["httproutes/status"],
            vec!["patch"],
        ),
        ("linkerd.io", vec!["serviceprofiles"], READ.to_vec()),
        (
            "workload.linkerd.io",
            vec!["externalworkloads"],
            READ.to_vec(),
        ),
        // SPIFFE federation: SPIRE's resource, where its CRD is installed.
        (
            "spire.spiffe.io",
            vec!["clusterfederatedtrustdomains"],
            READ.to_vec(),
        ),
        (
            "authentication.k8s.io",
            vec!["tokenreviews"],
            vec!["create"],
        ),
    ]
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
}

pub(super) fn objects(opts: &Options) -> Vec<Value> {
    let ns = &opts.namespace;
    // Cluster-scoped names carry the namespace, so two installs never clash.
    let cluster_name = format!("ztmesh-{ns}-controller");
    let subject = json!([{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": ns}]);
    let labels = opts.labels("controller");
    let mut cluster_rules: Vec<Value> = cluster_rules()
        .iter()
        .map(|(g, r, v)| rule(g, r, v))
        .collect();
    // The trust roots' copy in each namespace the injector serves
    // (ztmesh_kube::trust_roots): written by server-side apply, which
    // creates it the first time; only that ConfigMap is read or patched.
    cluster_rules.extend([
        rule("", &["configmaps"], &["create"]),
        json!({
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [ztmesh_kube::trust_roots::COPY],
            "verbs": ["get", "patch"],
        }),
    ]);
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": opts.meta(CONTROLLER, "controller"),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels},
            "rules": cluster_rules,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": subject,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": opts.meta(CONTROLLER, "controller"),
            "rules": [
                rule("coordination.k8s.io", &["leases"], &["get", "create", "update"]),
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": [ISSUER_SECRET],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [TRUST_ROOTS],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": opts.meta(CONTROLLER, "controller"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROLLER},
            "subjects": subject,
        }),
    ]
}
