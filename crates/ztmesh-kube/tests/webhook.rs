//! The admission webhook against a real API server (only when
//! `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): the webhook
//! (ztmesh-webhook, the test injector, the namespaces read by
//! [`KubeNamespaces`]) serves on 127.0.20.1, and webhook configurations
//! limited to this test's namespaces point the API server at it by URL.
//! In the enforced namespace a pod without the proxy is refused with the
//! reason and the way out, an exempted one is admitted and counted as a
//! bypass; in an enforced namespace annotated `linkerd.io/inject:
//! enabled` a pod is mutated (it carries the test proxy) and admitted.

mod support;

use base64::Engine;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;
use support::kubectl;
use ztmesh_kube::namespaces::KubeNamespaces;
use ztmesh_webhook::test_util::{TEST_PROXY_IMAGE, TestInjector};
use ztmesh_webhook::{CertFiles, Limits, Metrics, Webhook};

const HOST: &str = "127.0.20.1";
const DEADLINE: Duration = Duration::from_secs(60);

/// kubectl's (success, stdout, stderr).
fn try_kubectl(kubeconfig: &OsStr, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
    let mut child = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("stdin");
    drop(input);
    let out = child.wait_with_output().expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A CA and a serving certificate for HOST in `dir`; the CA's PEM.
fn write_cert(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![HOST.to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write");
    ca_cert.pem()
}

fn pod(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {annotations}\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
    )
}

/// Deletes the webhook configurations and namespaces, even on a panic.
struct Cleanup {
    kubeconfig: std::ffi::OsString,
    prefix: String,
    namespaces: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for kind in [
            "mutatingwebhookconfiguration",
            "validatingwebhookconfiguration",
        ] {
            try_kubectl(
                &self.kubeconfig,
                &["delete", kind, &self.prefix, "--ignore-not-found"],
                "",
            );
        }
        for ns in &self.namespaces {
            try_kubectl(
                &self.kubeconfig,
                &[
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                "",
            );
        }
    }
}

// Multi-threaded: kubectl blocks the test's thread while the API server
// calls the webhook served on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn the_api_server_calls_the_webhook() {
    let kubeconfig = support::kubeconfig();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 1_000_000;
    let prefix = format!("wh{n}");
    let (enforced, injected) = (format!("{prefix}-enforced"), format!("{prefix}-injected"));
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        prefix: prefix.clone(),
        namespaces: vec![enforced.clone(), injected.clone()],
    };
    for ns in [&enforced, &injected] {
        kubectl(&kubeconfig, &["create", "namespace", ns], None);
        kubectl(
            &kubeconfig,
            &[
                "label",
                "namespace",
                ns,
                "config.ztmesh.io/enforce-injection=true",
            ],
            None,
        );
    }
    kubectl(
        &kubeconfig,
        &[
            "annotate",
            "namespace",
            &injected,
            "linkerd.io/inject=enabled",
        ],
        None,
    );

    // The webhook, in process.
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_cert(dir.path());
    let client = ztmesh_kube::client(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("client");
    let metrics = Metrics::default();
    let webhook = Webhook::new(
        Arc::new(TestInjector),
        Arc::new(KubeNamespaces::start(client)),
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind((HOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls = CertFiles::from_dir(dir.path())
        .expect("cert")
        .server_config()
        .expect("config");
    let server = tokio::spawn(ztmesh_webhook::serve(
        listener,
        tls,
        Arc::new(webhook),
        Limits::default(),
        std::future::pending(),
    ));

    // Both configurations, for this test's namespaces only.
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
    let hook = |kind: &str, path: &str, policy: &str| {
        format!(
            r#"{{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "{kind}",
  "metadata": {{"name": "{prefix}"}},
  "webhooks": [{{"name": "{prefix}.ztmesh.io",
    "clientConfig": {{"url": "https://{addr}{path}", "caBundle": "{ca_bundle}"}},
    "namespaceSelector": {{"matchLabels": {{"config.ztmesh.io/enforce-injection": "true"}},
      "matchExpressions": [{{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["{enforced}", "{injected}"]}}]}},
    "rules": [{{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}}],
    "failurePolicy": "{policy}", "sideEffects": "None", "admissionReviewVersions": ["v1", "v1beta1"], "timeoutSeconds": 10}}]}}"#
        )
    };
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&hook("MutatingWebhookConfiguration", "/inject", "Ignore")),
    );
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&hook("ValidatingWebhookConfiguration", "/validate", "Fail")),
    );

    // Until both are in force: a dry run in the injected namespace comes
    // back with the proxy, and one in the enforced namespace is refused.
    let start = tokio::time::Instant::now();
    loop {
        let (ok, out, _) = try_kubectl(
            &kubeconfig,
            &[
                "create",
                "-n",
                &injected,
                "--dry-run=server",
                "-o",
                "json",
                "-f",
                "-",
            ],
            &pod("probe", "{}"),
        );
        let (refused_ok, _, refused_err) = try_kubectl(
            &kubeconfig,
            &["create", "-n", &enforced, "--dry-run=server", "-f", "-"],
            &pod("probe", "{}"),
        );
        if ok && out.contains(TEST_PROXY_IMAGE) && !refused_ok && refused_err.contains("denied") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the webhooks are not in force: {out} {refused_err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Refused, with the reason and the way out.
    let (ok, _, err) = try_kubectl(
        &kubeconfig,
        &["create", "-n", &enforced, "-f", "-"],
        &pod("plain", "{}"),
    );
    assert!(!ok, "a pod without the proxy was admitted");
    for needle in [
        "admission webhook",
        "denied the request",
        "pod \"plain\" has no linkerd-proxy container",
        "config.ztmesh.io/enforce-injection=true",
        "linkerd.io/inject=enabled",
        "config.ztmesh.io/injection-exempt=<reason>",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }

    // Exempted: admitted, and counted (the dry runs were not).
    assert_eq!(metrics.bypasses(&enforced), 0);
    kubectl(
        &kubeconfig,
        &["create", "-n", &enforced, "-f", "-"],
        Some(&pod(
            "exempt",
            "{config.ztmesh.io/injection-exempt: 'one-off migration, ticket 42'}",
        )),
    );
    assert_eq!(metrics.bypasses(&enforced), 1);

    // Mutated, then admitted: the stored pod carries the proxy.
    kubectl(
        &kubeconfig,
        &["create", "-n", &injected, "-f", "-"],
        Some(&pod("web", "{}")),
    );
    let images = kubectl(
        &kubeconfig,
        &[
            "get",
            "pod",
            "web",
            "-n",
            &injected,
            "-o",
            "jsonpath={range .spec.containers[*]}{.name}={.image} {end}",
        ],
        None,
    );
    assert_eq!(
        images,
        format!("app=nginx linkerd-proxy={TEST_PROXY_IMAGE}")
    );
    assert!(metrics.requests("inject", "patched") >= 1);
    assert!(metrics.requests("validate", "denied") >= 1);
    server.abort();
}
