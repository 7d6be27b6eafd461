//! The controller's admission webhook, called by a real API server
//! (`ZTMESH_TEST_KUBECONFIG`, from `scripts/test-kube`; ignored in CI):
//! `ztmesh install --kubernetes --webhook-url https://127.0.20.1:PORT`
//! gives the serving certificate (its Secret's tls.crt/tls.key) and the
//! two webhook configurations, applied as they are; `ztmesh controller
//! --kubernetes --webhook-addr 127.0.20.1:PORT --webhook-tls-dir DIR`
//! serves them. A pod without the proxy in a namespace labelled
//! `config.ztmesh.io/enforce-injection=true` is refused with the reason
//! and the way out; an exempted one is admitted, logged as a bypass and
//! counted on the admin server's /metrics; an unlabelled namespace is not
//! enforced. A pod annotated `linkerd.io/inject: enabled`, or in a
//! namespace so annotated, is stored with the proxy the controller's
//! injector added (its current trust anchors in the proxy's env).

use crate::support::{Daemon, admin_metric, eventually, run_ok, ztmesh};
use base64::Engine;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    child.wait_with_output().expect("kubectl")
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let out = kubectl(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        crate::support::describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pod(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {annotations}\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
    )
}

/// Removes the webhook configurations (cluster-wide) and the namespaces.
struct Cleanup<'a> {
    kubeconfig: &'a Path,
    hooks: String,
    namespaces: [String; 2],
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        kubectl(
            self.kubeconfig,
            &["delete", "--ignore-not-found", "-f", "-"],
            &self.hooks,
        );
        for ns in &self.namespaces {
            kubectl(
                self.kubeconfig,
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

#[test]
#[ignore = "needs ZTMESH_TEST_KUBECONFIG: run scripts/test-kube"]
fn the_controller_enforces_injection() {
    let kubeconfig = std::env::var_os("ZTMESH_TEST_KUBECONFIG")
        .expect("ZTMESH_TEST_KUBECONFIG names the API server's kubeconfig (scripts/test-kube)");
    let kubeconfig = Path::new(&kubeconfig);
    let port = std::net::TcpListener::bind("127.0.20.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("https://127.0.20.1:{port}");
    let install = run_ok(ztmesh().args(["install", "--kubernetes", "--webhook-url", &url]));
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&install)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .collect();
    let tls = tempfile::tempdir().expect("dir");
    let secret = docs
        .iter()
        .find(|d| {
            d["kind"] == "Secret" && d["metadata"]["name"] == "linkerd-proxy-injector-k8s-tls"
        })
        .expect("the webhook's Secret");
    for file in ["tls.crt", "tls.key"] {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][file].as_str().expect("data"))
            .expect("base64");
        std::fs::write(tls.path().join(file), pem).expect("write");
    }
    let hooks: String = docs
        .iter()
        .filter(|d| {
            d["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("WebhookConfiguration"))
        })
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("YAML")))
        .collect();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 1_000_000;
    let (enforced, open) = (format!("enf{n}"), format!("open{n}"));
    let _cleanup = Cleanup {
        kubeconfig,
        hooks: hooks.clone(),
        namespaces: [enforced.clone(), open.clone()],
    };
    kubectl_ok(kubeconfig, &["create", "namespace", &enforced], "");
    kubectl_ok(kubeconfig, &["create", "namespace", &open], "");
    kubectl_ok(
        kubeconfig,
        &[
            "label",
            "namespace",
            &enforced,
            "config.ztmesh.io/enforce-injection=true",
        ],
        "",
    );

    let identity = tempfile::tempdir().expect("dir");
    run_ok(ztmesh().args(["install", "--dir"]).arg(identity.path()));
    let mut cmd = ztmesh();
    cmd.env("KUBECONFIG", kubeconfig)
        .args([
            "controller",
            "--kubernetes",
            "--no-context",
            "--identity-dir",
        ])
        .arg(identity.path())
        .args([
            "--identity-addr",
            "127.0.20.1:0",
            "--policy-addr",
            "127.0.20.1:0",
        ])
        .args([
            "--destination-addr",
            "127.0.20.1:0",
            "--viz-addr",
            "127.0.20.1:0",
        ])
        .args([
            "--admin-addr",
            "127.0.20.2:0",
            "--replica-name",
            "webhook-e2e",
        ])
        .args([
            "--webhook-addr",
            &format!("127.0.20.1:{port}"),
            "--webhook-tls-dir",
        ])
        .arg(tls.path());
    let mut controller = Daemon::spawn(cmd);
    let webhook = controller.listening_addr("admission webhook");
    assert_eq!(webhook, format!("127.0.20.1:{port}"));
    let admin = controller.listening_addr("admin server");
    kubectl_ok(kubeconfig, &["apply", "-f", "-"], &hooks);

    // In force once a dry run in the enforced namespace is refused.
    let refusal = eventually(
        Duration::from_secs(60),
        "the enforcement webhook in force",
        || {
            let out = kubectl(
                kubeconfig,
                &["create", "-n", &enforced, "--dry-run=server", "-f", "-"],
                &pod("probe", "{}"),
            );
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if !out.status.success() && err.contains("denied the request") {
                Ok(err)
            } else {
                Err(err)
            }
        },
    );
    assert!(
        refusal.contains("injection-enforcement.ztmesh.io"),
        "{refusal}"
    );

    let out = kubectl(
        kubeconfig,
        &["create", "-n", &enforced, "-f", "-"],
        &pod("plain", "{}"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "admitted: {}",
        crate::support::describe(&out)
    );
    for needle in [
        "pod \"plain\" has no linkerd-proxy container",
        "config.ztmesh.io/enforce-injection=true",
        "linkerd.io/inject=enabled",
        "config.ztmesh.io/injection-exempt=<reason>",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    // Not enforced without the label.
    kubectl_ok(
        kubeconfig,
        &["create", "-n", &open, "-f", "-"],
        &pod("plain", "{}"),
    );

    // Exempted: admitted, logged with its requester, counted.
    kubectl_ok(
        kubeconfig,
        &["create", "-n", &enforced, "-f", "-"],
        &pod(
            "migrate",
            "{config.ztmesh.io/injection-exempt: 'one-off migration, ticket 42'}",
        ),
    );
    let line = controller.wait_for("injection bypass", Duration::from_secs(10));
    for needle in [
        format!("namespace={enforced}"),
        "pod=migrate".into(),
        "reason=one-off migration, ticket 42".into(),
        "user=admin".into(),
    ] {
        assert!(line.contains(&needle), "{needle:?} not in {line}");
    }
    let label = format!("namespace=\"{enforced}\"");
    let bypasses = admin_metric(&admin, "ztmesh_webhook_injection_bypass_total", &[&label])
        .expect("admin /metrics");
    assert_eq!(bypasses, 1.0);
    let denied = admin_metric(
        &admin,
        "ztmesh_webhook_requests_total",
        &["endpoint=\"validate\"", "result=\"denied\""],
    )
    .expect("admin /metrics");
    assert!(denied >= 2.0, "{denied}");

    // Injected: the pod's own annotation in the enforced namespace, and
    // the open namespace's annotation. The mutating webhook adds the
    // proxy (ztmesh-inject, as `ztmesh inject --manual` does) with the
    // controller's current anchors, so enforcement then admits the pod.
    let anchors = std::fs::read_to_string(identity.path().join("ca.crt")).expect("ca.crt");
    kubectl_ok(
        kubeconfig,
        &["annotate", "namespace", &open, "linkerd.io/inject=enabled"],
        "",
    );
    for (ns, name, annotations) in [
        (&enforced, "meshed", "{linkerd.io/inject: enabled}"),
        (&open, "from-namespace", "{}"),
    ] {
        kubectl_ok(
            kubeconfig,
            &["create", "-n", ns, "-f", "-"],
            &pod(name, annotations),
        );
        let stored = kubectl_ok(
            kubeconfig,
            &["get", "pod", "-n", ns, name, "-o", "json"],
            "",
        );
        let stored: serde_json::Value = serde_json::from_str(&stored).expect("pod JSON");
        let names = |field: &str| -> Vec<String> {
            stored["spec"][field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        };
        assert_eq!(names("containers"), ["app", "linkerd-proxy"], "{ns}/{name}");
        assert_eq!(names("initContainers"), ["linkerd-init"], "{ns}/{name}");
        assert_eq!(
            stored["metadata"]["labels"]["linkerd.io/control-plane-ns"], "linkerd",
            "{ns}/{name}"
        );
        let proxy = stored["spec"]["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "linkerd-proxy"))
            .expect("the proxy container");
        let env = |key: &str| {
            proxy["env"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["name"] == key))
                .and_then(|e| e["value"].as_str())
                .map(String::from)
        };
        assert_eq!(
            env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")
                .as_deref()
                .map(str::trim),
            Some(anchors.trim()),
            "{ns}/{name}: the controller's anchors"
        );
        let audiences: Vec<&str> = stored["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
            .filter_map(|s| s["serviceAccountToken"]["audience"].as_str())
            .collect();
        assert_eq!(audiences, ["identity.l5d.io"], "{ns}/{name}");
    }
    let patched = admin_metric(
        &admin,
        "ztmesh_webhook_requests_total",
        &["endpoint=\"inject\"", "result=\"patched\""],
    )
    .expect("admin /metrics");
    assert!(patched >= 2.0, "{patched}");
}
