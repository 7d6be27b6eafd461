//! Table tests: API objects, as the server sends them, to resources or
//! rejections.

use super::*;
use serde_json::json;

fn pod(labels: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "authors-1", "namespace": "booksapp", "labels": labels,
                     "annotations": annotations, "uid": "u-1", "resourceVersion": "7",
                     "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
        "spec": {"serviceAccountName": "authors", "containers": [{"name": "app", "image": "x"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]}
    })
}

fn annotation(r: &Resource, key: &str) -> Option<String> {
    r.metadata().annotations.as_ref()?.get(key).cloned()
}

#[test]
fn pods_are_meshed_as_linkerd_decides() {
    // (labels, annotations, control plane ns, meshed)
    let cases = [
        (
            json!({"linkerd.io/control-plane-ns": "linkerd"}),
            json!({}),
            "linkerd",
            true,
        ),
        (
            json!({"linkerd.io/control-plane-ns": "other"}),
            json!({}),
            "linkerd",
            false,
        ),
        (
            json!({}),
            json!({"linkerd.io/inject": "enabled"}),
            "linkerd",
            false,
        ),
        (
            json!({}),
            json!({"config.ztmesh.io/proxy-mode": "explicit"}),
            "linkerd",
            false,
        ),
        (
            json!({"linkerd.io/control-plane-ns": "mesh"}),
            json!({}),
            "mesh",
            true,
        ),
    ];
    for (labels, annotations, cp, meshed) in cases {
        let why = format!("{labels} {annotations} {cp}");
        let t = translate(&pod(labels, annotations), cp).expect(&why);
        let inject = annotation(&t.resource, "linkerd.io/inject");
        assert_eq!(inject.as_deref() == Some("enabled"), meshed, "{why}");
        assert!(
            annotation(&t.resource, "config.ztmesh.io/proxy-mode").is_none(),
            "{why}"
        );
    }
}

#[test]
fn objects_load_or_are_refused_with_the_manifest_reason() {
    // (object, Ok(key) or Err(a reason's substring, the field))
    let server = |spec: serde_json::Value| {
        json!({"apiVersion": "policy.linkerd.io/v1beta2", "kind": "Server",
               "metadata": {"name": "authors", "namespace": "booksapp", "generation": 2},
               "spec": spec, "status": {"conditions": []}})
    };
    let cases: Vec<(serde_json::Value, Result<&str, (&str, Option<&str>)>)> = vec![
        (
            server(json!({"podSelector": {"matchLabels": {"app": "authors"}}, "port": 7001})),
            Ok("Server booksapp/authors"),
        ),
        (
            server(json!({"port": 7001})),
            Err((
                "needs podSelector or externalWorkloadSelector",
                Some("spec"),
            )),
        ),
        (
            server(json!({"podSelector": {}, "port": 7001, "bogus": 1})),
            Err(("unknown field `bogus`", Some("spec.bogus"))),
        ),
        (
            json!({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
                   "metadata": {"name": "a", "namespace": "booksapp"},
                   "spec": {"identities": ["books.booksapp.serviceaccount.identity.linkerd.cluster.local"]}}),
            Ok("MeshTLSAuthentication booksapp/a"),
        ),
        (
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": "r", "namespace": "booksapp"},
                   "spec": {"parentRefs": [{"name": "authors", "kind": "Service", "group": "core"}]}}),
            Ok("HTTPRoute.gateway.networking.k8s.io booksapp/r"),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "booksapp", "annotations": {"config.linkerd.io/default-inbound-policy": "deny"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            Ok("Namespace booksapp"),
        ),
        (
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "s", "namespace": "booksapp"}, "addressType": "IPv4", "endpoints": []}),
            Err(("not a kind ztmesh uses", None)),
        ),
    ];
    for (object, want) in cases {
        let got = translate(&object, "linkerd");
        match (got, want) {
            (Ok(t), Ok(key)) => assert_eq!(t.resource.key().to_string(), key),
            (Err(r), Err((reason, field))) => {
                assert!(
                    r.reasons.iter().any(|x| x.contains(reason)),
                    "{object}: {r:?} should say {reason:?}"
                );
                assert_eq!(r.field.as_deref(), field, "{object}");
                assert_eq!(r.object, object_name(&object));
            }
            (got, want) => panic!("{object}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn versions_are_read_as_the_loader_serves_them() {
    let cases = [
        ("policy.linkerd.io/v1beta3", "Server", true),
        ("policy.linkerd.io/v1beta1", "ServerAuthorization", true),
        // Loaded with a warning (as v1beta1): not chosen when another is served.
        ("policy.linkerd.io/v1beta2", "ServerAuthorization", false),
        ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", true),
        ("policy.linkerd.io/v1beta3", "AuthorizationPolicy", false),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", true),
        ("gateway.networking.k8s.io/v1alpha2", "HTTPRoute", false),
        ("v1", "Pod", true),
        ("v1", "ConfigMap", false),
    ];
    for (api_version, kind, want) in cases {
        assert_eq!(
            reads_version(api_version, kind),
            want,
            "{api_version} {kind}"
        );
    }
}
