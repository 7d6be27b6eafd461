//! `ztmesh controller --check`: validates a manifests directory without
//! starting anything.

use std::path::Path;
use ztmesh_resources::load::Severity;
use ztmesh_store::ManifestDir;

/// `--check`: validates every manifest, prints each problem, and fails on errors.
pub(crate) fn check(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let mut store = ManifestDir::new(dir);
    let changes = store.scan();
    for d in &changes.diagnostics {
        println!("{d}");
    }
    let errors = changes
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = changes.diagnostics.len() - errors;
    let resources = store.resources().count();
    if errors > 0 {
        anyhow::bail!(
            "{errors} error(s), {warnings} warning(s) in {}",
            dir.display()
        );
    }
    println!(
        "ok: {resources} resource(s) valid, {warnings} warning(s) in {}",
        dir.display()
    );
    Ok(())
}
