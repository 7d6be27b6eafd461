//! The issuer Secret and trust-roots ConfigMap against a real API server
//! (only when `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`):
//! copied into a directory at start, and each update copied again.

mod support;

use std::time::Duration;
use support::kubectl;
use ztmesh_kube::issuer_secret::{keep_synced, sync_once};

fn secret(ns: &str, crt: &str, key: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: linkerd-identity-issuer, namespace: {ns}}}\ntype: Opaque\ndata: {{crt.pem: {}, key.pem: {}}}\n",
        b64(crt),
        b64(key)
    )
}

#[tokio::test]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn the_issuer_is_copied_at_start_and_on_each_update() {
    let kubeconfig = support::kubeconfig();
    let ns = support::namespace(&kubeconfig, "is");
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: linkerd-identity-trust-roots, namespace: {ns}}}\ndata: {{ca-bundle.crt: ANCHORS}}\n"
    );
    kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&cm));
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&secret(&ns, "CERT-1", "KEY-1")),
    );

    let client = ztmesh_kube::client(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    sync_once(&client, &ns, dir.path()).await.expect("copied");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    assert_eq!(
        (read("ca.crt"), read("issuer.crt"), read("issuer.key")),
        ("ANCHORS".into(), "CERT-1".into(), "KEY-1".into())
    );

    let task = keep_synced(client, &ns, dir.path().to_path_buf());
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&secret(&ns, "CERT-2", "KEY-2")),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while (read("issuer.crt"), read("issuer.key")) != ("CERT-2".into(), "KEY-2".into()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the update is copied: {} {}",
            read("issuer.crt"),
            read("issuer.key")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}
