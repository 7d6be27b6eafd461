//! `inject` and `uninject` over one document, as Linkerd's CLI does them:
//! a `List` item by item; workloads (their pod template) injected after
//! a silent uninject, so injecting twice is injecting once; Namespaces
//! annotated `linkerd.io/inject: enabled`; Services annotated only with
//! an opaque-ports override; every other kind passed through.

use crate::config::Config;
use crate::names;
use crate::podspec::{self, at, at_mut, string_map};
use crate::report::{Outcome, Report, SkipReason};
use crate::trust_root_sha256;
use serde_json::Value;
use std::collections::BTreeMap;

/// A document that cannot be read as a Kubernetes object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("a document must be a mapping (a Kubernetes object), not {0}")]
    NotAnObject(&'static str),
    #[error("List: `items` must be a sequence")]
    ListItems,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Applies `f` to the object, or to each item of a `List`.
fn each_object(
    doc: &Value,
    f: &mut dyn FnMut(&Value) -> (Value, Report),
) -> Result<(Value, Vec<Report>), Error> {
    if doc.is_null() {
        return Ok((Value::Null, vec![]));
    }
    if !doc.is_object() {
        return Err(Error::NotAnObject(type_name(doc)));
    }
    if doc.get("kind").and_then(Value::as_str) != Some("List") {
        let (out, report) = f(doc);
        return Ok((out, vec![report]));
    }
    let mut out = doc.clone();
    let Some(items) = out.get_mut("items") else {
        return Ok((out, vec![]));
    };
    if items.is_null() {
        return Ok((out, vec![]));
    }
    let items = items.as_array_mut().ok_or(Error::ListItems)?;
    let mut reports = vec![];
    for item in items.iter_mut() {
        if !item.is_object() {
            return Err(Error::NotAnObject(type_name(item)));
        }
        let (new, report) = f(item);
        *item = new;
        reports.push(report);
    }
    Ok((out, reports))
}

fn kind(obj: &Value) -> Option<&str> {
    obj.get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
}

/// The object's name; a pod without one yet goes by its `generateName`.
pub(crate) fn name(obj: &Value) -> String {
    let meta = obj.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    get("name")
        .filter(|n| !n.is_empty())
        .or_else(|| get("generateName"))
        .unwrap_or_default()
        .to_string()
}

fn namespace(obj: &Value) -> String {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Injects one document (an object or a `List`): see the crate's docs.
pub fn inject_document(doc: &Value, cfg: &Config) -> Result<(Value, Vec<Report>), Error> {
    each_object(doc, &mut |obj| inject_object(obj, cfg))
}

/// Uninjects one document (an object or a `List`).
pub fn uninject_document(doc: &Value) -> Result<(Value, Vec<Report>), Error> {
    each_object(doc, &mut uninject_object)
}

fn missing_kind() -> Report {
    Report::new("", "", Outcome::Skipped(vec![SkipReason::MissingKind]))
}

fn set_annotations(obj: &mut Value, annotations: &BTreeMap<String, String>) {
    podspec::set_meta(obj, annotations, &BTreeMap::new());
}

fn inject_object(obj: &Value, cfg: &Config) -> (Value, Report) {
    let Some(kind) = kind(obj).map(str::to_string) else {
        return (obj.clone(), missing_kind());
    };
    // A workload's own `linkerd.io/inject: ingress` survives the silent
    // uninject (Linkerd's CLI turns it into `enabled` unless --ingress).
    let own_ingress = podspec::template_path(&kind)
        .and_then(|path| at(obj, path))
        .and_then(|t| t.pointer("/metadata/annotations/linkerd.io~1inject"))
        .and_then(Value::as_str)
        == Some(names::INGRESS);
    let (mut out, _) = uninject_object(obj);
    let name = name(&out);
    match kind.as_str() {
        "Namespace" => {
            let mut ann = BTreeMap::from([(names::INJECT.to_string(), names::ENABLED.to_string())]);
            ann.extend(cfg.overrides.clone());
            set_annotations(&mut out, &ann);
            return (out, Report::new(&kind, &name, Outcome::Annotated));
        }
        "Service" => {
            return match cfg.overrides.get(names::OPAQUE_PORTS) {
                Some(ports) => {
                    let ann = BTreeMap::from([(names::OPAQUE_PORTS.to_string(), ports.clone())]);
                    set_annotations(&mut out, &ann);
                    (out, Report::new(&kind, &name, Outcome::Annotated))
                }
                None => {
                    let skipped = Outcome::Skipped(vec![SkipReason::UnsupportedResource]);
                    (out, Report::new(&kind, &name, skipped))
                }
            };
        }
        _ => {}
    }
    let unsupported = || {
        let outcome = Outcome::Skipped(vec![SkipReason::UnsupportedResource]);
        (obj.clone(), Report::new(&kind, &name, outcome))
    };
    let Some(path) = podspec::template_path(&kind) else {
        return unsupported();
    };
    let Some(template) = at(&out, path).filter(|t| t.is_object()) else {
        return unsupported();
    };
    let empty = Value::Null;
    let spec = template.get("spec").unwrap_or(&empty);
    let pod_annotations = string_map(template.pointer("/metadata/annotations"));
    let mut reasons = vec![];
    if podspec::host_network(spec) {
        reasons.push(SkipReason::HostNetwork);
    }
    if podspec::has_sidecar(spec) {
        reasons.push(SkipReason::SidecarExists);
    }
    if pod_annotations.get(names::INJECT).map(String::as_str) == Some(names::DISABLED) {
        reasons.push(SkipReason::InjectDisabled);
    }
    let udp = podspec::uses_udp(spec);
    if !reasons.is_empty() {
        let mut report = Report::new(&kind, &name, Outcome::Skipped(reasons));
        report.udp = udp;
        return (out, report);
    }
    let mut added = cfg.overrides.clone();
    if own_ingress {
        added
            .entry(names::INJECT.to_string())
            .or_insert_with(|| names::INGRESS.to_string());
    }
    let mut labels = BTreeMap::new();
    let mut warnings = vec![];
    let ns = namespace(&out);
    let template = at_mut(&mut out, path).expect("found above");
    if cfg.manual {
        added.insert(
            names::CREATED_BY.into(),
            format!("ztmesh/cli {}", cfg.version),
        );
        let mut effective = pod_annotations.clone();
        effective.extend(added.clone());
        let version = podspec::add_proxy(template, cfg, &effective, &mut warnings);
        added.insert(names::PROXY_VERSION.into(), version);
        added.insert(names::TRUST_ROOT_SHA.into(), trust_root_sha256(cfg));
        labels.insert(
            names::CONTROL_PLANE_NS_LABEL.to_string(),
            cfg.control_plane_namespace.clone(),
        );
        labels.insert(names::WORKLOAD_NS_LABEL.to_string(), ns);
        if kind != "Pod" {
            labels.insert(
                format!("linkerd.io/proxy-{}", kind.to_ascii_lowercase()),
                name.clone(),
            );
        }
    } else if added.get(names::INJECT).map(String::as_str) != Some(names::INGRESS) {
        added.insert(names::INJECT.into(), names::ENABLED.into());
    }
    podspec::set_meta(template, &added, &labels);
    let mut report = Report::new(&kind, &name, Outcome::Injected);
    report.udp = udp;
    report.warnings = warnings;
    (out, report)
}

fn uninject_object(obj: &Value) -> (Value, Report) {
    let Some(kind) = kind(obj).map(str::to_string) else {
        return (obj.clone(), missing_kind());
    };
    let name = name(obj);
    let mut out = obj.clone();
    let removed = match kind.as_str() {
        "Namespace" | "Service" => podspec::strip_meta(&mut out, false),
        _ => match podspec::template_path(&kind) {
            Some(path) if at(&out, path).is_some_and(Value::is_object) => {
                let template = at_mut(&mut out, path).expect("checked above");
                let (proxy, init) = podspec::remove_proxy(template);
                let pod_meta = podspec::strip_meta(template, !path.is_empty());
                let top_meta = !path.is_empty() && podspec::strip_meta(&mut out, false);
                proxy || init || pod_meta || top_meta
            }
            _ => {
                let outcome = Outcome::Skipped(vec![SkipReason::UnsupportedResource]);
                return (out, Report::new(&kind, &name, outcome));
            }
        },
    };
    let outcome = if removed {
        Outcome::Uninjected
    } else {
        Outcome::Skipped(vec![SkipReason::NotInjected])
    };
    (out, Report::new(&kind, &name, outcome))
}
