//! One pod template (`metadata` + `spec`, a Pod itself or a workload's
//! `spec.template`): what it says (host network, other sidecars, ports)
//! and the edits injection makes to it and uninjection takes back, in the
//! order Linkerd's patch makes them.

use crate::config::{Config, Settings};
use crate::containers::{self, PodContext};
use crate::names;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The keys from an object to its pod template (`[]`: the object is a Pod).
pub(crate) fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(&["spec", "template"]),
        _ => None,
    }
}

/// The object at `path` below `v`, if every step is an object.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

pub(crate) fn at_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| v.get_mut(k))
}

/// A string map (`labels`, `annotations`) read leniently: non-strings are skipped.
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

fn containers<'a>(spec: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    spec.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Init containers, then containers (Linkerd's order for port lookups).
fn all_containers(spec: &Value) -> impl Iterator<Item = &Value> {
    containers(spec, "initContainers").chain(containers(spec, "containers"))
}

fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn host_network(spec: &Value) -> bool {
    spec.get("hostNetwork").and_then(Value::as_bool) == Some(true)
}

/// A Linkerd or Istio proxy (or its init container) is in the pod.
pub(crate) fn has_sidecar(spec: &Value) -> bool {
    let proxy = all_containers(spec).any(|c| {
        let image = str_field(c, "image");
        let name = str_field(c, "name");
        image.starts_with("cr.l5d.io/linkerd/proxy:")
            || image.starts_with("gcr.io/istio-release/proxyv2:")
            || name == names::PROXY_CONTAINER
            || name == "istio-proxy"
    });
    let init = containers(spec, "initContainers").any(|c| {
        let image = str_field(c, "image");
        let name = str_field(c, "name");
        image.starts_with("cr.l5d.io/linkerd/proxy-init:")
            || image.starts_with("gcr.io/istio-release/proxy_init:")
            || name == names::INIT_CONTAINER
            || name == "istio-init"
    });
    proxy || init
}

fn ports(c: &Value) -> impl Iterator<Item = &Value> {
    c.get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn container_port(p: &Value) -> Option<u16> {
    p.get("containerPort")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

/// A container port uses UDP (Linkerd looks at the app containers only).
pub(crate) fn uses_udp(spec: &Value) -> bool {
    containers(spec, "containers")
        .flat_map(ports)
        .any(|p| str_field(p, "protocol") == "UDP")
}

/// Container ports by name.
pub(crate) fn named_ports(spec: &Value) -> BTreeMap<String, u16> {
    all_containers(spec)
        .flat_map(ports)
        .filter_map(|p| Some((p.get("name")?.as_str()?.to_string(), container_port(p)?)))
        .collect()
}

/// Every container port, in container order (for the opaque-ports default).
pub(crate) fn container_ports(spec: &Value) -> Vec<u16> {
    all_containers(spec)
        .flat_map(ports)
        .filter_map(container_port)
        .collect()
}

/// `LINKERD2_PROXY_INBOUND_PORTS`: container ports and numeric HTTP probe
/// ports, sorted as strings (as Linkerd sorts them).
pub(crate) fn inbound_ports(spec: &Value) -> String {
    let mut set = std::collections::BTreeSet::new();
    for c in all_containers(spec) {
        set.extend(ports(c).filter_map(container_port).map(|p| p.to_string()));
        for probe in ["readinessProbe", "livenessProbe"] {
            if let Some(port) = c
                .get(probe)
                .and_then(|p| p.get("httpGet"))
                .and_then(|h| h.get("port"))
                .and_then(Value::as_u64)
            {
                set.insert(port.to_string());
            }
        }
    }
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// What the proxy borrows from the pod's first container.
fn pod_context(spec: &Value) -> PodContext {
    let first = containers(spec, "containers").next();
    let capabilities = first
        .and_then(|c| c.pointer("/securityContext/capabilities"))
        .map(|caps| {
            let mut m = Map::new();
            for k in ["add", "drop"] {
                if let Some(list) = caps.get(k).and_then(Value::as_array)
                    && !list.is_empty()
                {
                    m.insert(k.into(), Value::Array(list.clone()));
                }
            }
            Value::Object(m)
        });
    let sa_mount = first
        .and_then(|c| c.get("volumeMounts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| str_field(m, "mountPath") == names::SERVICE_ACCOUNT_DIR)
        .map(|m| {
            serde_json::json!({
                "mountPath": names::SERVICE_ACCOUNT_DIR,
                "name": str_field(m, "name"),
                "readOnly": m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
            })
        });
    PodContext {
        capabilities,
        sa_mount,
        inbound_ports: inbound_ports(spec),
    }
}

fn object_entry<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent.is_object() {
        *parent = Value::Object(Map::new());
    }
    let obj = parent.as_object_mut().expect("made an object above");
    let entry = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("made an object above")
}

fn array_entry<'a>(parent: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let entry = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(vec![]));
    if !entry.is_array() {
        *entry = Value::Array(vec![]);
    }
    entry.as_array_mut().expect("made an array above")
}

/// Sets metadata `annotations` and `labels` on the template.
pub(crate) fn set_meta(
    template: &mut Value,
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) {
    let meta = object_entry(template, "metadata");
    for (key, map) in [("annotations", annotations), ("labels", labels)] {
        if map.is_empty() {
            continue;
        }
        let entry = meta
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let target = entry.as_object_mut().expect("made an object above");
        for (k, v) in map {
            target.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

/// Adds the proxy, proxy-init and their volumes to the template's spec.
/// `annotations` are the pod's (after what injection adds), which decide
/// the [`Settings`]; returns the proxy's version (`linkerd.io/proxy-version`).
pub(crate) fn add_proxy(
    template: &mut Value,
    cfg: &Config,
    annotations: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> String {
    let empty = Value::Null;
    let spec_now = template.get("spec").unwrap_or(&empty);
    let settings = Settings::new(cfg, annotations, &named_ports(spec_now), warnings);
    let ctx = pod_context(spec_now);
    let proxy = containers::proxy(cfg, &settings, &ctx);
    let init = containers::proxy_init(cfg, &settings, &ctx);
    let spec = object_entry(template, "spec");
    array_entry(spec, "volumes").extend([
        containers::xtables_volume(),
        containers::identity_volume(),
        containers::token_volume(),
        containers::trust_roots_volume(),
    ]);
    if settings.native_sidecar {
        let inits = array_entry(spec, "initContainers");
        inits.insert(0, init);
        inits.insert(1, proxy);
    } else {
        array_entry(spec, "initContainers").push(init);
        array_entry(spec, "containers").push(proxy);
    }
    settings.version
}

/// Takes Linkerd's containers and volumes out of the spec; whether a
/// proxy and a proxy-init were there.
pub(crate) fn remove_proxy(template: &mut Value) -> (bool, bool) {
    let (mut proxy, mut init) = (false, false);
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return (false, false);
    };
    let mut retain = |key: &str, keep: &mut dyn FnMut(&str) -> bool| {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            let before = list.len();
            list.retain(|v| keep(str_field(v, "name")));
            if list.is_empty() && before > 0 {
                spec.remove(key);
            }
        }
    };
    retain("initContainers", &mut |name| match name {
        names::INIT_CONTAINER => {
            init = true;
            false
        }
        names::PROXY_CONTAINER => {
            proxy = true;
            false
        }
        _ => true,
    });
    retain("containers", &mut |name| {
        let ours = name == names::PROXY_CONTAINER;
        proxy |= ours;
        !ours
    });
    retain("volumes", &mut |name| {
        !matches!(
            name,
            names::IDENTITY_VOLUME
                | names::XTABLES_VOLUME
                | names::TOKEN_VOLUME
                | names::TRUST_ROOTS_VOLUME
        )
    });
    (proxy, init)
}

/// Takes Linkerd's `linkerd.io/` labels and annotations out of `meta`
/// (keeping `linkerd.io/inject: disabled`), unless the object is a
/// control-plane component; whether an annotation went. Maps left empty
/// go, and so does a pod template's metadata left empty (`drop_empty`).
pub(crate) fn strip_meta(holder: &mut Value, drop_empty: bool) -> bool {
    let Some(meta) = holder.get_mut("metadata").and_then(Value::as_object_mut) else {
        return false;
    };
    let labels = string_map(meta.get("labels"));
    if labels.contains_key(names::CONTROL_PLANE_COMPONENT_LABEL) {
        return false;
    }
    let mut removed = false;
    for key in ["annotations", "labels"] {
        let Some(map) = meta.get_mut(key).and_then(Value::as_object_mut) else {
            continue;
        };
        let before = map.len();
        map.retain(|k, v| {
            !k.starts_with(names::PREFIX)
                || (k == names::INJECT && v.as_str() == Some(names::DISABLED))
        });
        if key == "annotations" && map.len() < before {
            removed = true;
        }
        if map.is_empty() && before > 0 {
            meta.remove(key);
        }
    }
    if drop_empty && meta.is_empty() {
        holder
            .as_object_mut()
            .expect("had metadata")
            .remove("metadata");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inbound_ports_include_numeric_probe_ports_sorted_as_strings() {
        let spec = json!({"containers": [{
            "name": "app",
            "ports": [{"containerPort": 8080}, {"containerPort": 10000, "protocol": "UDP"}],
            "readinessProbe": {"httpGet": {"port": 9090}},
            "livenessProbe": {"httpGet": {"port": "http"}},
        }]});
        assert_eq!(inbound_ports(&spec), "10000,8080,9090");
        assert!(uses_udp(&spec));
    }

    #[test]
    fn sidecars_are_recognised_by_name_or_image() {
        for (spec, want) in [
            (json!({"containers": [{"name": "istio-proxy"}]}), true),
            (
                json!({"containers": [{"name": "p", "image": "cr.l5d.io/linkerd/proxy:edge"}]}),
                true,
            ),
            (
                json!({"initContainers": [{"name": "linkerd-init"}], "containers": []}),
                true,
            ),
            (
                json!({"containers": [{"name": "app", "image": "nginx"}]}),
                false,
            ),
        ] {
            assert_eq!(has_sidecar(&spec), want, "{spec}");
        }
    }

    #[test]
    fn strip_meta_keeps_inject_disabled_and_control_plane_objects() {
        let mut t = json!({"metadata": {
            "annotations": {"linkerd.io/inject": "disabled", "linkerd.io/proxy-version": "v"},
            "labels": {"linkerd.io/workload-ns": "x"},
        }});
        assert!(strip_meta(&mut t, true));
        assert_eq!(
            t,
            json!({"metadata": {"annotations": {"linkerd.io/inject": "disabled"}}})
        );
        let mut cp = json!({"metadata": {
            "annotations": {"linkerd.io/created-by": "x"},
            "labels": {"linkerd.io/control-plane-component": "identity"},
        }});
        let before = cp.clone();
        assert!(!strip_meta(&mut cp, true));
        assert_eq!(cp, before);
    }
}
