//! `manifest`: the YAML manifest loader ([`ztmesh_resources::load_str`]).
//!
//! Input: a file's text (inputs that are not UTF-8 are skipped, as the
//! store reads files as strings). Invariants: every diagnostic names the
//! file and a document (1-based) and prints; loading is deterministic.

use ztmesh_resources::load_str;

const FILE: &str = "fuzz.yaml";

pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = load_str(text, FILE);
    for d in &loaded.diagnostics {
        assert_eq!(d.file, FILE);
        assert!(d.document >= 1, "{d:?}");
        let shown = d.to_string();
        assert!(
            shown.contains(&format!("{FILE} document {}", d.document)),
            "{shown}"
        );
    }
    // Compared as text: a resource may hold a float, and NaN != NaN.
    let again = load_str(text, FILE);
    assert_eq!(format!("{again:?}"), format!("{loaded:?}"));
}
