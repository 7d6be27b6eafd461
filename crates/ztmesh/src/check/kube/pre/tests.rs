use super::super::observe::call::CallError;
use super::*;
use crate::check::Status;
use k8s_openapi::apimachinery::pkg::version::Info;
use serde_json::json;

fn info(major: &str, minor: &str) -> Info {
    Info {
        major: major.into(),
        minor: minor.into(),
        git_version: format!("v{major}.{minor}"),
        ..Default::default()
    }
}

fn obs(version: Result<Info, CallError>, allowed: impl Fn(&Access) -> bool) -> PreObs {
    let access = needed("linkerd")
        .all()
        .into_iter()
        .map(|a| AccessAnswer {
            answer: Ok((allowed(&a), String::new())),
            access: a,
        })
        .collect();
    PreObs {
        server: "https://127.0.0.1:6443/".into(),
        version,
        access,
        crds: Ok(Vec::new()),
    }
}

fn access(verb: &str, group: &str, resource: &str, ns: Option<&str>) -> Access {
    Access {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        namespace: ns.map(String::from),
    }
}

#[test]
fn the_install_needs_its_objects_and_its_roles_grants() {
    let n = needed("mesh");
    for want in [
        access("create", "", "namespaces", None),
        access("create", "apps", "deployments", Some("mesh")),
        access("create", "policy", "poddisruptionbudgets", Some("mesh")),
        access("create", "", "secrets", Some("mesh")),
        access("create", "rbac.authorization.k8s.io", "clusterroles", None),
        access(
            "create",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            None,
        ),
    ] {
        assert!(n.creates.contains(&want), "{want} in {:#?}", n.creates);
    }
    for want in [
        access("list", "", "pods", None),
        access("create", "authentication.k8s.io", "tokenreviews", None),
        access("update", "coordination.k8s.io", "leases", Some("mesh")),
    ] {
        assert!(n.grants.contains(&want), "{want} in {:#?}", n.grants);
    }
    let all = n.all();
    assert!(all.len() < n.creates.len() + n.grants.len() + 1);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
}

#[test]
fn versions() {
    // (major, minor, status)
    let cases = [
        ("1", "28", Status::Pass),
        ("1", "30+", Status::Pass),
        ("1", "27", Status::Fail),
        ("1", "19", Status::Fail),
        ("2", "0", Status::Pass),
        ("", "", Status::Warn),
    ];
    for (major, minor, want) in cases {
        let got = server(&obs(Ok(info(major, minor)), |_| true));
        assert_eq!(got[0].status, Status::Pass, "{got:#?}");
        assert_eq!(got[1].id, "kubernetes-version");
        assert_eq!(got[1].status, want, "{major}.{minor}: {got:#?}");
    }
}

#[test]
fn an_unreachable_api_server_is_one_failure() {
    let o = obs(
        Err(CallError::new("GET /version", "connection refused")),
        |_| true,
    );
    let got = checks(&o, &needed("linkerd"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (got[0].id.as_str(), got[0].status),
        ("api-server", Status::Fail)
    );
    assert!(got[0].detail.contains("connection refused"));
    assert!(got[0].fix.as_deref().unwrap().contains("--kubeconfig"));
}

#[test]
fn rbac_names_what_is_denied() {
    let n = needed("linkerd");
    // (who may do what, status of the three RBAC checks, offender words)
    type Case = (fn(&Access) -> bool, [Status; 3], &'static str);
    let cases: [Case; 4] = [
        (|_| true, [Status::Pass; 3], ""),
        (
            |a| a.namespace.is_some(),
            [Status::Fail, Status::Pass, Status::Fail],
            "create namespaces (cluster-wide): denied",
        ),
        (
            |a| a.namespace.is_none(),
            [Status::Pass, Status::Fail, Status::Fail],
            "create deployments.apps in linkerd: denied",
        ),
        (
            |a| a.resource != "tokenreviews",
            [Status::Pass, Status::Pass, Status::Fail],
            "create tokenreviews.authentication.k8s.io (cluster-wide): denied",
        ),
    ];
    for (i, (allowed, want, words)) in cases.into_iter().enumerate() {
        let got = checks(&obs(Ok(info("1", "28")), allowed), &n);
        let statuses: Vec<Status> = ["rbac-cluster", "rbac-namespaced", "rbac-grants"]
            .iter()
            .map(|id| got.iter().find(|c| c.id == *id).unwrap().status)
            .collect();
        assert_eq!(statuses, want, "case {i}: {got:#?}");
        assert!(
            words.is_empty() || got.iter().flat_map(|c| &c.offenders).any(|o| o == words),
            "case {i}: {words:?} in {got:#?}"
        );
    }
}

#[test]
fn crds_absent_compatible_or_not() {
    let ours = crate::install::crds::all(false);
    let first = &ours[0];
    let name = format!("{}.{}", first.plural, first.group);
    let stored = |versions: &[&str]| -> CustomResourceDefinition {
        let mut v = first.to_json();
        v["status"] = json!({"storedVersions": versions, "acceptedNames": {"kind": first.kind, "plural": first.plural}});
        serde_json::from_value(v).unwrap()
    };
    let current = first.versions.iter().find(|v| v.storage).unwrap().name;
    // (the cluster's CRDs, status, offender words)
    let cases: Vec<(
        Result<Vec<CustomResourceDefinition>, CallError>,
        Status,
        String,
    )> = vec![
        (Ok(vec![]), Status::Pass, String::new()),
        (Ok(vec![stored(&[current])]), Status::Pass, String::new()),
        (
            Ok(vec![stored(&[current, "v0alpha9"])]),
            Status::Fail,
            format!("{name}: stored at v0alpha9"),
        ),
        (
            Err(CallError::new(
                "list CustomResourceDefinitions",
                "forbidden",
            )),
            Status::Fail,
            String::new(),
        ),
    ];
    for (i, (cluster, want, words)) in cases.into_iter().enumerate() {
        let got = crds(&cluster, &ours);
        assert_eq!(got.status, want, "case {i}: {got:#?}");
        assert!(
            words.is_empty() || got.offenders.iter().any(|o| o.contains(&words)),
            "case {i}: {got:#?}"
        );
        assert_eq!(got.fix.is_some(), want != Status::Pass);
    }
}
