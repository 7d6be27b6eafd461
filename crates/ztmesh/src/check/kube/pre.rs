//! `check --kubernetes --pre`: can the control plane be installed here?
//! The API server answers (its version), that version is supported
//! ([`MIN_MINOR`]), RBAC allows creating every object `ztmesh install
//! --kubernetes` prints and granting the permissions its roles hold
//! ([`needed`], asked by SelfSubjectAccessReview), and the CRDs `ztmesh
//! install --crds` prints are absent or present at versions it can apply
//! over ([`crds`]). Pure over [`PreObs`].

use super::observe::call::CallError;
use crate::check::result::{CheckResult, Group};
use crate::install::crds::Crd;
use crate::install::kubernetes::{Options, objects, pki};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::version::Info;
use serde_json::Value;

/// One access the install needs: a verb on a resource, in a namespace
/// or cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Access {
    pub(crate) verb: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {}{group} in {ns}", self.verb, self.resource),
            None => write!(f, "{} {}{group} (cluster-wide)", self.verb, self.resource),
        }
    }
}

/// What the API server answered for one access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessAnswer {
    pub(crate) access: Access,
    /// Allowed or not, with the authorizer's reason.
    pub(crate) answer: Result<(bool, String), CallError>,
}

/// `--pre`'s observation.
#[derive(Clone, Debug)]
pub(crate) struct PreObs {
    pub(crate) server: String,
    pub(crate) version: Result<Info, CallError>,
    pub(crate) access: Vec<AccessAnswer>,
    pub(crate) crds: Result<Vec<CustomResourceDefinition>, CallError>,
}

/// The oldest Kubernetes minor version (1.x) supported.
pub(crate) const MIN_MINOR: u32 = 28;

/// The objects `install --kubernetes --ha` prints into `namespace`
/// (the PEM left empty: only kinds and rules matter here).
fn install_objects(namespace: &str) -> Vec<Value> {
    let opts = Options {
        namespace: namespace.into(),
        trust_domain: "cluster.local".into(),
        cluster_domain: "cluster.local".into(),
        image: "ztmesh".into(),
        ha: true,
        webhook_url: None,
    };
    let material = pki::Material {
        anchors_pem: String::new(),
        issuer: Some((String::new(), String::new())),
        webhook: pki::WebhookTls {
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
        },
    };
    objects(&opts, &material)
}

/// A kind's resource name (`NetworkPolicy` -> `networkpolicies`).
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

/// What the install needs: `create` of each object it prints
/// (cluster-scoped or in its namespace), and every permission its
/// ClusterRole and Role grant (RBAC refuses to grant what the granter
/// does not hold).
#[derive(Debug, Default)]
pub(crate) struct Needed {
    pub(crate) creates: Vec<Access>,
    pub(crate) grants: Vec<Access>,
}

impl Needed {
    /// Every access, once (what is asked).
    pub(crate) fn all(&self) -> Vec<Access> {
        let mut all: Vec<Access> = self.creates.iter().chain(&self.grants).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

pub(crate) fn needed(namespace: &str) -> Needed {
    let mut out = Needed::default();
    for o in install_objects(namespace) {
        let api_version = o["apiVersion"].as_str().unwrap_or_default();
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        let kind = o["kind"].as_str().unwrap_or_default();
        let scope = o["metadata"]["namespace"].as_str().map(String::from);
        out.creates.push(Access {
            verb: "create".into(),
            group,
            resource: plural(kind),
            namespace: scope.clone(),
        });
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        for rule in o["rules"].as_array().into_iter().flatten() {
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for v in strings(&rule["verbs"]) {
                        out.grants.push(Access {
                            verb: v,
                            group: g.clone(),
                            resource: r.clone(),
                            namespace: scope.clone(),
                        });
                    }
                }
            }
        }
    }
    for list in [&mut out.creates, &mut out.grants] {
        list.sort();
        list.dedup();
    }
    out
}

/// The API server answers, at a supported version (every mode).
pub(crate) fn server(obs: &PreObs) -> Vec<CheckResult> {
    let mut out = vec![reachable(obs)];
    out.extend(version(obs));
    out
}

/// `--pre`: [`server`], then RBAC and the CRDs.
pub(crate) fn checks(obs: &PreObs, needed: &Needed) -> Vec<CheckResult> {
    let mut out = server(obs);
    if obs.version.is_err() {
        return out;
    }
    out.extend(rbac(obs, needed));
    out.push(crds(&obs.crds, &crate::install::crds::all(false)));
    out
}

fn reachable(obs: &PreObs) -> CheckResult {
    let (id, title) = ("api-server", "API server reachable");
    match &obs.version {
        Ok(v) => CheckResult::pass(
            Group::KubernetesApi,
            id,
            title,
            format!("{} answered {}", obs.server, v.git_version),
        ),
        Err(e) => CheckResult::fail(
            Group::KubernetesApi,
            id,
            title,
            format!("{}: {e}", obs.server),
            "check the kubeconfig (--kubeconfig, --context) and that the API server is up",
        ),
    }
}

fn version(obs: &PreObs) -> Option<CheckResult> {
    let v = obs.version.as_ref().ok()?;
    let (id, title) = ("kubernetes-version", "Kubernetes version supported");
    let number = |s: &str| -> Option<u32> {
        s.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()
    };
    let evidence = [format!(
        "major {:?}, minor {:?}, gitVersion {}",
        v.major, v.minor, v.git_version
    )];
    Some(
        match (number(&v.major), number(&v.minor)) {
            (Some(1), Some(minor)) if minor >= MIN_MINOR => CheckResult::pass(
                Group::KubernetesApi,
                id,
                title,
                format!("1.{minor} (at least 1.{MIN_MINOR})"),
            ),
            (Some(major), Some(minor)) if major > 1 => {
                CheckResult::pass(Group::KubernetesApi, id, title, format!("{major}.{minor}"))
            }
            (Some(major), Some(minor)) => CheckResult::fail(
                Group::KubernetesApi,
                id,
                title,
                format!("{major}.{minor} is older than 1.{MIN_MINOR}"),
                format!("upgrade the cluster to Kubernetes 1.{MIN_MINOR} or later"),
            ),
            _ => CheckResult::warn(
                Group::KubernetesApi,
                id,
                title,
                format!("unreadable version {}", v.git_version),
                format!("make sure the cluster runs Kubernetes 1.{MIN_MINOR} or later"),
            ),
        }
        .evidence(evidence),
    )
}

/// Three lines: the cluster-scoped objects, the namespaced ones, and the
/// permissions the roles grant.
fn rbac(obs: &PreObs, needed: &Needed) -> Vec<CheckResult> {
    let cluster: Vec<&Access> = needed
        .creates
        .iter()
        .filter(|a| a.namespace.is_none())
        .collect();
    let namespaced: Vec<&Access> = needed
        .creates
        .iter()
        .filter(|a| a.namespace.is_some())
        .collect();
    let grants: Vec<&Access> = needed.grants.iter().collect();
    let parts = [
        (
            "rbac-cluster",
            "can create the cluster-scoped objects",
            cluster,
        ),
        (
            "rbac-namespaced",
            "can create the control plane's objects",
            namespaced,
        ),
        (
            "rbac-grants",
            "can grant the controller's permissions",
            grants,
        ),
    ];
    parts
        .into_iter()
        .map(|(id, title, wanted)| {
            let mut denied = Vec::new();
            for a in &wanted {
                match obs
                    .access
                    .iter()
                    .find(|x| &x.access == *a)
                    .map(|x| &x.answer)
                {
                    Some(Ok((true, _))) => {}
                    Some(Ok((false, reason))) if reason.is_empty() => {
                        denied.push(format!("{a}: denied"))
                    }
                    Some(Ok((false, reason))) => denied.push(format!("{a}: denied ({reason})")),
                    Some(Err(e)) => denied.push(format!("{a}: not answered: {e}")),
                    None => denied.push(format!("{a}: not asked")),
                }
            }
            let evidence: Vec<String> = wanted
                .iter()
                .map(|a| format!("SelfSubjectAccessReview: {a}"))
                .collect();
            if denied.is_empty() {
                CheckResult::pass(
                    Group::Pre,
                    id,
                    title,
                    format!("all {} allowed", wanted.len()),
                )
            } else {
                CheckResult::fail(
                    Group::Pre,
                    id,
                    title,
                    format!("{} of {} denied", denied.len(), wanted.len()),
                    "install as a cluster administrator (or bind the listed verbs to your user)",
                )
                .offenders(denied)
            }
            .evidence(evidence)
        })
        .collect()
}

/// The CRDs: absent (the install adds them), or present with every
/// version the cluster has stored still among those `install --crds`
/// prints (else applying it is refused).
pub(crate) fn crds(
    observed: &Result<Vec<CustomResourceDefinition>, CallError>,
    ours: &[Crd],
) -> CheckResult {
    let (id, title) = ("crds", "CRDs absent or compatible");
    let cluster = match observed {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::fail(
                Group::Pre,
                id,
                title,
                e.to_string(),
                "allow listing customresourcedefinitions (apiextensions.k8s.io)",
            );
        }
    };
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    let mut present = 0;
    for crd in ours {
        let name = format!("{}.{}", crd.plural, crd.group);
        let versions: Vec<&str> = crd.versions.iter().map(|v| v.name).collect();
        let Some(c) = cluster
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
        else {
            evidence.push(format!("{name}: absent (install --crds adds it)"));
            continue;
        };
        present += 1;
        let served: Vec<&str> = c
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.as_str())
            .collect();
        let storage = c
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map_or("?", |v| v.name.as_str());
        let stored: Vec<String> = c
            .status
            .as_ref()
            .and_then(|s| s.stored_versions.clone())
            .unwrap_or_default();
        evidence.push(format!(
            "{name}: served {}, storage {storage}, stored {}; ztmesh serves {}",
            served.join(","),
            stored.join(","),
            versions.join(",")
        ));
        let dropped: Vec<&String> = stored
            .iter()
            .filter(|s| !versions.contains(&s.as_str()))
            .collect();
        if !dropped.is_empty() {
            offenders.push(format!(
                "{name}: stored at {} which ztmesh does not serve: applying install --crds would be refused",
                dropped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
            ));
        }
    }
    let out = if offenders.is_empty() {
        CheckResult::pass(
            Group::Pre,
            id,
            title,
            format!(
                "{present} of {} present at compatible versions, {} absent",
                ours.len(),
                ours.len() - present
            ),
        )
    } else {
        CheckResult::fail(
            Group::Pre,
            id,
            title,
            format!("{} CRD(s) stored at versions ztmesh does not serve", offenders.len()),
            "migrate the stored objects to a version ztmesh serves (or remove those CRDs), then install --crds",
        )
        .offenders(offenders)
    };
    out.evidence(evidence)
}

#[cfg(test)]
mod tests;
