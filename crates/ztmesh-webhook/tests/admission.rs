//! Both endpoints on AdmissionReviews a real kube-apiserver (v1.28) sent
//! (tests/fixtures: captured from a cluster with webhooks pointed at a
//! capture server; the mutating one asked for v1, the validating one for
//! v1beta1), answered by [`Webhook::handle`] with the test injector.

use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use ztmesh_webhook::test_util::{FixedNamespaces, TEST_PROXY_IMAGE, TestInjector};
use ztmesh_webhook::{Metrics, NamespaceMeta, Webhook};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// The fixtures' namespace, `shop`: enforced and annotated for injection (or not).
fn shop(enforced: bool, inject: bool) -> NamespaceMeta {
    let mut meta = NamespaceMeta::named("shop");
    if enforced {
        meta.labels =
            BTreeMap::from([("config.ztmesh.io/enforce-injection".into(), "true".into())]);
    }
    if inject {
        meta.annotations = BTreeMap::from([("linkerd.io/inject".into(), "enabled".into())]);
    }
    meta
}

fn webhook(namespaces: FixedNamespaces) -> Webhook {
    Webhook::new(
        Arc::new(TestInjector),
        Arc::new(namespaces),
        Metrics::default(),
    )
}

#[derive(Debug, PartialEq)]
enum Expect {
    Patched,
    Allowed,
    Denied(&'static [&'static str]),
}

/// Checks the response to `request` (a review) is `expect`; the decoded patch.
fn check(case: &str, request: &[u8], body: &[u8], expect: &Expect) -> Option<Value> {
    let request: Value = serde_json::from_slice(request).expect("fixture JSON");
    let review: Value = serde_json::from_slice(body).expect("a JSON response");
    assert_eq!(review["apiVersion"], request["apiVersion"], "{case}");
    assert_eq!(review["kind"], "AdmissionReview", "{case}");
    let response = &review["response"];
    assert_eq!(response["uid"], request["request"]["uid"], "{case}");
    let patch = response["patch"].as_str().map(|p| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("base64");
        serde_json::from_slice::<Value>(&bytes).expect("JSON patch")
    });
    match expect {
        Expect::Patched => {
            assert_eq!(response["allowed"], true, "{case}");
            assert_eq!(response["patchType"], "JSONPatch", "{case}");
            assert!(patch.is_some(), "{case}");
        }
        Expect::Allowed => {
            assert_eq!(response["allowed"], true, "{case}: {response}");
            assert!(response.get("patch").is_none(), "{case}");
        }
        Expect::Denied(needles) => {
            assert_eq!(response["allowed"], false, "{case}");
            assert_eq!(response["status"]["code"], 403, "{case}");
            let message = response["status"]["message"].as_str().expect("message");
            for needle in *needles {
                assert!(message.contains(needle), "{case}: {message}");
            }
        }
    }
    patch
}

const REFUSED: &[&str] = &[
    "has no linkerd-proxy container",
    "namespace \"shop\" enforces proxy injection (label config.ztmesh.io/enforce-injection=true)",
    "linkerd.io/inject=enabled",
    "config.ztmesh.io/injection-exempt=<reason>",
];

#[tokio::test]
async fn real_reviews() {
    let enforced_injecting = FixedNamespaces::default().with(shop(true, true));
    let plain = FixedNamespaces::default().with(shop(false, false));
    let unreadable = FixedNamespaces::default().failing("shop");
    // (fixture, path, namespaces, expected, result label)
    let cases = [
        (
            "inject-v1-pod-plain",
            "/inject?timeout=10s",
            &enforced_injecting,
            Expect::Patched,
            "patched",
        ),
        (
            "inject-v1-pod-replicaset",
            "/inject?timeout=10s",
            &enforced_injecting,
            Expect::Patched,
            "patched",
        ),
        (
            "inject-v1-pod-with-proxy",
            "/inject",
            &enforced_injecting,
            Expect::Allowed,
            "skipped",
        ),
        (
            "inject-v1-service",
            "/inject",
            &enforced_injecting,
            Expect::Allowed,
            "skipped",
        ),
        (
            "inject-v1-pod-plain",
            "/inject",
            &plain,
            Expect::Allowed,
            "skipped",
        ),
        (
            "inject-v1-pod-plain",
            "/inject",
            &unreadable,
            Expect::Allowed,
            "error",
        ),
        (
            "validate-v1beta1-pod-plain",
            "/validate?timeout=10s",
            &enforced_injecting,
            Expect::Denied(REFUSED),
            "denied",
        ),
        (
            "validate-v1beta1-pod-replicaset",
            "/validate",
            &enforced_injecting,
            Expect::Denied(&["pod \"books-6d66d85556-m9fxl\""]),
            "denied",
        ),
        (
            "validate-v1beta1-pod-dry-run",
            "/validate",
            &enforced_injecting,
            Expect::Denied(&["pod \"dry\""]),
            "denied",
        ),
        (
            "validate-v1beta1-pod-with-proxy",
            "/validate",
            &enforced_injecting,
            Expect::Allowed,
            "allowed",
        ),
        (
            "validate-v1beta1-pod-native-sidecar",
            "/validate",
            &enforced_injecting,
            Expect::Allowed,
            "allowed",
        ),
        (
            "validate-v1beta1-pod-exempt",
            "/validate",
            &enforced_injecting,
            Expect::Allowed,
            "bypass",
        ),
        (
            "validate-v1-pod-delete",
            "/validate",
            &enforced_injecting,
            Expect::Allowed,
            "allowed",
        ),
        (
            "validate-v1beta1-pod-plain",
            "/validate",
            &plain,
            Expect::Allowed,
            "allowed",
        ),
        // Fail closed: the selector matched an enforced namespace.
        (
            "validate-v1beta1-pod-plain",
            "/validate",
            &unreadable,
            Expect::Denied(REFUSED),
            "denied",
        ),
    ];
    for (name, path, namespaces, expect, result) in cases {
        let case = format!("{name} {path}");
        let webhook = webhook(namespaces.clone());
        let request = fixture(name);
        let reply = webhook.handle(path, &request).await;
        assert_eq!(reply.status, 200, "{case}");
        assert_eq!(reply.content_type, "application/json", "{case}");
        let patch = check(&case, &request, &reply.body, &expect);
        if let Some(patch) = patch {
            assert_eq!(
                patch,
                json!([{"op": "add", "path": "/spec/containers/-",
                        "value": {"name": "linkerd-proxy", "image": TEST_PROXY_IMAGE}}]),
                "{case}"
            );
        }
        let endpoint = if path.starts_with("/inject") {
            "inject"
        } else {
            "validate"
        };
        assert_eq!(webhook.metrics().requests(endpoint, result), 1, "{case}");
        let bypasses = u64::from(result == "bypass");
        assert_eq!(webhook.metrics().bypasses("shop"), bypasses, "{case}");
    }
}

#[tokio::test]
async fn an_exempt_dry_run_is_not_counted() {
    let mut review: Value =
        serde_json::from_slice(&fixture("validate-v1beta1-pod-exempt")).expect("JSON");
    review["request"]["dryRun"] = json!(true);
    let body = serde_json::to_vec(&review).expect("JSON");
    let webhook = webhook(FixedNamespaces::default().with(shop(true, false)));
    let reply = webhook.handle("/validate", &body).await;
    check("dry run", &body, &reply.body, &Expect::Allowed);
    assert_eq!(webhook.metrics().requests("validate", "bypass"), 1);
    assert_eq!(webhook.metrics().bypasses("shop"), 0);
}

#[tokio::test]
async fn bad_requests_get_a_reason() {
    let uidless = {
        let mut review: Value =
            serde_json::from_slice(&fixture("validate-v1beta1-pod-plain")).expect("JSON");
        review["request"]
            .as_object_mut()
            .expect("request")
            .remove("uid");
        serde_json::to_vec(&review).expect("JSON")
    };
    let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#.to_vec();
    // (path, body, status, reason contains)
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("/validate", b"garbage".to_vec(), 400, "not JSON"),
        ("/inject", Vec::new(), 400, "not JSON"),
        ("/inject", pod, 400, "not an AdmissionReview"),
        ("/validate", uidless, 400, "no uid"),
        (
            "/validate",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}"#
                .to_vec(),
            400,
            "no request",
        ),
        (
            "/mutate",
            fixture("inject-v1-pod-plain"),
            404,
            "POST /inject or /validate",
        ),
    ];
    let webhook = webhook(FixedNamespaces::default().with(shop(true, true)));
    for (path, body, status, needle) in cases {
        let reply = webhook.handle(path, &body).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, status, "{path}: {text}");
        assert!(text.contains(needle), "{path}: {text}");
    }
    assert_eq!(webhook.metrics().requests("validate", "invalid"), 3);
    assert_eq!(webhook.metrics().requests("inject", "invalid"), 2);
    assert_eq!(webhook.metrics().requests("other", "invalid"), 1);
}
