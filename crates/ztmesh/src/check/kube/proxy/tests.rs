use super::super::observe::call::CallError;
use super::super::pods::pod_identity;
use super::*;
use crate::check::Status;
use crate::check::chain::ChainError;
use crate::check::mesh::WorkloadObs;
use crate::check::workloads::Workload;
use serde_json::json;

/// An injected pod whose proxy status is `status` (none when null).
fn pod(name: &str, proxy: bool, status: serde_json::Value) -> Pod {
    let mut containers = vec![json!({"name": "app", "image": "app"})];
    if proxy {
        containers.push(json!({"name": PROXY_CONTAINER, "image": "proxy", "env": [
            {"name": "LINKERD2_PROXY_IDENTITY_LOCAL_NAME", "value": "$(_pod_sa).$(_pod_ns).serviceaccount.identity.linkerd.example.org"},
        ]}));
    }
    let statuses = if status.is_null() {
        json!([])
    } else {
        json!([status])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "app", "labels": {"linkerd.io/control-plane-ns": "linkerd"}},
        "spec": {"containers": containers, "serviceAccountName": "web"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": statuses},
    }))
    .unwrap()
}

fn ready(ready: bool, state: serde_json::Value) -> serde_json::Value {
    json!({"name": PROXY_CONTAINER, "ready": ready, "restartCount": 2, "image": "p", "imageID": "", "state": state})
}

fn probed(p: &Pod) -> Reach {
    let addr: std::net::SocketAddr = "10.0.0.5:4191".parse().unwrap();
    Reach::Probed(Box::new(WorkloadObs {
        workload: Workload {
            namespace: "app".into(),
            name: "web-1".into(),
            workload: ztmesh_policy::WorkloadRef::Pod("web-1".into()),
            ip: addr.ip(),
            identity: pod_identity(p, "linkerd"),
            ports: vec![],
            labels: Default::default(),
            explicit: false,
        },
        admin: addr,
        ready: Ok(()),
        metrics: Ok(vec![]),
        chain: Err(ChainError::Empty {
            addr: "10.0.0.5:4143".parse().unwrap(),
        }),
        default_policy: None,
        probed_ports: vec![],
        open_app_ports: vec![],
    }))
}

fn find<'a>(got: &'a [CheckResult], title: &str) -> &'a CheckResult {
    got.iter()
        .find(|c| c.title == title)
        .unwrap_or_else(|| panic!("{title} in {got:#?}"))
}

#[test]
fn per_pod_container_and_certificate() {
    let unreachable = Reach::Unreachable {
        addr: "10.0.0.5:4191".parse().unwrap(),
        reason: "no answer within 1s".into(),
    };
    let web = pod("web-1", true, ready(true, json!({"running": {}})));
    let web_reach = probed(&web);
    // (pod, how it was reached, (title, status, words) expected)
    type Case = (Pod, Reach, Vec<(&'static str, Status, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            pod("a", true, ready(true, json!({"running": {}}))),
            unreachable,
            vec![
                (
                    "app/a: proxy container ready",
                    Status::Pass,
                    "ready, 2 restart(s)",
                ),
                (
                    "app/a: certificate from the current issuer",
                    Status::Warn,
                    "the pod IP 10.0.0.5 is not reachable from where check runs",
                ),
            ],
        ),
        (
            pod(
                "b",
                true,
                ready(false, json!({"waiting": {"reason": "CrashLoopBackOff"}})),
            ),
            Reach::NoIp,
            vec![
                (
                    "app/b: proxy container ready",
                    Status::Fail,
                    "waiting: CrashLoopBackOff",
                ),
                (
                    "app/b: certificate from the current issuer",
                    Status::Warn,
                    "no IP",
                ),
            ],
        ),
        (
            pod("c", true, ready(false, json!({"running": {}}))),
            Reach::NoIp,
            vec![(
                "app/c: proxy container ready",
                Status::Fail,
                "readiness probe",
            )],
        ),
        (
            pod("d", false, json!(null)),
            Reach::NoIp,
            vec![(
                "app/d: proxy container ready",
                Status::Fail,
                "no linkerd-proxy container",
            )],
        ),
        (
            pod("e", true, json!(null)),
            Reach::NoIp,
            vec![("app/e: proxy container ready", Status::Fail, "no status")],
        ),
        (
            web,
            web_reach,
            vec![
                ("app/web-1: proxy ready", Status::Pass, "ready"),
                (
                    "app/web-1: certificate from the current issuer",
                    Status::Fail,
                    "presented no certificate",
                ),
                (
                    "app/web-1: trusts the current anchors",
                    Status::Warn,
                    "does not export",
                ),
            ],
        ),
    ];
    for (i, (pod, reach, want)) in cases.into_iter().enumerate() {
        let obs = ProxyObs {
            pods: Ok(vec![PodProbe { pod, reach }]),
            trust_roots: Ok(None),
            issuer: Ok(None),
        };
        let got = checks(&obs, "linkerd", SystemTime::now());
        for (title, status, words) in want {
            let c = find(&got, title);
            assert_eq!(c.status, status, "case {i}: {c:#?}");
            assert!(c.detail.contains(words), "case {i}: {words:?} in {c:#?}");
            assert_eq!(c.fix.is_some(), status != Status::Pass, "case {i}: {c:#?}");
        }
    }
}

#[test]
fn no_pods_or_no_list() {
    let none = ProxyObs {
        pods: Ok(vec![]),
        trust_roots: Ok(None),
        issuer: Ok(None),
    };
    let got = checks(&none, "linkerd", SystemTime::now());
    assert_eq!(got[0].status, Status::Warn);
    assert!(
        got[0]
            .detail
            .contains("linkerd.io/control-plane-ns=linkerd")
    );
    let denied = ProxyObs {
        pods: Err(CallError::new("list injected Pods", "forbidden")),
        trust_roots: Ok(None),
        issuer: Ok(None),
    };
    assert_eq!(
        checks(&denied, "linkerd", SystemTime::now())[0].status,
        Status::Fail
    );
}

#[test]
fn the_identity_comes_from_the_proxy_env_or_linkerds_default() {
    let with_env = pod("a", true, json!(null));
    assert_eq!(
        pod_identity(&with_env, "linkerd"),
        "web.app.serviceaccount.identity.linkerd.example.org"
    );
    let without: Pod = serde_json::from_value(json!({
        "metadata": {"name": "b", "namespace": "shop"},
        "spec": {"containers": [{"name": PROXY_CONTAINER}]},
    }))
    .unwrap();
    assert_eq!(
        pod_identity(&without, "mesh"),
        "default.shop.serviceaccount.identity.mesh.cluster.local"
    );
}
