//! `manifest`: the YAML manifest loader ([`ztmesh_resources::load_str`]).
//!
//! Input: a file's text (inputs that are not UTF-8 are skipped, as the
//! store reads files as strings). Invariants: every diagnostic names the
//! file and prints, with its document (1-based) or, for a problem of the
//! whole file (document 0), with nothing loaded; loading is deterministic.

use ztmesh_resources::load_str;

const FILE: &str = "fuzz.yaml";

pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = load_str(text, FILE);
    for d in &loaded.diagnostics {
        assert_eq!(d.file, FILE);
        let shown = d.to_string();
        if d.document == 0 {
            // A problem of the file as a whole (too large, too deep): nothing loads.
            assert!(loaded.resources.is_empty(), "{shown}");
            assert!(shown.contains(FILE), "{shown}");
        } else {
            let at = format!("{FILE} document {}", d.document);
            assert!(shown.contains(&at), "{shown}");
        }
    }
    // Compared as text: a resource may hold a float, and NaN != NaN.
    let again = load_str(text, FILE);
    assert_eq!(format!("{again:?}"), format!("{loaded:?}"));
}
