//! Golden tests: each case runs inject or uninject over an input stream
//! in tests/golden/ and compares the output (then the per-object report
//! lines as `#` comments) with `<case>.out.yaml`. `ZTMESH_BLESS=1`
//! rewrites the expected files instead of failing. Injection is also
//! checked idempotent, uninjection to restore canonical inputs byte for
//! byte, and the webhook's patch to yield inject's own result.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use ztmesh_inject::yaml::{parse_stream, render_stream};
use ztmesh_inject::{
    Config, Outcome, Report, SkipReason, admission_patch, inject_document, inject_warnings,
    uninject_document,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A config whose output does not change with the crate's version.
fn config() -> Config {
    Config {
        version: "test".into(),
        proxy_version: "test".into(),
        trust_anchors_pem: "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n".into(),
        ..Config::default()
    }
}

fn manual() -> Config {
    Config {
        manual: true,
        ..config()
    }
}

#[derive(Clone, Copy)]
enum Op {
    Inject,
    Uninject,
}

fn run(op: Op, docs: &[Value], cfg: &Config) -> (Vec<Value>, Vec<Report>) {
    let mut out = vec![];
    let mut reports = vec![];
    for d in docs {
        let (v, r) = match op {
            Op::Inject => inject_document(d, cfg),
            Op::Uninject => uninject_document(d),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        out.push(v);
        reports.extend(r);
    }
    (out, reports)
}

/// The cases: (expected file, input file, operation, config).
fn cases() -> Vec<(&'static str, &'static str, Op, Config)> {
    let overrides = Config {
        overrides: BTreeMap::from([
            ("config.linkerd.io/opaque-ports".into(), "3306".into()),
            ("config.linkerd.io/proxy-log-level".into(), "debug".into()),
        ]),
        ..config()
    };
    let native = Config {
        native_sidecar: true,
        iptables_mode: ztmesh_inject::IptablesMode::Nft,
        ..manual()
    };
    vec![
        (
            "deployment.annotate",
            "deployment.yaml",
            Op::Inject,
            config(),
        ),
        ("deployment.manual", "deployment.yaml", Op::Inject, manual()),
        ("deployment.native", "deployment.yaml", Op::Inject, native),
        ("workloads.manual", "workloads.yaml", Op::Inject, manual()),
        (
            "annotations.manual",
            "annotations.yaml",
            Op::Inject,
            manual(),
        ),
        ("ingress.manual", "ingress.yaml", Op::Inject, manual()),
        ("ingress.annotate", "ingress.yaml", Op::Inject, config()),
        ("skipped.manual", "skipped.yaml", Op::Inject, manual()),
        (
            "namespace-service.overrides",
            "namespace-service.yaml",
            Op::Inject,
            overrides,
        ),
        (
            "kubectl-list.annotate",
            "kubectl-list.yaml",
            Op::Inject,
            config(),
        ),
        (
            "kubectl-list.manual",
            "kubectl-list.yaml",
            Op::Inject,
            manual(),
        ),
        (
            "workloads.uninject",
            "workloads.manual.out.yaml",
            Op::Uninject,
            config(),
        ),
    ]
}

#[test]
fn golden_outputs() {
    let bless = std::env::var_os("ZTMESH_BLESS").is_some_and(|v| v == "1");
    let mut failed = vec![];
    for (name, input, op, cfg) in cases() {
        let docs = parse_stream(&read(input)).unwrap();
        let (out, reports) = run(op, &docs, &cfg);
        let mut text = render_stream(&out).unwrap();
        if matches!(op, Op::Inject) {
            for w in inject_warnings(&reports) {
                text.push_str(&format!("# {w}\n"));
            }
        }
        for r in &reports {
            text.push_str(&format!("# {r}\n"));
        }
        let file = format!("{name}.out.yaml");
        if bless {
            std::fs::write(dir().join(&file), &text).unwrap();
        } else if read(&file) != text {
            failed.push(file);
        }
    }
    assert!(
        failed.is_empty(),
        "output differs from {failed:?} (ZTMESH_BLESS=1 rewrites them; review the diff)"
    );
}

#[test]
fn injecting_twice_is_injecting_once() {
    for (name, input, op, cfg) in cases() {
        if matches!(op, Op::Uninject) {
            continue;
        }
        let docs = parse_stream(&read(input)).unwrap();
        let (once, _) = run(Op::Inject, &docs, &cfg);
        let (twice, reports) = run(Op::Inject, &once, &cfg);
        assert_eq!(once, twice, "{name}");
        // The second run reports the same outcome, not "already injected".
        let (_, first) = run(Op::Inject, &docs, &cfg);
        assert_eq!(first, reports, "{name}");
    }
}

#[test]
fn uninject_restores_canonical_inputs_byte_for_byte() {
    // Inputs without Linkerd's own metadata (which uninject removes).
    for input in [
        "deployment.yaml",
        "workloads.yaml",
        "skipped.yaml",
        "kubectl-list.yaml",
        "annotations.yaml",
    ] {
        let canonical = render_stream(&parse_stream(&read(input)).unwrap()).unwrap();
        let docs = parse_stream(&canonical).unwrap();
        for cfg in [config(), manual()] {
            let (injected, _) = run(Op::Inject, &docs, &cfg);
            assert_ne!(injected, docs, "{input}: nothing was injected");
            let (back, _) = run(Op::Uninject, &injected, &cfg);
            assert_eq!(render_stream(&back).unwrap(), canonical, "{input}");
        }
    }
}

#[test]
fn uninject_reports_what_it_removed() {
    let docs = parse_stream(&read("deployment.yaml")).unwrap();
    let (injected, _) = run(Op::Inject, &docs, &manual());
    let (_, reports) = run(Op::Uninject, &injected, &config());
    let lines: Vec<String> = reports.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        lines,
        [
            "deployment \"web\" uninjected",
            "service \"web-svc\" skipped",
            "configmap \"web-config\" skipped",
        ]
    );
}

fn apply(object: &Value, patch: &Value) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

fn pod(annotations: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations,
                     "labels": {"app": "web"}},
        "spec": {"serviceAccountName": "web", "containers": [
            {"name": "web", "image": "web:1", "ports": ports},
        ]},
    })
}

/// Drops what the webhook and the CLI set differently: who created the
/// injection and the inject annotation (which `inject --manual` drops).
fn without_provenance(mut v: Value) -> Value {
    let ann = v["metadata"]["annotations"].as_object_mut().unwrap();
    ann.remove("linkerd.io/created-by");
    ann.remove("linkerd.io/inject");
    v
}

#[test]
fn the_webhook_patch_yields_what_inject_gives() {
    let cfg = config();
    let object = pod(
        json!({"linkerd.io/inject": "enabled"}),
        json!([{"containerPort": 8080}]),
    );
    let answer = admission_patch("Pod", &object, &BTreeMap::new(), &cfg).unwrap();
    assert_eq!(answer.report.outcome, Outcome::Injected);
    assert_eq!(answer.report.to_string(), "pod \"web-1\" injected");
    let patched = apply(&object, answer.patch.as_ref().expect("a patch"));
    assert_eq!(
        patched["metadata"]["annotations"]["linkerd.io/created-by"],
        "ztmesh/proxy-injector test"
    );
    let (injected, _) = inject_document(&object, &manual()).unwrap();
    assert_eq!(without_provenance(patched), without_provenance(injected));
}

#[test]
fn the_webhook_follows_the_namespace() {
    let cfg = config();
    let ns = BTreeMap::from([
        ("linkerd.io/inject".to_string(), "enabled".to_string()),
        (
            "config.linkerd.io/proxy-log-level".to_string(),
            "debug".to_string(),
        ),
        ("unrelated".to_string(), "x".to_string()),
    ]);
    let mut object = pod(json!({}), json!([{"containerPort": 3306}]));
    object["metadata"]["labels"]["pod-template-hash"] = "5d9f".into();
    object["metadata"]["ownerReferences"] = json!([{"kind": "ReplicaSet", "name": "web-5d9f"}]);
    let answer = admission_patch("Pod", &object, &ns, &cfg).unwrap();
    let patched = apply(&object, answer.patch.as_ref().expect("a patch"));
    let meta = &patched["metadata"];
    assert_eq!(meta["annotations"]["linkerd.io/inject"], "enabled");
    assert_eq!(
        meta["annotations"]["config.linkerd.io/proxy-log-level"],
        "debug"
    );
    assert_eq!(meta["annotations"].get("unrelated"), None);
    assert_eq!(
        meta["annotations"]["config.linkerd.io/opaque-ports"],
        "3306"
    );
    assert_eq!(meta["labels"]["linkerd.io/proxy-deployment"], "web");
    assert_eq!(meta["labels"]["linkerd.io/workload-ns"], "shop");
    let proxy = &patched["spec"]["containers"][1];
    assert_eq!(proxy["name"], "linkerd-proxy");
    let env = |name: &str| {
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env("LINKERD2_PROXY_LOG").unwrap(),
        "debug,[{headers}]=off,[{request}]=off"
    );
    assert_eq!(
        env("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION").unwrap(),
        "3306"
    );
    // A pod that opts out keeps its spec; it still gets its opaque ports.
    let mut disabled = object.clone();
    disabled["metadata"]["annotations"] = json!({"linkerd.io/inject": "disabled"});
    let answer = admission_patch("Pod", &disabled, &ns, &cfg).unwrap();
    assert_eq!(answer.report.reasons(), [SkipReason::InjectDisabled]);
    assert_eq!(
        answer.patch,
        Some(json!([{"op": "add",
            "path": "/metadata/annotations/config.linkerd.io~1opaque-ports", "value": "3306"}]))
    );
}

#[test]
fn the_webhook_admits_unchanged_what_it_does_not_inject() {
    let cfg = config();
    let enabled = BTreeMap::from([("linkerd.io/inject".to_string(), "enabled".to_string())]);
    let mut host = pod(json!({}), json!([{"containerPort": 8080}]));
    host["spec"]["hostNetwork"] = true.into();
    let cases = [
        ("Pod", host, enabled.clone(), vec![SkipReason::HostNetwork]),
        (
            "Pod",
            pod(json!({}), json!([{"containerPort": 8080}])),
            BTreeMap::new(),
            vec![SkipReason::InjectNotEnabled],
        ),
        (
            "Pod",
            pod(
                json!({"linkerd.io/inject": "yes"}),
                json!([{"containerPort": 8080}]),
            ),
            enabled.clone(),
            vec![SkipReason::InvalidInjectAnnotationWorkload],
        ),
        (
            "ConfigMap",
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
            enabled.clone(),
            vec![SkipReason::UnsupportedResource],
        ),
    ];
    for (kind, object, ns, reasons) in cases {
        let answer = admission_patch(kind, &object, &ns, &cfg).unwrap();
        assert_eq!(answer.patch, None, "{object}");
        assert_eq!(answer.report.reasons(), reasons, "{object}");
    }
    // An injected pod is not injected again.
    let object = pod(json!({"linkerd.io/inject": "enabled"}), json!([]));
    let first = admission_patch("Pod", &object, &BTreeMap::new(), &cfg).unwrap();
    let injected = apply(&object, first.patch.as_ref().unwrap());
    let again = admission_patch("Pod", &injected, &BTreeMap::new(), &cfg).unwrap();
    assert_eq!(again.patch, None);
    assert_eq!(again.report.reasons(), [SkipReason::SidecarExists]);
}

#[test]
fn the_webhook_marks_services_opaque() {
    let cfg = config();
    let svc = json!({"kind": "Service", "metadata": {"name": "db"},
        "spec": {"ports": [{"port": 3306}, {"port": 80, "targetPort": 8080}]}});
    let answer = admission_patch("Service", &svc, &BTreeMap::new(), &cfg).unwrap();
    assert_eq!(answer.report.to_string(), "service \"db\" annotated");
    let patched = apply(&svc, answer.patch.as_ref().unwrap());
    assert_eq!(
        patched["metadata"]["annotations"]["config.linkerd.io/opaque-ports"],
        "3306"
    );
    let web = json!({"kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}});
    let answer = admission_patch("Service", &web, &BTreeMap::new(), &cfg).unwrap();
    assert_eq!(answer.patch, None);
}

#[test]
fn the_webhook_puts_a_native_sidecar_first() {
    let ns = BTreeMap::from([
        ("linkerd.io/inject".to_string(), "enabled".to_string()),
        (
            "config.alpha.linkerd.io/proxy-enable-native-sidecar".to_string(),
            "true".to_string(),
        ),
    ]);
    let mut object = pod(json!({}), json!([{"containerPort": 8080}]));
    object["spec"]["initContainers"] = json!([{"name": "setup", "image": "setup:1"}]);
    let answer = admission_patch("Pod", &object, &ns, &config()).unwrap();
    let patched = apply(&object, answer.patch.as_ref().unwrap());
    let names = |key: &str| -> Vec<String> {
        patched["spec"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("initContainers"),
        ["linkerd-init", "linkerd-proxy", "setup"]
    );
    assert_eq!(names("containers"), ["web"]);
    assert_eq!(
        patched["spec"]["initContainers"][1]["restartPolicy"],
        "Always"
    );
    assert_eq!(patched["spec"]["initContainers"][2]["image"], "setup:1");
}
