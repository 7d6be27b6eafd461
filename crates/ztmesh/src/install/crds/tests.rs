//! The CRDs tied to ztmesh-resources: every version the loader serves is
//! served (and no other), every object the loader accepts passes its CRD's
//! schema with nothing pruned, and every field of a schema is one the
//! loader reads (the samples, which the loader accepts, use them all).

use super::crd::Version;
use super::*;
use crate::install::schema::Schema;
use std::collections::BTreeSet;
use ztmesh_resources::load::Severity;

const SAMPLES: &str = include_str!("samples.yaml");
const SEEDS: [&str; 4] = [
    include_str!("../../../../../fixtures/seeds/seed002-default-deny.yaml"),
    include_str!("../../../../../fixtures/seeds/seed002-server-authorization.yaml"),
    include_str!("../../../../../fixtures/seeds/seed002-service-profile.yaml"),
    include_str!("../../../../../fixtures/seeds/seed003-booksapp-authors.yaml"),
];

fn version<'a>(crds: &'a [Crd], api_version: &str, kind: &str) -> Option<&'a Version> {
    let (group, name) = api_version.rsplit_once('/')?;
    crds.iter()
        .find(|c| c.group == group && c.kind == kind)?
        .versions
        .iter()
        .find(|v| v.name == name)
}

/// Every document of `text` with a CRD: loads without error and passes
/// its version's schema.
fn check_documents(text: &str, file: &str) -> usize {
    let crds = all(false);
    let loaded = ztmesh_resources::load_str(text, file);
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{file}: {errors:?}");
    let mut checked = 0;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("YAML");
        let (Some(api_version), Some(kind)) =
            (value["apiVersion"].as_str(), value["kind"].as_str())
        else {
            continue;
        };
        let Some(v) = version(&crds, api_version, kind) else {
            continue;
        };
        let mut problems = vec![];
        v.root().check(&value, kind, &mut problems);
        assert!(
            problems.is_empty(),
            "{file}: {api_version} {kind}: {problems:?}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn seeds_and_samples_pass_their_schemas() {
    let mut checked = check_documents(SAMPLES, "samples.yaml");
    assert_eq!(checked, 14, "every sample has a CRD");
    for (i, seed) in SEEDS.iter().enumerate() {
        checked += check_documents(seed, &format!("seed {i}"));
    }
    // The seeds' Server, ServerAuthorization v1beta2, ServiceProfile,
    // HTTPRoute, AuthorizationPolicy and MeshTLSAuthentication.
    assert_eq!(checked, 14 + 7);
}

#[test]
fn served_versions_are_the_loaders() {
    let crds = all(false);
    let candidates = [
        "v1alpha1", "v1alpha2", "v1beta1", "v1beta2", "v1beta3", "v1", "v2",
    ];
    for crd in &crds {
        for candidate in candidates {
            // The smallest object each kind's schema takes; the loader's
            // verdict on its apiVersion is what matters.
            let doc = format!(
                "apiVersion: {}/{candidate}\nkind: {}\nmetadata: {{name: x, namespace: ns}}\nspec: {{}}\n",
                crd.group, crd.kind
            );
            let loaded = ztmesh_resources::load_str(&doc, "version");
            let refused = loaded
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error && d.field.as_deref() == Some("apiVersion"));
            let served = crd.versions.iter().any(|v| v.name == candidate);
            assert_eq!(
                served, !refused,
                "{}/{candidate} {}: CRD serves it: {served}, loader: {:?}",
                crd.group, crd.kind, loaded.diagnostics
            );
        }
    }
}

#[test]
fn one_storage_version_and_deprecations() {
    // (kind, group, storage, deprecated versions)
    let table: &[(&str, &str, &str, &[&str])] = &[
        (
            "Server",
            "policy.linkerd.io",
            "v1beta3",
            &["v1alpha1", "v1beta1"],
        ),
        (
            "ServerAuthorization",
            "policy.linkerd.io",
            "v1beta1",
            &["v1alpha1", "v1beta2"],
        ),
        ("AuthorizationPolicy", "policy.linkerd.io", "v1alpha1", &[]),
        (
            "MeshTLSAuthentication",
            "policy.linkerd.io",
            "v1alpha1",
            &[],
        ),
        (
            "NetworkAuthentication",
            "policy.linkerd.io",
            "v1alpha1",
            &[],
        ),
        ("HTTPRoute", "policy.linkerd.io", "v1beta3", &[]),
        ("HTTPRoute", GATEWAY_GROUP, "v1", &[]),
        ("GRPCRoute", GATEWAY_GROUP, "v1", &["v1alpha2"]),
        ("ServiceProfile", "linkerd.io", "v1alpha2", &[]),
        ("ExternalWorkload", "workload.linkerd.io", "v1beta1", &[]),
    ];
    let crds = all(false);
    assert_eq!(crds.len(), table.len());
    for (kind, group, storage, deprecated) in table {
        let crd = crds
            .iter()
            .find(|c| c.kind == *kind && c.group == *group)
            .unwrap_or_else(|| panic!("{group} {kind} missing"));
        let stored: Vec<_> = crd
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name)
            .collect();
        assert_eq!(stored, [*storage], "{group} {kind}");
        let dep: Vec<_> = crd
            .versions
            .iter()
            .filter(|v| v.deprecation.is_some())
            .map(|v| v.name)
            .collect();
        assert_eq!(dep, *deprecated, "{group} {kind}");
    }
}

#[test]
fn skip_gateway_api_and_object_shape() {
    let names = |skip| -> Vec<String> {
        objects(skip)
            .iter()
            .map(|o| o["metadata"]["name"].as_str().expect("name").to_string())
            .collect()
    };
    let with = names(false);
    let without = names(true);
    assert!(with.contains(&"httproutes.gateway.networking.k8s.io".to_string()));
    assert!(with.contains(&"grpcroutes.gateway.networking.k8s.io".to_string()));
    assert!(with.contains(&"httproutes.policy.linkerd.io".to_string()));
    assert_eq!(with.len(), 10);
    assert_eq!(without.len(), 8);
    assert!(without.iter().all(|n| !n.ends_with(GATEWAY_GROUP)));
    for o in objects(false) {
        let group = o["spec"]["group"].as_str().expect("group");
        let approved = o["metadata"]["annotations"]["api-approved.kubernetes.io"].is_string();
        assert_eq!(approved, group.ends_with(".k8s.io"), "{group}");
        for v in o["spec"]["versions"].as_array().expect("versions") {
            let root = &v["schema"]["openAPIV3Schema"];
            assert_eq!(root["type"], "object");
            assert_eq!(root["required"], serde_json::json!(["spec"]));
        }
    }
}

/// Field paths of a schema, array levels and ServiceProfile's all/any/not
/// nesting collapsed (so nesting depth does not count).
fn schema_paths(s: &Schema, path: &str, out: &mut BTreeSet<String>) {
    match s {
        Schema::Obj { props, .. } => {
            for (name, p) in props {
                if is_nesting(name) {
                    schema_paths(p, path, out);
                } else {
                    let child = format!("{path}.{name}");
                    out.insert(child.clone());
                    schema_paths(p, &child, out);
                }
            }
        }
        Schema::Array(items) => schema_paths(items, path, out),
        _ => {}
    }
}

/// The same paths, of the fields a value uses.
fn value_paths(v: &serde_json::Value, s: &Schema, path: &str, out: &mut BTreeSet<String>) {
    match (v, s) {
        (serde_json::Value::Object(fields), Schema::Obj { props, .. }) => {
            for (name, value) in fields {
                let Some((_, p)) = props.iter().find(|(n, _)| n == name) else {
                    continue;
                };
                if is_nesting(name) {
                    value_paths(value, p, path, out);
                } else {
                    let child = format!("{path}.{name}");
                    out.insert(child.clone());
                    value_paths(value, p, &child, out);
                }
            }
        }
        (serde_json::Value::Array(items), Schema::Array(p)) => {
            for item in items {
                value_paths(item, p, path, out);
            }
        }
        _ => {}
    }
}

fn is_nesting(name: &str) -> bool {
    matches!(name, "all" | "any" | "not")
}

#[test]
fn every_schema_field_is_one_the_loader_reads() {
    let crds = all(false);
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(SAMPLES) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("YAML");
        let (api_version, kind) = (
            value["apiVersion"].as_str().unwrap(),
            value["kind"].as_str().unwrap(),
        );
        let v = version(&crds, api_version, kind).expect("a CRD");
        let mut paths = BTreeSet::new();
        value_paths(&value["spec"], &v.spec, "spec", &mut paths);
        used.extend(paths.into_iter().map(|p| (kind.to_string(), p)));
    }
    for crd in &crds {
        for v in &crd.versions {
            let mut paths = BTreeSet::new();
            schema_paths(&v.spec, "spec", &mut paths);
            for p in paths {
                assert!(
                    used.contains(&(crd.kind.to_string(), p.clone())),
                    "{}/{} {}: {p} is in the schema but no sample (which the loader accepts) uses it",
                    crd.group,
                    v.name,
                    crd.kind
                );
            }
        }
    }
}
