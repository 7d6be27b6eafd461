//! `ztmesh inject` and `ztmesh uninject`, the real binary on stdin
//! streams and directories: the documents come out in order, pod
//! templates annotated (or, with --manual, carrying the proxy), the
//! report on stderr is Linkerd's, `kubectl get -o yaml`'s List keeps its
//! server fields, uninject gives the input back, and --manual without
//! trust anchors fails naming what is missing.

use crate::support;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use ztmesh_inject::yaml::{parse_stream, render_stream};

const STREAM: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: my-app
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: my-app
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1
        ports:
        - containerPort: 8080
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
  namespace: my-app
spec:
  selector:
    matchLabels: {app: node-agent}
  template:
    metadata:
      labels: {app: node-agent}
    spec:
      hostNetwork: true
      containers:
      - name: agent
        image: agent:1
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: my-app
";

/// `kubectl get deploy -n my-app -o yaml`, with what the server adds.
const KUBECTL_LIST: &str = "\
apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: books
    namespace: my-app
    resourceVersion: \"4242\"
    uid: 6b1f3c1e-0000-4000-8000-000000000001
    managedFields:
    - manager: kubectl-client-side-apply
      operation: Update
  spec:
    selector:
      matchLabels: {app: books}
    template:
      metadata:
        labels: {app: books}
      spec:
        containers:
        - name: books
          image: books:1
          ports:
          - containerPort: 7002
  status:
    readyReplicas: 1
    replicas: 1
";

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = support::ztmesh()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ztmesh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: &str) -> (Vec<Value>, String) {
    let out = run(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ztmesh {args:?} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (parse_stream(&stdout).unwrap(), stderr)
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

#[test]
fn inject_annotates_a_stream_from_stdin_and_reports_per_object() {
    let (docs, stderr) = ok(&["inject", "-"], STREAM);
    assert_eq!(
        kinds(&docs),
        ["Namespace", "Deployment", "DaemonSet", "Secret"]
    );
    assert_eq!(
        docs[0]["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    let template = &docs[1]["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    assert_eq!(template["spec"]["containers"].as_array().unwrap().len(), 1);
    // The skipped objects pass through unchanged.
    let input = parse_stream(STREAM).unwrap();
    assert_eq!(docs[2], input[2]);
    assert_eq!(docs[3], input[3]);
    assert_eq!(
        stderr,
        "\n\
         ‼ \"hostNetwork: true\" detected in daemonset/node-agent\n\
         \n\
         namespace \"my-app\" annotated\n\
         deployment \"web\" injected\n\
         daemonset \"node-agent\" skipped\n\
         secret \"creds\" skipped\n\
         \n"
    );
}

#[test]
fn manual_inject_of_a_kubectl_list_keeps_server_fields_and_uninject_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("ca.crt");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(&anchors, pem).unwrap();
    let args = [
        "inject",
        "--manual",
        "--ignore-cluster",
        "--identity-trust-anchors-file",
        anchors.to_str().unwrap(),
        "--proxy-log-level",
        "debug",
        "-",
    ];
    let (docs, stderr) = ok(&args, KUBECTL_LIST);
    assert_eq!(stderr, "\ndeployment \"books\" injected\n\n");
    let deploy = &docs[0]["items"][0];
    assert_eq!(deploy["status"]["readyReplicas"], 1);
    assert_eq!(deploy["metadata"]["resourceVersion"], "4242");
    assert!(deploy["metadata"]["managedFields"].is_array());
    let template = &deploy["spec"]["template"];
    let ann = &template["metadata"]["annotations"];
    assert_eq!(ann["config.linkerd.io/proxy-log-level"], "debug");
    assert_eq!(
        ann["linkerd.io/trust-root-sha256"],
        "8010bfcee1842b2a4ce8f67c3e9455f0188f7a15bf39ec61a26feb75cd785821",
        "sha256sum of the anchors file"
    );
    let containers = template["spec"]["containers"].as_array().unwrap();
    let proxy = containers
        .iter()
        .find(|c| c["name"] == "linkerd-proxy")
        .unwrap();
    let env = |name: &str| {
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"), pem);
    assert_eq!(env("LINKERD2_PROXY_INBOUND_PORTS"), "7002");
    assert!(
        env("LINKERD2_PROXY_LOG")
            .as_str()
            .unwrap()
            .starts_with("debug,")
    );
    assert_eq!(
        template["spec"]["initContainers"][0]["args"][0],
        "proxy-init"
    );

    // Uninject gives back the canonical input, byte for byte.
    let injected = render_stream(&docs).unwrap();
    let out = run(&["uninject", "-"], &injected);
    assert!(out.status.success());
    let canonical = render_stream(&parse_stream(KUBECTL_LIST).unwrap()).unwrap();
    let back = String::from_utf8(out.stdout).unwrap();
    // The override annotation stays (config.linkerd.io/ is the user's), as in Linkerd.
    let back = back.replace(
        "      metadata:\n        annotations:\n          config.linkerd.io/proxy-log-level: debug\n",
        "      metadata:\n",
    );
    assert_eq!(back, canonical);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "\ndeployment \"books\" uninjected\n\n"
    );
}

#[test]
fn a_directory_is_injected_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let docs = parse_stream(STREAM).unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        render_stream(&docs[1..2]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b/ns.yml"),
        render_stream(&docs[..1]).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not yaml").unwrap();
    let (out, stderr) = ok(&["inject", dir.path().to_str().unwrap()], "");
    assert_eq!(kinds(&out), ["Deployment", "Namespace"]);
    assert_eq!(
        stderr,
        "\ndeployment \"web\" injected\n\n\nnamespace \"my-app\" annotated\n\n"
    );
}

#[test]
fn manual_without_trust_anchors_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ztmesh"))
        .args(["inject", "--manual", "--ignore-cluster", "-"])
        .env("ZTMESH_CONTEXT", dir.path().join("none.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "--identity-trust-anchors-file",
        "--dir",
        "linkerd/linkerd-identity-trust-roots",
    ] {
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
}
