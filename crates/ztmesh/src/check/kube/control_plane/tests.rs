use super::super::observe::call::CallError;
use super::super::observe::control_plane::HookTarget;
use super::*;
use crate::check::Status;
use crate::install::kubernetes::pki::{IdentitySource, material};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use serde_json::json;
use std::time::Duration;

const NAMES: [&str; 2] = [
    "linkerd-proxy-injector.linkerd.svc",
    "linkerd-proxy-injector.linkerd.svc.cluster.local",
];

/// The injector's serving Secret and the CA PEM for its caBundle, as
/// `install --kubernetes` makes them.
fn serving() -> (Secret, Vec<u8>) {
    let trust = ztmesh_identity::TrustDomain::new("linkerd", "cluster.local").unwrap();
    let year = Duration::from_secs(365 * 86400);
    let m = material(
        &IdentitySource::Generate,
        &trust,
        (year, year),
        NAMES.iter().map(|s| s.to_string()).collect(),
        SystemTime::now(),
    )
    .unwrap();
    let mut data = std::collections::BTreeMap::new();
    data.insert(
        "tls.crt".into(),
        ByteString(m.webhook.cert_pem.into_bytes()),
    );
    data.insert(
        "ca.crt".into(),
        ByteString(m.webhook.ca_pem.clone().into_bytes()),
    );
    let secret = Secret {
        data: Some(data),
        ..Default::default()
    };
    (secret, m.webhook.ca_pem.into_bytes())
}

fn hook(ca: Option<Vec<u8>>, target: HookTarget) -> Hook {
    Hook {
        config: format!("mutatingwebhookconfiguration/{INJECTOR_CONFIG}"),
        name: "linkerd-proxy-injector.linkerd.io".into(),
        target,
        ca_bundle: ca,
        failure_policy: Some("Ignore".into()),
    }
}

fn service() -> HookTarget {
    HookTarget::Service {
        namespace: "linkerd".into(),
        name: "linkerd-proxy-injector".into(),
        port: 443,
    }
}

fn deployment(replicas: i32, available: Option<i32>) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "ztmesh-controller"},
        "spec": {"replicas": replicas, "selector": {}, "template": {}},
        "status": {"availableReplicas": available},
    }))
    .unwrap()
}

fn pod(ready: bool, node: Option<&str>, containers: &[&str]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "i"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "ztmesh-controller-abc", "namespace": "linkerd"},
        "spec": {"containers": containers, "nodeName": node},
        "status": {
            "phase": if ready { "Running" } else { "Pending" },
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    }))
    .unwrap()
}

fn obs() -> ControlPlaneObs {
    let (secret, ca) = serving();
    ControlPlaneObs {
        namespace: "linkerd".into(),
        deployments: Ok(vec![deployment(1, Some(1))]),
        pods: Ok(vec![pod(true, Some("node"), &["controller"])]),
        hooks: Ok(vec![hook(Some(ca), service())]),
        serving: Ok(Some(secret)),
        dry_run: Ok(pod(false, None, &["app", PROXY_CONTAINER])),
        trust_roots: Ok(None),
        issuer: Ok(None),
    }
}

fn find<'a>(got: &'a [CheckResult], id: &str) -> &'a CheckResult {
    got.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} in {got:#?}"))
}

#[test]
fn a_healthy_control_plane_passes_its_own_checks() {
    let got = checks(&obs(), SystemTime::now());
    for id in [
        "deployments",
        "controller-pods",
        "injector-reachable",
        "webhook-ca-bundle",
    ] {
        assert_eq!(find(&got, id).status, Status::Pass, "{id}: {got:#?}");
    }
    // The identity group follows, judged separately (here: absent).
    assert_eq!(find(&got, "trust-anchors").status, Status::Fail);
}

#[test]
fn each_failure_is_named() {
    let forbidden = || CallError::new("list", "forbidden (403)");
    let other = {
        let (_, ca) = serving();
        ca
    };
    // (how the observation is spoiled, check id, status, words in its detail or offenders)
    type Spoil = Box<dyn Fn(&mut ControlPlaneObs)>;
    let cases: Vec<(Spoil, &str, Status, &str)> = vec![
        (
            Box::new(|o| o.deployments = Ok(vec![])),
            "deployments",
            Status::Fail,
            "no Deployment in namespace linkerd",
        ),
        (
            Box::new(|o| o.deployments = Ok(vec![deployment(3, Some(1))])),
            "deployments",
            Status::Fail,
            "deployment/ztmesh-controller: 1 of 3 available",
        ),
        (
            Box::new(|o| o.deployments = Ok(vec![deployment(2, None)])),
            "deployments",
            Status::Fail,
            "0 of 2",
        ),
        (
            Box::new(move |o| o.deployments = Err(forbidden())),
            "deployments",
            Status::Fail,
            "forbidden",
        ),
        (
            Box::new(|o| o.pods = Ok(vec![])),
            "controller-pods",
            Status::Fail,
            "no pod labelled",
        ),
        (
            Box::new(|o| o.pods = Ok(vec![pod(false, None, &["controller"])])),
            "controller-pods",
            Status::Fail,
            "phase Pending, not scheduled to a node",
        ),
        (
            Box::new(|o| o.dry_run = Ok(pod(false, None, &["app"]))),
            "injector-reachable",
            Status::Fail,
            "failurePolicy Ignore admitted the pod uninjected",
        ),
        (
            Box::new(|o| {
                o.dry_run = Ok(pod(false, None, &["app"]));
                o.hooks = Ok(vec![]);
            }),
            "injector-reachable",
            Status::Fail,
            "no MutatingWebhookConfiguration",
        ),
        (
            Box::new(|o| {
                o.dry_run = Err(CallError::new(
                    "create Pod",
                    "Internal error occurred: failed calling webhook \"x\": connection refused",
                ))
            }),
            "injector-reachable",
            Status::Fail,
            "failed calling webhook",
        ),
        (
            Box::new(|o| {
                o.dry_run = Err(CallError::new(
                    "create a scratch Namespace",
                    "forbidden (403)",
                ))
            }),
            "injector-reachable",
            Status::Warn,
            "not tested",
        ),
        (
            Box::new(move |o| o.hooks = Ok(vec![hook(Some(other.clone()), service())])),
            "webhook-ca-bundle",
            Status::Fail,
            "caBundle does not verify",
        ),
        (
            Box::new(|o| o.hooks = Ok(vec![hook(None, service())])),
            "webhook-ca-bundle",
            Status::Fail,
            "no caBundle",
        ),
        (
            Box::new(|o| {
                let ca = o.hooks.as_ref().unwrap()[0].ca_bundle.clone();
                o.hooks = Ok(vec![hook(
                    ca,
                    HookTarget::Url("https://10.1.2.3:8443/".into()),
                )]);
            }),
            "webhook-ca-bundle",
            Status::Fail,
            "for 10.1.2.3",
        ),
        (
            Box::new(|o| o.serving = Ok(None)),
            "webhook-ca-bundle",
            Status::Fail,
            "linkerd-proxy-injector-k8s-tls does not exist",
        ),
    ];
    for (i, (spoil, id, want, words)) in cases.into_iter().enumerate() {
        let mut o = obs();
        spoil(&mut o);
        let got = checks(&o, SystemTime::now());
        let c = find(&got, id);
        assert_eq!(c.status, want, "case {i}: {c:#?}");
        assert!(
            c.detail.contains(words) || c.offenders.iter().any(|x| x.contains(words)),
            "case {i}: {words:?} in {c:#?}"
        );
        assert!(c.fix.is_some(), "case {i}: {c:#?}");
    }
}

#[test]
fn a_native_sidecar_counts_as_the_proxy() {
    let sidecar: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "app", "image": "i"}],
            "initContainers": [{"name": PROXY_CONTAINER, "image": "p", "restartPolicy": "Always"}],
        },
    }))
    .unwrap();
    assert!(has_proxy(&sidecar));
    assert!(!has_proxy(&pod(true, None, &["app"])));
}
