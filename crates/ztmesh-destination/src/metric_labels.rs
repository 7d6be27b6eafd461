//! The metric labels Destination gives each endpoint, as Linkerd's
//! destination controller does: the proxy puts them on its outbound
//! series with a `dst_` prefix (`dst_pod`, `dst_deployment`, ...).
//!
//! Per address: `pod`, the owner's kind as the key and its name as the
//! value (`deployment`, `statefulset`, `daemonset`, `replicaset`,
//! `k8s_job`, ...; a ReplicaSet named `<deployment>-<pod-template-hash>`
//! counts as its Deployment), `serviceaccount`, `control_plane_ns` and
//! `pod_template_hash` when the pod carries those labels, and `zone`
//! (always, empty when unknown). ExternalWorkloads give
//! `external_workload`. Per set (the Service): `namespace`, `service`.

use std::collections::BTreeMap;
use ztmesh_resources::Pod;

/// Linkerd's label naming a meshed pod's control plane.
const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
/// The label a Deployment's ReplicaSets put on their pods.
const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A pod's metric labels (its namespace included, so a pod's address
/// resolved on its own carries it too).
pub(crate) fn pod(ns: &str, name: &str, sa: &str, pod: &Pod) -> BTreeMap<String, String> {
    let meta = &pod.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let hash = labels.get(POD_TEMPLATE_HASH_LABEL);
    let mut out = BTreeMap::from([
        ("namespace".to_string(), ns.to_string()),
        ("pod".to_string(), name.to_string()),
        ("serviceaccount".to_string(), sa.to_string()),
        ("zone".to_string(), String::new()),
    ]);
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(owner) = owner {
        let kind = owner.kind.to_lowercase();
        let deployment = (kind == "replicaset")
            .then(|| hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))))
            .flatten();
        let (key, value) = match (kind.as_str(), deployment) {
            (_, Some(d)) => ("deployment".to_string(), d.to_string()),
            ("job", _) => ("k8s_job".to_string(), owner.name.clone()),
            _ => (kind, owner.name.clone()),
        };
        out.insert(key, value);
    }
    if let Some(cp) = labels.get(CONTROL_PLANE_NS_LABEL) {
        out.insert("control_plane_ns".into(), cp.clone());
    }
    if let Some(h) = hash {
        out.insert("pod_template_hash".into(), h.clone());
    }
    out
}

/// An ExternalWorkload's metric labels.
pub(crate) fn external_workload(ns: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("namespace".to_string(), ns.to_string()),
        ("external_workload".to_string(), name.to_string()),
        ("zone".to_string(), String::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with(labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> Pod {
        let mut p = Pod::default();
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p.metadata.owner_references = owner.map(|(kind, name)| {
            vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    kind: kind.into(),
                    name: name.into(),
                    controller: Some(true),
                    ..Default::default()
                },
            ]
        });
        p
    }

    #[test]
    fn pod_labels_as_linkerd_names_them() {
        let base = [
            ("namespace", "booksapp"),
            ("pod", "authors-1"),
            ("serviceaccount", "authors"),
            ("zone", ""),
        ];
        let cases: [(Pod, &[(&str, &str)]); 5] = [
            // No owner: the pod alone.
            (pod_with(&[], None), &[]),
            // A Deployment's pod: its ReplicaSet's name less the hash.
            (
                pod_with(
                    &[
                        ("pod-template-hash", "5d9c8"),
                        ("linkerd.io/control-plane-ns", "linkerd"),
                    ],
                    Some(("ReplicaSet", "authors-5d9c8")),
                ),
                &[
                    ("deployment", "authors"),
                    ("pod_template_hash", "5d9c8"),
                    ("control_plane_ns", "linkerd"),
                ],
            ),
            // A bare ReplicaSet (its name does not end with the hash).
            (
                pod_with(&[], Some(("ReplicaSet", "authors-rs"))),
                &[("replicaset", "authors-rs")],
            ),
            (
                pod_with(&[], Some(("StatefulSet", "authors"))),
                &[("statefulset", "authors")],
            ),
            (
                pod_with(&[], Some(("Job", "migrate"))),
                &[("k8s_job", "migrate")],
            ),
        ];
        for (p, extra) in cases {
            let want: BTreeMap<String, String> = base
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                pod("booksapp", "authors-1", "authors", &p),
                want,
                "{extra:?}"
            );
        }
    }
}
