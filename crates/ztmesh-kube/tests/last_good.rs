//! The last good version across a restart, against a real API server
//! (only when `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): a
//! controller serves a good Server; the Server is broken with kubectl (no
//! selector: the CRD's schema allows it, the loader refuses it); the
//! controller restarts, and the policy API still serves the good version,
//! from the store's recorded last good versions. A controller started
//! without them serves nothing of the Server (the check can fail). A real
//! deletion then forgets the record.

mod support;

use linkerd2_proxy_api::inbound::PortSpec;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use std::time::Duration;
use support::kubectl;
use ztmesh_kube::last_good::LastGoodDir;
use ztmesh_test_support::TestPki;

const DEADLINE: Duration = Duration::from_secs(30);

/// A controller over the Kubernetes store (recording in `last_good`, if
/// given), serving policy; its policy address.
async fn controller(
    kubeconfig: &std::ffi::OsStr,
    pki: &TestPki,
    last_good: Option<LastGoodDir>,
) -> (ztmesh_controller::Running, std::net::SocketAddr) {
    let client = ztmesh_kube::client(Some(std::path::Path::new(kubeconfig)))
        .await
        .expect("client");
    let feed = ztmesh_kube::start_with(client, "linkerd", Default::default(), last_good)
        .await
        .expect("the store starts");
    let any = "127.0.0.1:0".parse().unwrap();
    let running = ztmesh_controller::Builder::new(pki.dir())
        .identity_addr(any)
        .policy_addr(any)
        .destination_addr(any)
        .store(feed)
        .spawn()
        .await
        .expect("the controller starts");
    let ready = tokio::time::timeout(DEADLINE, running.ready())
        .await
        .expect("synced in time");
    assert!(ready, "the store synced");
    let policy = running.addrs().policy.expect("a policy address");
    (running, policy)
}

/// The `(kind, name)` labels of the policy served for the pod's port.
async fn policy_for(policy: std::net::SocketAddr, ns: &str) -> (String, String) {
    let mut client = InboundServerPoliciesClient::connect(format!("http://{policy}"))
        .await
        .expect("policy API");
    let spec = PortSpec {
        workload: format!(r#"{{"ns":"{ns}","pod":"authors"}}"#),
        port: 7001,
    };
    let served = client.get_port(spec).await.expect("GetPort").into_inner();
    let label = |k: &str| served.labels.get(k).cloned().unwrap_or_default();
    (label("kind"), label("name"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn a_refused_object_keeps_its_last_good_version_across_a_restart() {
    let kubeconfig = support::kubeconfig();
    let ns = support::unique("lg");
    if std::env::var_os("ZTMESH_TEST_SKIP_CRDS").is_none() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds.yaml");
        kubectl(&kubeconfig, &["apply", "-f", fixtures], None);
        kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "crd",
                "--all",
            ],
            None,
        );
    }
    kubectl(&kubeconfig, &["create", "namespace", &ns], None);
    let objects = format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: authors, namespace: {ns}}}\nspec: {{podSelector: {{matchLabels: {{app: authors}}}}, port: 7001, proxyProtocol: HTTP/1}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: authors, namespace: {ns}, labels: {{app: authors, linkerd.io/control-plane-ns: linkerd}}}}\nspec: {{containers: [{{name: app, image: authors}}]}}\n"
    );
    kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&objects));

    let pki = TestPki::new();
    let state = tempfile::tempdir().expect("state dir");
    let dir = || LastGoodDir::open(state.path().join("kubernetes")).expect("last-good dir");
    let record = dir()
        .file(&(
            "Server.policy.linkerd.io".into(),
            ns.clone(),
            "authors".into(),
        ))
        .expect("a record file");

    // The first run: the good Server is served and recorded.
    let (first, policy) = controller(&kubeconfig, &pki, Some(dir())).await;
    assert_eq!(
        policy_for(policy, &ns).await,
        ("server".into(), "authors".into())
    );
    assert!(record.exists(), "{} recorded", record.display());

    // Broken with kubectl: the schema allows a Server without selector.
    kubectl(
        &kubeconfig,
        &[
            "patch",
            "servers.policy.linkerd.io",
            "authors",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/podSelector"}]"#,
        ],
        None,
    );
    let broken = kubectl(
        &kubeconfig,
        &[
            "get",
            "servers.policy.linkerd.io",
            "authors",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec}",
        ],
        None,
    );
    assert!(!broken.contains("podSelector"), "broken: {broken}");
    // Still the good one while running (the refusal keeps it).
    assert_eq!(
        policy_for(policy, &ns).await,
        ("server".into(), "authors".into())
    );
    first.shutdown().await.expect("the first controller stops");

    // Restarted: the API server has only the broken version; the recorded
    // one is in force.
    let (second, policy) = controller(&kubeconfig, &pki, Some(dir())).await;
    let served = policy_for(policy, &ns).await;
    eprintln!("after the restart, with the recorded last good versions: {served:?}");
    assert_eq!(served, ("server".into(), "authors".into()));
    second
        .shutdown()
        .await
        .expect("the second controller stops");

    // The control: without the records, nothing of the Server is in force.
    let (forgetful, policy) = controller(&kubeconfig, &pki, None).await;
    let served = policy_for(policy, &ns).await;
    eprintln!("after a restart without records: {served:?}");
    assert_eq!(served.0, "default", "{served:?}");
    forgetful
        .shutdown()
        .await
        .expect("the third controller stops");

    // A real deletion forgets the record.
    let (fourth, _) = controller(&kubeconfig, &pki, Some(dir())).await;
    kubectl(
        &kubeconfig,
        &["delete", "servers.policy.linkerd.io", "authors", "-n", &ns],
        None,
    );
    let start = tokio::time::Instant::now();
    while record.exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "the deletion forgets the record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fourth
        .shutdown()
        .await
        .expect("the fourth controller stops");
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}
