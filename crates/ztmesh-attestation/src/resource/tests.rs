//! Table tests of WorkloadAttestation validation and matching.

use super::*;

const WEB: &str = "apiVersion: ztmesh.io/v1alpha1
kind: WorkloadAttestation
metadata: {name: web}
spec:
  namespace: demo
  serviceAccount: web
  nodes: [node-a]
  selectors: [unix:uid:1000, unix:path:/usr/bin/web]
";

fn load(text: &str) -> Result<Attestations, ResourceError> {
    let mut a = Attestations::default();
    a.add(Path::new("att.yaml"), text)?;
    Ok(a)
}

#[test]
fn validation_names_the_field() {
    // (replace this, with that, in WEB) -> (field, part of the message)
    let table: &[(&str, &str, &str, &str)] = &[
        (
            "ztmesh.io/v1alpha1",
            "v1",
            "apiVersion",
            "expected \"ztmesh.io/v1alpha1\"",
        ),
        (
            "kind: WorkloadAttestation",
            "kind: Pod",
            "kind",
            "expected \"WorkloadAttestation\"",
        ),
        ("{name: web}", "{name: \"\"}", "metadata.name", "is empty"),
        (
            "serviceAccount: web",
            "serviceAcount: web",
            "spec.serviceAcount",
            "unknown field",
        ),
        (
            "namespace: demo",
            "namespace: Demo",
            "spec",
            "namespace/serviceAccount",
        ),
        ("[node-a]", "[]", "spec.nodes", "is empty"),
        ("[node-a]", "[node-a, \"\"]", "spec.nodes[1]", "is empty"),
        (
            "[unix:uid:1000, unix:path:/usr/bin/web]",
            "[]",
            "spec.selectors",
            "would match every local process",
        ),
        (
            "[unix:uid:1000, unix:path:/usr/bin/web]",
            "[unix:uid:1000, unix:path:web]",
            "spec.selectors[1]",
            "must be absolute",
        ),
        (
            "[unix:uid:1000, ",
            "[k8s:ns:x, ",
            "spec.selectors[0]",
            "is not one of",
        ),
        (
            "nodes: [node-a]",
            "nodes: node-a",
            "spec.nodes",
            "invalid type",
        ),
    ];
    for (from, to, field, message) in table {
        assert!(WEB.contains(from), "{from}");
        let text = WEB.replace(from, to);
        match load(&text) {
            Err(ResourceError::Invalid {
                path,
                document,
                field: f,
                message: m,
            }) => {
                assert_eq!(path, Path::new("att.yaml"));
                assert_eq!(document, 1);
                assert_eq!(&f, field, "{to}: {m}");
                assert!(m.contains(message), "{to}: {m:?} lacks {message:?}");
            }
            other => panic!("{to}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn second_document_and_duplicates() {
    let two = format!("{WEB}---\n{}", WEB.replace("unix:uid:1000", "unix:uid:x"));
    match load(&two) {
        Err(ResourceError::Invalid {
            document, field, ..
        }) => {
            assert_eq!((document, field.as_str()), (2, "spec.selectors[0]"));
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let dup = format!("{WEB}---\n{WEB}");
    assert!(
        matches!(load(&dup), Err(ResourceError::Duplicate { ref name, .. }) if name == "web"),
        "duplicate name refused"
    );
    assert_eq!(
        load(&format!("{WEB}---\n")).map(|a| a.entries.len()).ok(),
        Some(1)
    );
}

fn id(ns: &str, sa: &str) -> WorkloadIdentity {
    WorkloadIdentity {
        namespace: ns.into(),
        service_account: sa.into(),
    }
}

#[test]
fn identities_and_nodes() {
    let text = format!(
        "{WEB}---\n{}---\n{}",
        WEB.replace("name: web", "name: any-root")
            .replace("serviceAccount: web", "serviceAccount: root")
            .replace("[node-a]", "[\"*\"]")
            .replace("[unix:uid:1000, unix:path:/usr/bin/web]", "[unix:uid:0]"),
        WEB.replace("name: web", "name: web-b")
            .replace("[node-a]", "[node-b]")
    );
    let a = load(&text).expect("valid");
    let web = Caller {
        uid: 1000,
        exe: Some("/usr/bin/web".into()),
        ..Caller::default()
    };
    let other_exe = Caller {
        exe: Some("/usr/bin/sh".into()),
        ..web.clone()
    };
    let root = Caller::default();
    // (node, caller) -> identities
    let table: &[(&str, &Caller, &[WorkloadIdentity])] = &[
        ("node-a", &web, &[id("demo", "web")]),
        ("node-b", &web, &[id("demo", "web")]),
        ("node-c", &web, &[]),
        ("node-a", &other_exe, &[]),
        ("node-a", &root, &[id("demo", "root")]),
        ("node-z", &root, &[id("demo", "root")]),
    ];
    for (node, caller, want) in table {
        assert_eq!(a.identities_for(node, caller), *want, "{node} {caller:?}");
    }
    // (node, identity) -> may have
    let table: &[(&str, WorkloadIdentity, bool)] = &[
        ("node-a", id("demo", "web"), true),
        ("node-b", id("demo", "web"), true),
        ("node-c", id("demo", "web"), false),
        ("node-c", id("demo", "root"), true),
        ("node-a", id("other", "web"), false),
    ];
    for (node, identity, want) in table {
        assert_eq!(a.node_may_have(node, identity), *want, "{node} {identity}");
    }
}

#[test]
fn load_directory_and_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), WEB).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
    let a = Attestations::load(dir.path()).expect("valid dir");
    assert_eq!(a.entries.len(), 1);
    let bad = dir.path().join("b.yml");
    std::fs::write(
        &bad,
        WEB.replace("name: web", "name: w2")
            .replace("v1alpha1", "v2"),
    )
    .expect("write");
    let err = Attestations::load(dir.path()).expect_err("b.yml is invalid");
    assert!(
        err.to_string().starts_with(&bad.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("apiVersion"), "{err}");
    let missing = Attestations::load(&dir.path().join("nope.yaml")).expect_err("missing");
    assert!(matches!(missing, ResourceError::Read { .. }), "{missing}");
}
