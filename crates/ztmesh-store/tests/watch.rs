//! Changes reach a store's caller through the directory's watch: each edit
//! (in the directory or below it) wakes the caller, and the scan it runs
//! then sees the edit. Waits are bounded; nothing sleeps.

use std::sync::mpsc;
use std::time::Duration;
use ztmesh_store::ManifestDir;
use ztmesh_store::watch::{Scope, watch};

const A: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: a, namespace: n}\nspec: {podSelector: {}, port: 80}\n";
const B: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: b, namespace: n}\nspec: {podSelector: {}, port: 81}\n";

/// Waits (up to 10s) for the watch to report a change.
fn changed(rx: &mpsc::Receiver<()>, what: &str) {
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no change reported for {what} within 10s: {e}"));
    // One burst may be reported more than once; the scan covers them all.
    while rx.try_recv().is_ok() {}
}

fn applied(store: &mut ManifestDir) -> Vec<String> {
    store
        .scan()
        .apply
        .iter()
        .map(|r| r.key().to_string())
        .collect()
}

#[test]
fn an_edit_is_picked_up_through_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let mut store = ManifestDir::new(dir.path());
    assert!(applied(&mut store).is_empty());

    let (tx, rx) = mpsc::channel();
    let _watch = watch(dir.path(), Scope::Tree, move || {
        let _ = tx.send(());
    })
    .expect("inotify is available here");

    std::fs::write(dir.path().join("a.yaml"), A).unwrap();
    changed(&rx, "a new file");
    assert_eq!(applied(&mut store), ["Server n/a"]);

    // Below the directory too.
    std::fs::write(dir.path().join("sub/b.yaml"), B).unwrap();
    changed(&rx, "a file in a subdirectory");
    assert_eq!(applied(&mut store), ["Server n/b"]);

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    changed(&rx, "a removed file");
    let c = store.scan();
    assert_eq!(
        c.delete.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        ["Server n/a"]
    );
}

#[test]
fn a_missing_directory_cannot_be_watched() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = watch(&missing, Scope::Tree, || {}).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
