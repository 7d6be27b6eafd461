//! Issue 14's whole path on a real API server (`ZTMESH_TEST_KUBECONFIG`,
//! from `scripts/test-kube`; needs root): the booksapp's plain
//! Deployments applied with kubectl to a namespace annotated
//! `linkerd.io/inject: enabled` and labelled to enforce injection; the API
//! server calls `ztmesh controller --kubernetes`'s webhook (by URL on the
//! host), which stores the pods with the proxy; the test plays kubelet
//! over exactly those pods (proxy-init, the proxy with the env and the
//! projected token the spec says, the app); webapp's GET of authors is
//! mTLS with both identities, traffic is refused by the seed's policy,
//! and a pod that opts out of injection is refused with the reason.
//! The flow is [`super::kube_pods::booksapp_over_the_mesh`]'s. Then
//! `ztmesh check --kubernetes --proxy` finds each pod's proxy ready on a
//! current certificate, and `--compliance` the namespace enforcing
//! injection with every pod meshed (and no default-deny NetworkPolicy).

use super::kube_pods::{Injection, booksapp_over_the_mesh};
use crate::support::kubelet::{Kube, RunningPod};
use crate::support::{eventually, ztmesh};
use serde_json::Value;
use std::time::Duration;

#[test]
#[ignore = "needs ZTMESH_TEST_KUBECONFIG and root: run scripts/test-kube"]
fn webhook_injected_booksapp_pods_run_with_mtls_and_policy() {
    booksapp_over_the_mesh(Injection::Webhook, check_the_cluster);
}

/// `ztmesh check --kubernetes ARGS`: the JSON report, and the table as
/// an operator sees it (printed for the record).
fn check(kube: &Kube, args: &[&str]) -> Value {
    let run = |output: &str| {
        ztmesh()
            .args(["check", "--kubernetes", "--timeout", "5s", "-o", output])
            .arg("--kubeconfig")
            .arg(&kube.kubeconfig)
            .args(args)
            .output()
            .expect("ztmesh check")
    };
    let table = run("table");
    println!(
        "$ ztmesh check --kubernetes {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&table.stdout)
    );
    let json = run("json");
    serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&json.stdout),
            String::from_utf8_lossy(&json.stderr)
        )
    })
}

/// The status of the check `id` whose title starts with `prefix`.
fn status<'a>(report: &'a Value, id: &str, prefix: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == id && c["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
        .map(|c| &c["status"])
        .unwrap_or_else(|| panic!("{id} ({prefix}) in {report:#}"))
}

fn check_the_cluster(kube: &Kube, pods: &[(&str, &RunningPod)]) {
    eventually(Duration::from_secs(30), "every pod's proxy checked", || {
        let report = check(kube, &["--proxy", "-n", "booksapp"]);
        let failing: Vec<String> = pods
            .iter()
            .flat_map(|(_, pod)| {
                let prefix = format!("booksapp/{}: ", pod.name);
                ["proxy-container", "proxy-ready", "proxy-certificate"]
                    .into_iter()
                    .filter(|id| status(&report, id, &prefix) != "pass")
                    .map(|id| format!("{prefix}{id}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(format!("{failing:?} in {report:#}"))
        }
    });
    let report = check(kube, &["--compliance", "-n", "booksapp"]);
    for (id, want) in [
        ("enforce-injection", "pass"),
        ("pods-proxied", "pass"),
        ("default-deny", "fail"),
    ] {
        assert_eq!(status(&report, id, "booksapp: "), want, "{id}: {report:#}");
    }
}
