//! The manifest directory across edits: adds, changes, deletes, bad files.

use ztmesh_store::ManifestDir;

const A: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: a, namespace: n}\nspec: {podSelector: {}, port: 80}\n";
const B: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: b, namespace: n}\nspec: {podSelector: {}, port: 81}\n";

fn keys(changes: &ztmesh_store::Changes) -> (Vec<String>, Vec<String>) {
    (
        changes.apply.iter().map(|r| r.key().to_string()).collect(),
        changes.delete.iter().map(|k| k.to_string()).collect(),
    )
}

#[test]
fn follows_edits_and_keeps_the_last_good_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, format!("{A}---\n{B}")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let mut store = ManifestDir::new(dir.path());

    let c = store.scan();
    assert_eq!(
        keys(&c),
        (vec!["Server n/a".into(), "Server n/b".into()], vec![])
    );
    assert!(store.scan().is_empty(), "nothing changed");

    // b removed from the file: deleted.
    std::fs::write(&file, A).unwrap();
    let c = store.scan();
    assert_eq!(
        keys(&c),
        (vec!["Server n/a".into()], vec!["Server n/b".into()])
    );

    // A bad edit: reported once, nothing applied or deleted, a stays.
    std::fs::write(
        &file,
        format!("{A}---\n{}", B.replace("port: 81", "port: 81, colour: red")),
    )
    .unwrap();
    let c = store.scan();
    assert!(c.has_errors());
    assert_eq!(keys(&c), (vec![], vec![]));
    let refused: Vec<_> = c.refused.iter().map(|r| &r.file).collect();
    assert_eq!(refused, vec![&file]);
    let msg = c.diagnostics[0].to_string();
    assert!(
        msg.contains("policy.yaml document 2 (Server n/b) spec.colour: unknown field `colour`"),
        "{msg}"
    );
    assert!(
        store.scan().is_empty(),
        "the same bad content is not reported again"
    );
    assert_eq!(store.resources().count(), 1);

    // Fixed: applied.
    std::fs::write(&file, format!("{A}---\n{B}")).unwrap();
    assert_eq!(keys(&store.scan()).0.len(), 2);

    // Another file defining the same object is refused.
    let dup = dir.path().join("sub");
    std::fs::create_dir(&dup).unwrap();
    std::fs::write(dup.join("dup.yml"), B).unwrap();
    let c = store.scan();
    assert!(
        c.diagnostics[0].message.contains("already defined in"),
        "{}",
        c.diagnostics[0]
    );
    assert_eq!(keys(&c), (vec![], vec![]));
    std::fs::remove_file(dup.join("dup.yml")).unwrap();

    // The file goes: its objects go.
    std::fs::remove_file(&file).unwrap();
    let (applied, mut deleted) = keys(&store.scan());
    deleted.sort();
    assert_eq!(
        (applied, deleted),
        (
            vec![],
            vec!["Server n/a".to_string(), "Server n/b".to_string()]
        )
    );
}
