//! Two replicas against a real API server (only when
//! `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): one leads
//! and writes an HTTPRoute's status; killed (its task aborted, the Lease
//! not released), the other takes over within the Lease's duration and
//! writes the next status. Stopped gracefully (SIGTERM: the Lease
//! released), the other takes over at its next try, far sooner than the
//! Lease's duration.

mod support;

use std::time::Duration;
use support::kubectl;
use ztmesh_kube::lease::{LeaseConfig, elect};

/// Waits for `cond` (checked every 100ms) until `within`; how long it took.
async fn until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Our `Accepted` condition's status on the route, if written.
fn accepted(kubeconfig: &std::ffi::OsStr, ns: &str) -> Option<String> {
    let out = kubectl(
        kubeconfig,
        &[
            "get",
            "httproutes.policy.linkerd.io",
            "authors-route",
            "-n",
            ns,
            "-o",
            "json",
        ],
        None,
    );
    let route: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    route["status"]["parents"]
        .as_array()?
        .iter()
        .filter(|p| p["controllerName"] == ztmesh_kube::status::CONTROLLER_NAME)
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .find(|c| c["type"] == "Accepted")
        .and_then(|c| c["status"].as_str().map(String::from))
}

fn route(ns: &str, server: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {{name: authors-route, namespace: {ns}}}\nspec:\n  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: {server}}}]\n  rules: [{{matches: [{{path: {{type: PathPrefix, value: /}}}}]}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn the_leader_writes_status_and_another_takes_over_when_it_dies() {
    let kubeconfig = support::kubeconfig();
    let ns = support::unique("ha");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds.yaml");
    kubectl(&kubeconfig, &["apply", "-f", fixtures], None);
    kubectl(&kubeconfig, &["create", "namespace", &ns], None);
    let server = format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: authors, namespace: {ns}}}\nspec: {{podSelector: {{matchLabels: {{app: authors}}}}, port: 7001}}\n"
    );
    kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&server));
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&route(&ns, "authors")),
    );

    let client = ztmesh_kube::client(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("client");
    let kinds = ztmesh_kube::watch::discover(&client)
        .await
        .expect("discovery");
    let lease_time = Duration::from_secs(4);
    let replica = |name: &str| {
        let config = LeaseConfig {
            duration: lease_time,
            renew_every: Duration::from_millis(500),
            ..LeaseConfig::new(&ns, name)
        };
        let election = elect(client.clone(), config);
        let leading = election.leading();
        let status = ztmesh_kube::status::run(client.clone(), &kinds, leading.clone());
        (leading, election, status)
    };
    let (a_leads, a_election, a_status) = replica("replica-a");
    let (b_leads, b_election, b_status) = replica("replica-b");

    until(Duration::from_secs(10), "one replica leads", || {
        *a_leads.borrow() || *b_leads.borrow()
    })
    .await;
    // Both renew every 500ms: still exactly one, some rounds later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        *a_leads.borrow() ^ *b_leads.borrow(),
        "exactly one leader: a {} b {}",
        *a_leads.borrow(),
        *b_leads.borrow()
    );
    until(
        Duration::from_secs(10),
        "the leader writes Accepted=True",
        || accepted(&kubeconfig, &ns).as_deref() == Some("True"),
    )
    .await;

    // Kill the leader: its tasks stop, the Lease is left to expire.
    let a_led = *a_leads.borrow();
    let (survivor, dead) = if a_led {
        a_election.abort();
        a_status.abort();
        (b_leads.clone(), "replica-a")
    } else {
        b_election.abort();
        b_status.abort();
        (a_leads.clone(), "replica-b")
    };
    let took = until(lease_time * 2, "the other replica takes over", || {
        *survivor.borrow()
    })
    .await;
    eprintln!("{dead} killed; the other replica leads after {took:?} (lease {lease_time:?})");
    assert!(took <= lease_time + Duration::from_secs(2), "took {took:?}");

    // The new leader writes: the route now names a Server that does not exist.
    kubectl(
        &kubeconfig,
        &["apply", "-f", "-"],
        Some(&route(&ns, "missing")),
    );
    until(
        Duration::from_secs(10),
        "the new leader writes Accepted=False",
        || accepted(&kubeconfig, &ns).as_deref() == Some("False"),
    )
    .await;
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
    a_election.abort();
    b_election.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn a_leader_stopped_gracefully_hands_over_at_once() {
    let kubeconfig = support::kubeconfig();
    let ns = support::namespace(&kubeconfig, "hg");
    let client = ztmesh_kube::client(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("client");
    // A long Lease: a successor waiting for it to expire would take 20s.
    let lease_time = Duration::from_secs(20);
    let renew_every = Duration::from_millis(500);
    let replica = |name: &str| {
        elect(
            client.clone(),
            LeaseConfig {
                duration: lease_time,
                renew_every,
                ..LeaseConfig::new(&ns, name)
            },
        )
    };
    let a = replica("replica-a");
    let b = replica("replica-b");
    let (a_leads, b_leads) = (a.leading(), b.leading());
    until(Duration::from_secs(10), "one replica leads", || {
        *a_leads.borrow() || *b_leads.borrow()
    })
    .await;
    let (leader, survivor, survivor_leads, stopped) = if *a_leads.borrow() {
        (a, b, b_leads, "replica-a")
    } else {
        (b, a, a_leads, "replica-b")
    };
    let start = tokio::time::Instant::now();
    let released = leader.step_down().await.expect("the Lease is released");
    assert!(released, "the leader held the Lease, and released it");
    until(lease_time, "the other replica takes over", || {
        *survivor_leads.borrow()
    })
    .await;
    // From the start of the step-down, release included.
    let took = start.elapsed();
    eprintln!(
        "{stopped} stopped gracefully; the other replica leads after {took:?} (lease {lease_time:?}, tries every {renew_every:?})"
    );
    assert!(
        took < Duration::from_secs(3),
        "far below the Lease's {lease_time:?}: {took:?}"
    );
    let holder = kubectl(
        &kubeconfig,
        &[
            "get",
            "lease",
            "ztmesh-controller-write",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    assert!(
        holder != stopped && !holder.is_empty(),
        "the survivor holds it: {holder:?}"
    );
    drop(survivor);
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}
