//! `ztmesh check --kubernetes` against a real API server
//! (`ZTMESH_TEST_KUBECONFIG`, from `scripts/test-kube`; ignored in CI,
//! which has none). The test plays kubelet where the checks need one:
//! pods are bound to a fake Node and their status patched. Each mode's
//! JSON is asserted, failing cases included: `--pre` passing, as a user
//! without rights, and with an API server that does not answer; the
//! default checks of a control plane whose pods are not running (then
//! made ready) and whose injector webhook is not reachable (then
//! reached: a stand-in, [`injector`]); `--proxy` over a real proxy
//! certified with the cluster's issuer (then the issuer replaced), a
//! ready proxy whose pod IP is not reachable from here, a crashing one
//! and one without the proxy container; `--compliance` over an enforced,
//! default-denied namespace with an exempted pod, and an open one with
//! an unproxied pod and a skip-port bypass.

mod cluster;
mod injector;

use crate::support::{eventually, run_ok, ztmesh};
use cluster::{
    Cleanup, check, container, expect, find, kubeconfig, kubectl, namespace, pod_yaml, run_pod,
    running,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[test]
#[ignore = "needs ZTMESH_TEST_KUBECONFIG: run scripts/test-kube"]
fn check_modes_against_a_real_api_server() {
    let k = &kubeconfig();
    let p = format!("kc{}", std::process::id());
    let cp = format!("{p}-mesh");
    // The identity the cluster's ConfigMap and Secret carry, and which a
    // local controller certifies a real proxy with.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&id));

    // --pre, before anything is installed (the CRDs may be: compatible).
    let (pre, ok) = check(k, &["--pre", "-L", &cp]);
    assert!(ok, "{pre:#}");
    expect(&pre, "api-server", "", "pass", "v1.");
    expect(&pre, "kubernetes-version", "", "pass", "");
    for id in ["rbac-cluster", "rbac-namespaced", "rbac-grants", "crds"] {
        expect(&pre, id, "", "pass", "");
    }
    // An API server that does not answer: one failure, quickly.
    let dead = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(k).unwrap();
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("a server line");
    std::fs::write(dead.path(), text.replace(server, "https://127.0.21.1:1")).unwrap();
    let (down, ok) = check(dead.path(), &["--pre"]);
    assert!(!ok);
    assert_eq!(down["checks"].as_array().unwrap().len(), 1, "{down:#}");
    expect(&down, "api-server", "", "fail", "127.0.21.1:1");

    // The control plane, its injector addressed at a URL nothing serves.
    let crds = run_ok(ztmesh().args(["install", "--crds"]));
    kubectl(k, &["apply", "-f", "-"], &crds);
    let install_with = |dir: &Path| {
        run_ok(
            ztmesh()
                .args([
                    "install",
                    "--kubernetes",
                    "--namespace",
                    &cp,
                    "--webhook-url",
                    "https://127.0.21.1:1/inject",
                    "--dir",
                ])
                .arg(dir),
        )
    };
    let install = install_with(&id);
    let node = format!("{p}-node");
    let _cleanup = Cleanup {
        kubeconfig: k,
        install: Some(install.clone()),
        namespaces: ["app", "good", "open"]
            .iter()
            .map(|s| format!("{p}-{s}"))
            .collect(),
        node: node.clone(),
    };
    kubectl(k, &["apply", "-f", "-"], &install);
    let (cplane, ok) = check(k, &["-L", &cp]);
    assert!(!ok, "{cplane:#}");
    expect(&cplane, "api-server", "", "pass", "");
    expect(
        &cplane,
        "deployments",
        "",
        "fail",
        "deployment/ztmesh-controller: 0 of 1 available",
    );
    expect(
        &cplane,
        "injector-reachable",
        "",
        "fail",
        "came back without linkerd-proxy",
    );
    expect(&cplane, "webhook-ca-bundle", "", "pass", "");
    expect(&cplane, "trust-anchors", "", "pass", "valid until");
    expect(&cplane, "issuer", "", "pass", "valid until");
    // The controller's pod, run by the test: then ready and available.
    kubectl(
        k,
        &["apply", "-f", "-"],
        &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
            .to_string(),
    );
    let pod = eventually(Duration::from_secs(30), "the controller's pod", || {
        let name = kubectl(k, &["get", "pods", "-n", &cp, "-o", "name"], "");
        name.strip_prefix("pod/").map(String::from).ok_or(name)
    });
    expect(
        &check(k, &["-L", &cp]).0,
        "controller-pods",
        "",
        "fail",
        "not scheduled to a node",
    );
    run_pod(
        k,
        &cp,
        &pod,
        &node,
        running(
            "10.255.0.9",
            serde_json::json!([container(
                "controller",
                true,
                serde_json::json!({"running": {}})
            )]),
        ),
    );
    eventually(Duration::from_secs(30), "the Deployment available", || {
        let (r, _) = check(k, &["-L", &cp]);
        let d = find(&r, "deployments", "").clone();
        (d["status"] == "pass").then_some(()).ok_or(d)
    });
    expect(
        &check(k, &["-L", &cp]).0,
        "controller-pods",
        "",
        "pass",
        "1 pod(s) ready",
    );

    // An injector the API server reaches (a stand-in answering with the
    // proxy container): the dry-run Pod comes back injected.
    let listener = std::net::TcpListener::bind("127.0.21.6:0").unwrap();
    let url = format!("https://{}/inject", listener.local_addr().unwrap());
    let reachable = run_ok(
        ztmesh()
            .args([
                "install",
                "--kubernetes",
                "--namespace",
                &cp,
                "--webhook-url",
                &url,
                "--dir",
            ])
            .arg(&id),
    );
    let secret = serde_yaml::Deserializer::from_str(&reachable)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| {
            d["kind"] == "Secret" && d["metadata"]["name"] == "linkerd-proxy-injector-k8s-tls"
        })
        .expect("the injector's serving Secret");
    let decode = |key: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap()
    };
    let injector = injector::serve(listener, &decode("tls.crt"), &decode("tls.key"));
    kubectl(k, &["apply", "-f", "-"], &reachable);
    let (served, ok) = check(k, &["-L", &cp]);
    expect(
        &served,
        "injector-reachable",
        "",
        "pass",
        "came back with linkerd-proxy",
    );
    expect(&served, "webhook-ca-bundle", "", "pass", "");
    assert!(ok, "{served:#}");
    // Back to the unreachable URL: the pods below must stay as written.
    kubectl(k, &["apply", "-f", "-"], &install);
    drop(injector);

    // --proxy: a real proxy certified by a local controller with the
    // cluster's issuer, at a pod IP this host reaches (127.0.21.5); a ready
    // proxy at an IP it does not reach; a crashing one; and a pod labelled
    // injected without the proxy.
    let app = format!("{p}-app");
    namespace(k, &app);
    // --pre as a user without rights: what the install needs is denied.
    kubectl(
        k,
        &["create", "serviceaccount", "installer", "-n", &app],
        "",
    );
    let token = kubectl(k, &["create", "token", "installer", "-n", &app], "");
    let limited = tmp.path().join("limited.kubeconfig");
    let admin = std::fs::read_to_string(k).unwrap();
    let user: String = admin
        .lines()
        .map(|l| match l.split_once("token: ") {
            Some((indent, _)) => format!("{indent}token: {token}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&limited, user).unwrap();
    let (denied, ok) = check(&limited, &["--pre", "-L", &cp]);
    assert!(!ok, "{denied:#}");
    expect(&denied, "api-server", "", "pass", "");
    expect(
        &denied,
        "rbac-cluster",
        "",
        "fail",
        "create namespaces (cluster-wide): denied",
    );
    expect(
        &denied,
        "rbac-namespaced",
        "",
        "fail",
        &format!("create deployments.apps in {cp}: denied"),
    );
    expect(
        &denied,
        "rbac-grants",
        "",
        "fail",
        "list pods (cluster-wide): denied",
    );
    expect(&denied, "crds", "", "fail", "forbidden");

    let injected = serde_json::json!({"linkerd.io/control-plane-ns": cp});
    for (name, proxy) in [
        ("web", true),
        ("far", true),
        ("crash", true),
        ("bare", false),
    ] {
        kubectl(
            k,
            &["create", "-f", "-"],
            &pod_yaml(&app, name, injected.clone(), serde_json::json!({}), proxy),
        );
    }
    let up = serde_json::json!({"running": {}});
    let ready_proxy = serde_json::json!([
        container("linkerd-proxy", true, up.clone()),
        container("app", true, up.clone())
    ]);
    run_pod(
        k,
        &app,
        "web",
        &node,
        running("127.0.21.5", ready_proxy.clone()),
    );
    run_pod(k, &app, "far", &node, running("10.255.0.5", ready_proxy));
    run_pod(
        k,
        &app,
        "crash",
        &node,
        running(
            "10.255.0.6",
            serde_json::json!([container(
                "linkerd-proxy",
                false,
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}})
            )]),
        ),
    );
    let (_controller, identity) = crate::support::controller(&id, &[]);
    let token = tmp.path().join("web.token");
    crate::support::token_file(&id, &app, "default", &token);
    let anchors = std::fs::read_to_string(id.join("ca.crt")).unwrap();
    let plane = crate::support::ControlPlane {
        anchors: &anchors,
        identity: &identity,
        destination: None,
    };
    let name = format!("default.{app}.serviceaccount.identity.linkerd.cluster.local");
    let _proxy = crate::support::explicit_proxy(&plane, &name, &token, "127.0.21.5:18400", &[]);
    let web = format!("{app}/web: ");
    let proxies = eventually(Duration::from_secs(30), "the proxy certified", || {
        let (r, _) = check(k, &["--proxy", "-L", &cp, "-n", &app]);
        let c = find(&r, "proxy-certificate", &web).clone();
        (c["status"] == "pass").then_some(r).ok_or(c)
    });
    expect(&proxies, "proxy-container", &web, "pass", "ready");
    expect(&proxies, "proxy-ready", &web, "pass", "ready");
    expect(&proxies, "proxy-certificate", &web, "pass", &name);
    expect(
        &proxies,
        "proxy-anchors",
        &web,
        "pass",
        "trusts all 1 current anchor(s)",
    );
    let far = format!("{app}/far: ");
    expect(&proxies, "proxy-container", &far, "pass", "ready");
    expect(
        &proxies,
        "proxy-certificate",
        &far,
        "warn",
        "the pod IP 10.255.0.5 is not reachable from where check runs",
    );
    expect(
        &proxies,
        "proxy-container",
        &format!("{app}/crash: "),
        "fail",
        "CrashLoopBackOff",
    );
    expect(
        &proxies,
        "proxy-container",
        &format!("{app}/bare: "),
        "fail",
        "no linkerd-proxy container",
    );
    // New trust roots and issuer on the cluster: the proxy's certificate
    // and anchors are no longer current.
    let other = tmp.path().join("other");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&other));
    kubectl(k, &["apply", "-f", "-"], &install_with(&other));
    let (rotated, ok) = check(k, &["--proxy", "-L", &cp, "-n", &app]);
    assert!(!ok, "{rotated:#}");
    expect(&rotated, "proxy-certificate", &web, "fail", "not valid");
    expect(
        &rotated,
        "proxy-anchors",
        &web,
        "fail",
        "does not trust the current anchor(s)",
    );

    // --compliance: an enforced, default-denied namespace with an exempted
    // pod; an open one with an unproxied pod and a skipped served port.
    let (good, open) = (format!("{p}-good"), format!("{p}-open"));
    // Labelled after its pods exist: the enforcing webhook (whose URL
    // nothing serves here) would refuse them.
    namespace(k, &good);
    namespace(k, &open);
    let deny = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-all, namespace: {good}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n"
    );
    kubectl(k, &["apply", "-f", "-"], &deny);
    for yaml in [
        pod_yaml(&good, "web", injected.clone(), serde_json::json!({}), true),
        pod_yaml(
            &good,
            "batch",
            serde_json::json!({}),
            serde_json::json!({"config.ztmesh.io/injection-exempt": "legacy batch, ticket 7"}),
            false,
        ),
        pod_yaml(
            &open,
            "plain",
            serde_json::json!({}),
            serde_json::json!({}),
            false,
        ),
        pod_yaml(
            &open,
            "skips",
            injected.clone(),
            serde_json::json!({"config.linkerd.io/skip-inbound-ports": "8080"}),
            true,
        ),
    ] {
        kubectl(k, &["create", "-f", "-"], &yaml);
    }
    let label = "config.ztmesh.io/enforce-injection=true";
    kubectl(k, &["label", "namespace", &good, label], "");
    let (all, ok) = check(k, &["--compliance", "-L", &cp]);
    assert!(!ok, "{all:#}");
    let g = format!("{good}: ");
    let o = format!("{open}: ");
    for (id, prefix, status, words) in [
        ("enforce-injection", &g, "pass", ""),
        ("pods-proxied", &g, "pass", ""),
        ("default-deny", &g, "pass", "networkpolicy/deny-all"),
        (
            "injection-exempt",
            &g,
            "warn",
            "/batch: legacy batch, ticket 7",
        ),
        ("enforce-injection", &o, "fail", ""),
        ("pods-proxied", &o, "fail", "/plain"),
        (
            "skip-inbound-ports",
            &o,
            "fail",
            "port 8080 (container app)",
        ),
        ("default-deny", &o, "fail", ""),
    ] {
        expect(&all, id, prefix, status, words);
    }
    // The control plane's namespace is not judged; one namespace alone
    // passes but for its exemption.
    assert!(
        !all["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["title"].as_str().unwrap().starts_with(&format!("{cp}: ")))
    );
    let (one, ok) = check(k, &["--compliance", "-L", &cp, "-n", &good]);
    assert!(ok, "{one:#}");
    assert_eq!(one["summary"]["warn"], 1, "{one:#}");
}
