//! What the mutating webhook answers for an object under CREATE, as
//! Linkerd's proxy injector decides it: a Pod is injected when its
//! namespace or itself enable it (`linkerd.io/inject: enabled|ingress`)
//! and nothing forbids it; it inherits the namespace's proxy
//! configuration annotations and the default opaque ports it exposes.
//! A Pod or Service that is not injected still gets the opaque-ports
//! annotation. The answer is an RFC 6902 patch (json-patch's diff of the
//! object and its mutation).

use crate::config::Config;
use crate::document::{Error, name};
use crate::names;
use crate::podspec::{self, string_map};
use crate::report::{Outcome, Report, SkipReason};
use crate::trust_root_sha256;
use serde_json::Value;
use std::collections::BTreeMap;

/// The webhook's answer for one object.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionPatch {
    /// A JSONPatch (RFC 6902) array; `None`: admit the object unchanged.
    pub patch: Option<Value>,
    pub report: Report,
}

fn valid_inject(v: Option<&str>) -> bool {
    matches!(
        v,
        None | Some("" | names::ENABLED | names::DISABLED | names::INGRESS)
    )
}

fn enables(v: Option<&str>) -> bool {
    matches!(v, Some(names::ENABLED | names::INGRESS))
}

/// Linkerd's truth table of the namespace's and the pod's annotation.
fn inject_decision(ns: Option<&str>, pod: Option<&str>) -> Option<SkipReason> {
    if !valid_inject(ns) {
        return Some(SkipReason::InvalidInjectAnnotationNamespace);
    }
    if !valid_inject(pod) {
        return Some(SkipReason::InvalidInjectAnnotationWorkload);
    }
    if enables(ns) {
        return (pod == Some(names::DISABLED)).then_some(SkipReason::InjectDisabled);
    }
    (!enables(pod)).then_some(SkipReason::InjectNotEnabled)
}

/// The `linkerd.io/proxy-<kind>` label from the pod's only owner. The
/// Deployment behind a ReplicaSet is read from the ReplicaSet's name and
/// the pod's `pod-template-hash` (Linkerd asks the API server instead).
fn owner_label(pod: &Value) -> Option<(String, String)> {
    let refs = pod.pointer("/metadata/ownerReferences")?.as_array()?;
    let [owner] = refs.as_slice() else {
        return None;
    };
    let kind = owner.get("kind")?.as_str()?;
    let owner_name = owner.get("name")?.as_str()?;
    let (kind, owner_name) = match kind {
        "ReplicaSet" => {
            let hash = pod
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str);
            match hash.and_then(|h| owner_name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) => ("deployment", deployment),
                None => ("replicaset", owner_name),
            }
        }
        "Job" => ("job", owner_name),
        "DaemonSet" => ("daemonset", owner_name),
        "StatefulSet" => ("statefulset", owner_name),
        "ReplicationController" => ("replicationcontroller", owner_name),
        _ => return None,
    };
    Some((format!("linkerd.io/proxy-{kind}"), owner_name.to_string()))
}

/// The default opaque ports among `exposed`, in their order, joined.
fn default_opaque(cfg: &Config, exposed: impl IntoIterator<Item = u16>) -> Option<String> {
    let defaults: Vec<&str> = cfg.opaque_ports.split(',').map(str::trim).collect();
    let ports: Vec<String> = exposed
        .into_iter()
        .map(|p| p.to_string())
        .filter(|p| defaults.contains(&p.as_str()))
        .collect();
    (!ports.is_empty()).then(|| ports.join(","))
}

/// The Service's ports that are opaque by default: a port without a
/// target port that is in the list, or one whose numeric target is.
fn service_ports(svc: &Value, cfg: &Config) -> Option<String> {
    let defaults: Vec<&str> = cfg.opaque_ports.split(',').map(str::trim).collect();
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array)?;
    let mut out = vec![];
    for p in ports {
        let Some(port) = p.get("port").and_then(Value::as_u64) else {
            continue;
        };
        let opaque = match p.get("targetPort") {
            None | Some(Value::Null) => defaults.contains(&port.to_string().as_str()),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => {
                defaults.contains(&port.to_string().as_str())
            }
            Some(Value::Number(n)) => defaults.contains(&n.to_string().as_str()),
            Some(_) => false,
        };
        if opaque {
            out.push(port.to_string());
        }
    }
    (!out.is_empty()).then(|| out.join(","))
}

/// The opaque-ports annotation an object without one gets: the
/// namespace's, else the defaults it exposes.
fn opaque_annotation(
    own: &BTreeMap<String, String>,
    ns: &BTreeMap<String, String>,
    exposed_defaults: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if own.contains_key(names::OPAQUE_PORTS) {
        return None;
    }
    ns.get(names::OPAQUE_PORTS)
        .cloned()
        .or_else(exposed_defaults)
}

fn patch_between(before: &Value, after: &Value) -> Option<Value> {
    let patch = json_patch::diff(before, after);
    (!patch.0.is_empty()).then(|| serde_json::to_value(patch).expect("a patch serializes"))
}

/// The webhook's answer for `object` of `kind` (the AdmissionRequest's
/// `kind.kind`) in a namespace annotated `namespace_annotations`. The
/// pod's namespace is its `metadata.namespace` (set it from the request
/// if the object lacks it).
pub fn admission_patch(
    kind: &str,
    object: &Value,
    namespace_annotations: &BTreeMap<String, String>,
    cfg: &Config,
) -> Result<AdmissionPatch, Error> {
    if !object.is_object() {
        return Err(Error::NotAnObject("not a mapping"));
    }
    let name = name(object);
    let own = string_map(object.pointer("/metadata/annotations"));
    let annotate_only = |ports: Option<String>, outcome: Outcome| {
        let patch = ports.and_then(|ports| {
            let mut after = object.clone();
            let ann = BTreeMap::from([(names::OPAQUE_PORTS.to_string(), ports)]);
            podspec::set_meta(&mut after, &ann, &BTreeMap::new());
            patch_between(object, &after)
        });
        AdmissionPatch {
            patch,
            report: Report::new(kind, &name, outcome),
        }
    };
    match kind {
        "Pod" => {}
        "Service" => {
            let ports =
                opaque_annotation(&own, namespace_annotations, || service_ports(object, cfg));
            let outcome = if ports.is_some() {
                Outcome::Annotated
            } else {
                Outcome::Skipped(vec![SkipReason::UnsupportedResource])
            };
            return Ok(annotate_only(ports, outcome));
        }
        _ => {
            let outcome = Outcome::Skipped(vec![SkipReason::UnsupportedResource]);
            return Ok(annotate_only(None, outcome));
        }
    }
    let empty = Value::Null;
    let spec = object.get("spec").unwrap_or(&empty);
    let mut reasons = vec![];
    if podspec::host_network(spec) {
        reasons.push(SkipReason::HostNetwork);
    }
    if podspec::has_sidecar(spec) {
        reasons.push(SkipReason::SidecarExists);
    }
    let ns_inject = namespace_annotations.get(names::INJECT).map(String::as_str);
    if let Some(reason) = inject_decision(ns_inject, own.get(names::INJECT).map(String::as_str)) {
        reasons.push(reason);
    }
    let udp = podspec::uses_udp(spec);
    if !reasons.is_empty() {
        let ports = opaque_annotation(&own, namespace_annotations, || {
            default_opaque(cfg, podspec::container_ports(spec))
        });
        let mut answer = annotate_only(ports, Outcome::Skipped(reasons));
        answer.report.udp = udp;
        return Ok(answer);
    }
    let mut added = BTreeMap::from([(
        names::CREATED_BY.to_string(),
        format!("ztmesh/proxy-injector {}", cfg.version),
    )]);
    for key in names::INHERITED {
        if let Some(v) = namespace_annotations.get(*key)
            && !own.contains_key(*key)
        {
            added.insert(key.to_string(), v.clone());
        }
    }
    if !own.contains_key(names::OPAQUE_PORTS)
        && !added.contains_key(names::OPAQUE_PORTS)
        && let Some(ports) = default_opaque(cfg, podspec::container_ports(spec))
    {
        added.insert(names::OPAQUE_PORTS.into(), ports);
    }
    let mut effective = own.clone();
    effective.extend(added.clone());
    let mut after = object.clone();
    let mut warnings = vec![];
    let version = podspec::add_proxy(&mut after, cfg, &effective, &mut warnings);
    added.insert(names::PROXY_VERSION.into(), version);
    added.insert(names::TRUST_ROOT_SHA.into(), trust_root_sha256(cfg));
    let mut labels = BTreeMap::from([
        (
            names::CONTROL_PLANE_NS_LABEL.to_string(),
            cfg.control_plane_namespace.clone(),
        ),
        (
            names::WORKLOAD_NS_LABEL.to_string(),
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
    ]);
    labels.extend(owner_label(object));
    podspec::set_meta(&mut after, &added, &labels);
    let mut report = Report::new(kind, &name, Outcome::Injected);
    report.udp = udp;
    report.warnings = warnings;
    Ok(AdmissionPatch {
        patch: patch_between(object, &after),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn linkerds_truth_table() {
        let (e, d, i) = (Some("enabled"), Some("disabled"), Some("ingress"));
        use SkipReason::*;
        let table = [
            (e, e, None),
            (e, None, None),
            (e, d, Some(InjectDisabled)),
            (d, e, None),
            (None, e, None),
            (None, i, None),
            (i, None, None),
            (d, d, Some(InjectNotEnabled)),
            (None, d, Some(InjectNotEnabled)),
            (d, None, Some(InjectNotEnabled)),
            (None, None, Some(InjectNotEnabled)),
            (Some("yes"), e, Some(InvalidInjectAnnotationNamespace)),
            (e, Some("on"), Some(InvalidInjectAnnotationWorkload)),
        ];
        for (ns, pod, want) in table {
            assert_eq!(inject_decision(ns, pod), want, "ns {ns:?} pod {pod:?}");
        }
    }

    #[test]
    fn owners_become_linkerds_labels() {
        let pod = |kind: &str, name: &str, hash: Option<&str>| {
            let mut p = json!({"metadata": {"ownerReferences": [{"kind": kind, "name": name}]}});
            if let Some(h) = hash {
                p["metadata"]["labels"] = json!({"pod-template-hash": h});
            }
            p
        };
        let label = |k: &str, v: &str| Some((format!("linkerd.io/proxy-{k}"), v.to_string()));
        let table = [
            (
                pod("ReplicaSet", "web-5d9f", Some("5d9f")),
                label("deployment", "web"),
            ),
            (pod("ReplicaSet", "web", None), label("replicaset", "web")),
            (pod("StatefulSet", "db", None), label("statefulset", "db")),
            (pod("Job", "once", None), label("job", "once")),
            (pod("Node", "n", None), None),
            (json!({"metadata": {}}), None),
        ];
        for (p, want) in table {
            assert_eq!(owner_label(&p), want, "{p}");
        }
    }

    #[test]
    fn service_ports_follow_their_targets() {
        let svc = json!({"spec": {"ports": [
            {"port": 3306},
            {"port": 80, "targetPort": 5432},
            {"port": 6379, "targetPort": 8080},
            {"port": 25, "targetPort": "smtp"},
        ]}});
        assert_eq!(
            service_ports(&svc, &Config::default()).as_deref(),
            Some("3306,80")
        );
    }
}
