//! The resource side of the controller: the manifests directory feeding
//! the policy and destination indexes, and `--check`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ztmesh_policy::Index;
use ztmesh_resources::load::Severity;
use ztmesh_store::ManifestDir;

/// How often the manifests directory is read (changes land within 1s).
pub const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// The indexes one manifests directory feeds.
#[derive(Clone)]
pub struct Indexes {
    pub policy: Arc<Mutex<Index>>,
    pub outbound: Arc<Mutex<ztmesh_policy::outbound::OutboundIndex>>,
    pub destination: Arc<Mutex<ztmesh_destination::Index>>,
}

/// Applies one scan to the indexes; logs what it found. True if anything changed.
pub fn apply_scan(store: &mut ManifestDir, indexes: &Indexes) -> bool {
    let changes = store.scan();
    for d in &changes.diagnostics {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
        }
    }
    for refused in &changes.refused {
        tracing::error!(file = %refused.file.display(), "manifest refused; its previous content stays in force");
    }
    if changes.apply.is_empty() && changes.delete.is_empty() {
        return false;
    }
    let (applied, deleted) = (changes.apply.len(), changes.delete.len());
    let mut policy = indexes.policy.lock().expect("policy index lock");
    let mut outbound = indexes.outbound.lock().expect("outbound index lock");
    let mut destination = indexes.destination.lock().expect("destination index lock");
    for key in &changes.delete {
        policy.delete(key);
        outbound.delete(key);
        destination.delete(key);
    }
    for resource in changes.apply {
        outbound.apply(&resource);
        destination.apply(resource.clone());
        policy.apply(resource);
    }
    tracing::info!(applied, deleted, dir = %store.dir().display(), "manifests applied");
    true
}

/// Watches the directory forever; logs each cross-object finding once.
pub async fn watch_manifests(mut store: ManifestDir, indexes: Indexes) {
    let mut tick = tokio::time::interval(SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = std::collections::BTreeSet::new();
    loop {
        tick.tick().await;
        if apply_scan(&mut store, &indexes) {
            let findings = ztmesh_policy::references::findings(
                &indexes.policy.lock().expect("policy index lock"),
            );
            for f in &findings {
                if !reported.contains(f) {
                    tracing::warn!("{f}");
                }
            }
            reported = findings.into_iter().collect();
        }
    }
}

/// `--check`: validates every manifest, prints each problem, and fails on errors.
pub fn check(dir: &Path) -> anyhow::Result<()> {
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
