//! Last good content across restarts (a new store over the same manifests
//! and state directories), conflicts between files, and files refused
//! before they are parsed.

use std::path::Path;
use ztmesh_store::{InForce, ManifestDir};

/// The MeshTLSAuthentication every scenario is about, allowing `who`.
fn authn(who: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: authn, namespace: n}}\nspec: {{identities: [{who}.n.serviceaccount.identity.linkerd.cluster.local]}}\n"
    )
}

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: s, namespace: n}\nspec: {podSelector: {}, port: 80}\n";

enum Step {
    Write(&'static str, String),
    Remove(&'static str),
    /// A new store over the same directories, as after a restart.
    Restart,
    /// Scans; then whom the MeshTLSAuthentication in force allows (None:
    /// it is absent), and the refused files with what of each is in force.
    Expect(Option<&'static str>, &'static [(&'static str, Refused)]),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Refused {
    Previous,
    FromState,
    Nothing,
}

fn allowed(store: &ManifestDir) -> Option<String> {
    store.resources().find_map(|r| match r {
        ztmesh_resources::Resource::MeshTlsAuthentication(o) => {
            let id = &o.spec.identities.as_ref()?[0];
            Some(id.split('.').next()?.to_string())
        }
        _ => None,
    })
}

fn run(name: &str, steps: Vec<Step>) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("manifests"), tmp.path().join("state"));
    std::fs::create_dir(&dir).unwrap();
    let open = || ManifestDir::with_state_dir(&dir, &state, Default::default()).unwrap();
    let mut store = open();
    // What the indexes hold: the store's changes applied, as the controller does.
    let mut index = std::collections::BTreeMap::new();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Write(file, text) => std::fs::write(dir.join(file), text).unwrap(),
            Step::Remove(file) => std::fs::remove_file(dir.join(file)).unwrap(),
            Step::Restart => {
                store = open();
                index.clear();
            }
            Step::Expect(who, refused) => {
                let changes = store.scan();
                for key in &changes.delete {
                    index.remove(key);
                }
                for r in changes.apply {
                    index.insert(r.key(), r);
                }
                let in_store: std::collections::BTreeSet<_> =
                    store.resources().map(|r| r.key()).collect();
                let in_index: std::collections::BTreeSet<_> = index.keys().cloned().collect();
                assert_eq!(in_index, in_store, "{name} step {i}: the index follows");
                assert_eq!(allowed(&store).as_deref(), who, "{name} step {i}");
                let got: Vec<(String, Refused)> = store
                    .refused()
                    .into_iter()
                    .map(|s| {
                        assert!(!s.reasons.is_empty(), "{name} step {i}: {s:?}");
                        let file = s.file.strip_prefix(&dir).unwrap().display().to_string();
                        let in_force = match s.in_force {
                            InForce::Previous => Refused::Previous,
                            InForce::StateDir(p) => {
                                assert!(p.starts_with(&state), "{p:?}");
                                Refused::FromState
                            }
                            InForce::Nothing => Refused::Nothing,
                            InForce::Current => panic!("{name} step {i}: refused yet current"),
                        };
                        (file, in_force)
                    })
                    .collect();
                let want: Vec<(String, Refused)> =
                    refused.iter().map(|(f, r)| (f.to_string(), *r)).collect();
                assert_eq!(got, want, "{name} step {i}: refused files");
            }
        }
    }
}

#[test]
fn last_good_content_survives_restarts_and_conflicts() {
    use Refused::*;
    use Step::*;
    let bad = || authn("evil").replace("identities:", "colour: red, identities:");
    let scenarios: Vec<(&str, Vec<Step>)> = vec![
        (
            "an unknown field, then a restart: the recorded content stays in force",
            vec![
                Write("authn.yaml", authn("books")),
                Expect(Some("books"), &[]),
                Write("authn.yaml", bad()),
                Expect(Some("books"), &[("authn.yaml", Previous)]),
                Restart,
                Expect(Some("books"), &[("authn.yaml", FromState)]),
                Restart,
                Expect(Some("books"), &[("authn.yaml", FromState)]),
                Write("authn.yaml", authn("webapp")),
                Expect(Some("webapp"), &[]),
                Restart,
                Expect(Some("webapp"), &[]),
            ],
        ),
        (
            "another file redefines it, then a restart: the first file keeps it",
            vec![
                Write("z-authn.yaml", authn("books")),
                Expect(Some("books"), &[]),
                Write("a-evil.yaml", authn("evil")),
                Expect(Some("books"), &[("a-evil.yaml", Nothing)]),
                Restart,
                Expect(Some("books"), &[("a-evil.yaml", Nothing)]),
            ],
        ),
        (
            "both at once at a restart: the recorded owner wins though refused",
            vec![
                Write("z-authn.yaml", authn("books")),
                Expect(Some("books"), &[]),
                Write("z-authn.yaml", bad()),
                Write("a-evil.yaml", authn("evil")),
                Restart,
                Expect(
                    Some("books"),
                    &[("a-evil.yaml", Nothing), ("z-authn.yaml", FromState)],
                ),
            ],
        ),
        (
            "a file that never had good content: nothing of it is in force",
            vec![
                Write("server.yaml", SERVER.into()),
                Write("authn.yaml", bad()),
                Expect(None, &[("authn.yaml", Nothing)]),
                Restart,
                Expect(None, &[("authn.yaml", Nothing)]),
            ],
        ),
        (
            "the conflicting file goes: the other comes into force, no touch needed",
            vec![
                Write("a.yaml", authn("books")),
                Expect(Some("books"), &[]),
                Write("b.yaml", authn("webapp")),
                Expect(Some("books"), &[("b.yaml", Nothing)]),
                Expect(Some("books"), &[("b.yaml", Nothing)]),
                Remove("a.yaml"),
                Expect(Some("webapp"), &[]),
                Restart,
                Expect(Some("webapp"), &[]),
            ],
        ),
        (
            "the other file lets go of the object by an edit",
            vec![
                Write("a.yaml", authn("books")),
                Write("b.yaml", authn("webapp")),
                Expect(Some("books"), &[("b.yaml", Nothing)]),
                Write("a.yaml", SERVER.into()),
                Expect(Some("webapp"), &[]),
            ],
        ),
        (
            "a file deleted while the controller was down does not come back",
            vec![
                Write("authn.yaml", authn("books")),
                Expect(Some("books"), &[]),
                Restart,
                Remove("authn.yaml"),
                Expect(None, &[]),
                Write("authn.yaml", bad()),
                Restart,
                Expect(None, &[("authn.yaml", Nothing)]),
            ],
        ),
    ];
    for (name, steps) in scenarios {
        run(name, steps);
    }
}

#[test]
fn refusals_are_logged_with_what_is_in_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("m"), tmp.path().join("state"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("authn.yaml"), authn("books")).unwrap();
    ManifestDir::with_state_dir(&dir, &state, Default::default())
        .unwrap()
        .scan();
    std::fs::write(dir.join("authn.yaml"), authn("x").replace("spec", "spek")).unwrap();
    let mut store = ManifestDir::with_state_dir(&dir, &state, Default::default()).unwrap();
    let changes = store.scan();
    assert_eq!(changes.apply.len(), 1, "the recorded content is applied");
    assert_eq!(changes.refused.len(), 1);
    let refused = &changes.refused[0];
    assert_eq!(
        refused.in_force,
        InForce::StateDir(state.join("authn.yaml.last-good"))
    );
    assert!(
        refused.reasons[0].contains("authn.yaml document 1 (MeshTLSAuthentication n/authn)"),
        "{:?}",
        refused.reasons
    );
    assert!(store.scan().is_empty(), "reported once");
}

#[test]
fn unusable_recorded_content_is_dropped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("m"), tmp.path().join("state"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(state.join("authn.yaml.last-good"), "kind: [").unwrap();
    std::fs::write(
        dir.join("authn.yaml"),
        authn("books").replace("spec", "spek"),
    )
    .unwrap();
    let mut store = ManifestDir::with_state_dir(&dir, &state, Default::default()).unwrap();
    let changes = store.scan();
    assert!(changes.apply.is_empty());
    let text: Vec<String> = changes.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        text[0].starts_with("warning: ") && text[0].contains("is not usable and is dropped"),
        "{text:?}"
    );
    assert_eq!(store.refused()[0].in_force, InForce::Nothing);
    assert!(!state.join("authn.yaml.last-good").exists());
}

#[test]
fn hostile_files_are_refused_by_name_before_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("server.yaml"), SERVER).unwrap();
    std::fs::write(
        dir.join("deep.yaml"),
        format!("a: {}\n", "[".repeat(400_000)),
    )
    .unwrap();
    std::fs::write(dir.join("big.yaml"), "#".repeat(2_411_725)).unwrap();
    // Both are refused by the bounds checked before parsing (the messages
    // below name the bound), so the scan never hands them to serde_yaml.
    let mut store = ManifestDir::new(dir);
    let changes = store.scan();
    let text: Vec<String> = changes.diagnostics.iter().map(|d| d.to_string()).collect();
    let name = |f: &str| Path::new(dir).join(f).display().to_string();
    assert_eq!(
        text,
        vec![
            format!(
                "error: {}: 2.3 MiB is over the 1 MiB limit",
                name("big.yaml")
            ),
            format!(
                "error: {}: nesting deeper than 100 levels at line 1",
                name("deep.yaml")
            ),
        ]
    );
    assert_eq!(changes.apply.len(), 1, "the good file is in force");
    assert!(store.scan().is_empty(), "reported once");
}

#[test]
fn duplicates_name_the_document_that_holds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = |name: &str| SERVER.replace("name: s", &format!("name: {name}"));
    std::fs::write(
        dir.join("a.yaml"),
        format!("{}---\n{}---\n{}", server("a"), server("b"), server("a")),
    )
    .unwrap();
    std::fs::write(dir.join("c.yaml"), server("c")).unwrap();
    std::fs::write(
        dir.join("d.yaml"),
        format!("{}---\n{}", server("d"), server("c")),
    )
    .unwrap();
    let changes = ManifestDir::new(dir).scan();
    let text: Vec<String> = changes.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        vec![
            format!(
                "error: {}/a.yaml document 3 (Server n/a): defined twice in this file (first in document 1)",
                dir.display()
            ),
            format!(
                "error: {0}/d.yaml document 2 (Server n/c): already defined in {0}/c.yaml; an object may be defined in one file only",
                dir.display()
            ),
        ]
    );
}
