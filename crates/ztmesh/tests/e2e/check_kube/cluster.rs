//! What the cluster test shares: `kubectl`, `ztmesh check --kubernetes
//! -o json` and assertions on its report, playing kubelet (binding a pod
//! to a Node and patching its status), and the cleanup of what the test
//! made.

use crate::support::{describe, eventually, ztmesh};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(super) fn kubeconfig() -> PathBuf {
    std::env::var_os("ZTMESH_TEST_KUBECONFIG")
        .expect("ZTMESH_TEST_KUBECONFIG names the API server's kubeconfig (scripts/test-kube)")
        .into()
}

/// `kubectl ARGS` with `stdin`; its stdout. Panics with its output on failure.
pub(super) fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ztmesh check --kubernetes ARGS -o json`: the report, and whether it exited 0.
pub(super) fn check(kubeconfig: &Path, args: &[&str]) -> (Value, bool) {
    let out = ztmesh()
        .args([
            "check",
            "--kubernetes",
            "--timeout",
            "2s",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    (report, out.status.success())
}

/// The check with `id` whose title starts with `prefix`.
pub(super) fn find<'a>(report: &'a Value, id: &str, prefix: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["title"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("{id} ({prefix}) in {report:#}"))
}

/// Asserts the check's status and that `words` are in its detail or an offender.
pub(super) fn expect(report: &Value, id: &str, prefix: &str, status: &str, words: &str) {
    let c = find(report, id, prefix);
    let text = format!("{} {}", c["detail"], c["offenders"]);
    assert_eq!(c["status"], status, "{id} ({prefix}): {c:#}");
    assert!(text.contains(words), "{id} ({prefix}): {words:?} in {c:#}");
}

/// Plays kubelet: binds `pod` to `node` and patches its status.
pub(super) fn run_pod(k: &Path, ns: &str, pod: &str, node: &str, status: Value) {
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    kubectl(k, &["create", "-f", "-"], &binding.to_string());
    let patch = serde_json::json!({"status": status}).to_string();
    kubectl(
        k,
        &[
            "patch",
            "pod",
            pod,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ],
        "",
    );
}

/// Creates namespace `name` and waits for its `default` ServiceAccount
/// (the API server refuses pods until the controller-manager made it).
pub(super) fn namespace(k: &Path, name: &str) {
    kubectl(k, &["create", "namespace", name], "");
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || {
            let out = kubectl(k, &["get", "serviceaccounts", "-n", name, "-o", "name"], "");
            out.contains("serviceaccount/default")
                .then_some(())
                .ok_or(out)
        },
    );
}

pub(super) fn running(ip: &str, containers: Value) -> Value {
    serde_json::json!({
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "containerStatuses": containers,
    })
}

pub(super) fn container(name: &str, ready: bool, state: Value) -> Value {
    serde_json::json!({"name": name, "ready": ready, "restartCount": 0, "image": name, "imageID": "", "state": state})
}

pub(super) fn pod_yaml(
    ns: &str,
    name: &str,
    labels: Value,
    annotations: Value,
    proxy: bool,
) -> String {
    let mut containers = vec![
        serde_json::json!({"name": "app", "image": "app", "ports": [{"containerPort": 8080}]}),
    ];
    if proxy {
        containers.push(serde_json::json!({"name": "linkerd-proxy", "image": "proxy", "env": [
            {"name": "LINKERD2_PROXY_IDENTITY_LOCAL_NAME", "value": format!("default.{ns}.serviceaccount.identity.linkerd.cluster.local")},
        ]}));
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"containers": containers},
    })
    .to_string()
}

/// Deletes what the test made, also when it fails (best effort: the
/// cluster is disposable).
pub(super) struct Cleanup<'a> {
    pub(super) kubeconfig: &'a Path,
    pub(super) install: Option<String>,
    pub(super) namespaces: Vec<String>,
    pub(super) node: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
        let run = |args: &[&str], stdin: &str| {
            use std::io::Write;
            let child = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(self.kubeconfig)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                if let Some(mut input) = child.stdin.take() {
                    let _ = input.write_all(stdin.as_bytes());
                }
                let _ = child.wait();
            }
        };
        if let Some(install) = &self.install {
            run(
                &["delete", "--wait=false", "--ignore-not-found", "-f", "-"],
                install,
            );
        }
        for ns in &self.namespaces {
            run(
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
        run(&["delete", "node", &self.node, "--ignore-not-found"], "");
    }
}
