use super::*;
use crate::check::Status;
use serde_json::json;

fn ns(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> Namespace {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}}),
    )
    .unwrap()
}

/// A pod in `ns`; with the proxy when `proxy`, its app serving `port`.
fn pod(ns: &str, name: &str, proxy: bool, port: i32, annotations: serde_json::Value) -> Pod {
    let mut containers =
        vec![json!({"name": "app", "image": "app", "ports": [{"containerPort": port}]})];
    if proxy {
        containers.push(json!({"name": "linkerd-proxy", "image": "proxy", "ports": [{"containerPort": 4143}, {"containerPort": 4191}]}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"containers": containers},
    }))
    .unwrap()
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap()
}

fn deny_all(ns: &str) -> NetworkPolicy {
    policy(
        ns,
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    )
}

fn status<'a>(got: &'a [CheckResult], ns: &str, id: &str) -> &'a CheckResult {
    got.iter()
        .find(|c| c.id == id && c.title.starts_with(&format!("{ns}: ")))
        .unwrap_or_else(|| panic!("{ns} {id} in {got:#?}"))
}

#[test]
fn each_bypass_per_namespace() {
    let enforced = json!({ENFORCE_LABEL: "true"});
    let obs = ComplianceObs {
        control_plane: "linkerd".into(),
        namespaces: Ok(vec![
            ns("good", enforced.clone(), json!({})),
            ns("open", json!({}), json!({})),
            ns("skips", enforced.clone(), json!({})),
            ns(
                "skips-ns",
                enforced.clone(),
                json!({SKIP_INBOUND: "8000-8100"}),
            ),
            ns("exempt", enforced.clone(), json!({})),
            ns("empty", json!({ENFORCE_LABEL: "false"}), json!({})),
            ns("linkerd", json!({}), json!({})),
            ns("kube-system", json!({}), json!({})),
            ns(
                "ztmesh-check-x7k2p",
                json!({"ztmesh.io/check": "scratch"}),
                json!({}),
            ),
            serde_json::from_value(
                json!({"metadata": {"name": "going"}, "status": {"phase": "Terminating"}}),
            )
            .unwrap(),
        ]),
        pods: Ok(vec![
            pod(
                "good",
                "web",
                true,
                8080,
                json!({SKIP_INBOUND: "25,9000-9100"}),
            ),
            pod("open", "web", true, 8080, json!({})),
            pod("open", "plain", false, 8080, json!({})),
            pod(
                "skips",
                "web",
                true,
                8080,
                json!({SKIP_INBOUND: "25, 8080"}),
            ),
            pod("skips-ns", "web", true, 8080, json!({})),
            pod(
                "exempt",
                "job",
                false,
                80,
                json!({EXEMPT_ANNOTATION: "legacy batch job, ticket 12"}),
            ),
            pod("kube-system", "dns", false, 53, json!({})),
        ]),
        policies: Ok(vec![
            deny_all("good"),
            // Selects some pods only: not a default deny.
            policy(
                "open",
                "some",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}),
            ),
            // Allows everything in: not a deny.
            policy(
                "skips",
                "allow",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
            ),
            // Egress only.
            policy(
                "exempt",
                "egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            ),
            // policyTypes absent: Ingress implied.
            policy("skips-ns", "implied", json!({"podSelector": {}})),
        ]),
    };
    let got = checks(&obs);
    // The system and control-plane namespaces are not judged.
    for skipped in [
        "linkerd: ",
        "kube-system: ",
        "ztmesh-check-x7k2p: ",
        "going: ",
    ] {
        assert!(
            !got.iter().any(|c| c.title.starts_with(skipped)),
            "{skipped} {got:#?}"
        );
    }
    // (namespace, check, status, offender words)
    let table: &[(&str, &str, Status, &str)] = &[
        ("good", "enforce-injection", Status::Pass, ""),
        ("good", "pods-proxied", Status::Pass, ""),
        ("good", "skip-inbound-ports", Status::Pass, ""),
        ("good", "default-deny", Status::Pass, ""),
        ("good", "injection-exempt", Status::Pass, ""),
        ("open", "enforce-injection", Status::Fail, "namespace/open"),
        ("open", "pods-proxied", Status::Fail, "open/plain"),
        ("open", "default-deny", Status::Fail, "namespace/open"),
        (
            "skips",
            "skip-inbound-ports",
            Status::Fail,
            "port 8080 (container app)",
        ),
        ("skips", "default-deny", Status::Fail, "namespace/skips"),
        (
            "skips-ns",
            "skip-inbound-ports",
            Status::Fail,
            "(namespace annotation)",
        ),
        ("skips-ns", "default-deny", Status::Pass, ""),
        ("exempt", "pods-proxied", Status::Pass, ""),
        (
            "exempt",
            "injection-exempt",
            Status::Warn,
            "exempt/job: legacy batch job, ticket 12",
        ),
        ("exempt", "default-deny", Status::Fail, ""),
        ("empty", "enforce-injection", Status::Warn, ""),
        ("empty", "pods-proxied", Status::Pass, ""),
    ];
    for (ns, id, want, words) in table {
        let c = status(&got, ns, id);
        assert_eq!(c.status, *want, "{ns} {id}: {c:#?}");
        assert!(
            words.is_empty() || c.offenders.iter().any(|o| o.contains(words)),
            "{ns} {id}: {words:?} in {c:#?}"
        );
        assert_eq!(c.fix.is_some(), c.status != Status::Pass, "{c:#?}");
    }
    // Five checks per judged namespace.
    assert_eq!(got.len(), 6 * 5);
}

#[test]
fn skip_port_values() {
    let cases: &[(&str, &[(u16, u16)])] = &[
        ("25", &[(25, 25)]),
        ("25, 443,4000-4100", &[(25, 25), (443, 443), (4000, 4100)]),
        ("", &[]),
        ("x,80", &[(80, 80)]),
    ];
    for (value, want) in cases {
        assert_eq!(parse_ports(value), *want, "{value:?}");
    }
}

#[test]
fn a_failed_list_is_a_failure_not_a_pass() {
    let e = super::super::observe::call::CallError::new("list Pods", "forbidden");
    let obs = ComplianceObs {
        control_plane: "linkerd".into(),
        namespaces: Ok(vec![ns("a", json!({}), json!({}))]),
        pods: Err(e),
        policies: Ok(vec![]),
    };
    let got = checks(&obs);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, Status::Fail);
    assert!(got[0].detail.contains("forbidden"));
}
