//! The resource side of the controller: the manifests directory feeding
//! the policy and destination indexes, and `--check`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ztmesh_policy::Index;
use ztmesh_resources::load::Severity;
use ztmesh_store::{InForce, ManifestDir};

/// How often the manifests directory is read (changes land within 1s).
pub(crate) const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// The indexes one manifests directory feeds.
#[derive(Clone)]
pub(crate) struct Indexes {
    pub(crate) policy: Arc<Mutex<Index>>,
    pub(crate) outbound: Arc<Mutex<ztmesh_policy::outbound::OutboundIndex>>,
    pub(crate) destination: Arc<Mutex<ztmesh_destination::Index>>,
}

/// Applies one scan to the indexes; logs what it found. True if anything changed.
pub(crate) fn apply_scan(store: &mut ManifestDir, indexes: &Indexes) -> bool {
    let changes = store.scan();
    for d in &changes.diagnostics {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
        }
    }
    for refused in &changes.refused {
        let file = refused.file.display();
        match &refused.in_force {
            InForce::Previous | InForce::Current => {
                tracing::error!(%file, "manifest refused; its last good content stays in force")
            }
            InForce::StateDir(recorded) => tracing::error!(
                %file,
                recorded = %recorded.display(),
                "manifest refused; its last good content from the state directory is in force"
            ),
            InForce::Nothing => tracing::error!(
                %file,
                "manifest refused; it never had good content, so none of its objects are in force (they allow nothing and deny nothing)"
            ),
        }
    }
    for file in &changes.resolved {
        tracing::info!(file = %file.display(), "manifest in force: the other file defining its objects let go of them");
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

/// What the controller says about its manifests: `GET /status` on the viz
/// API, as JSON: `{"manifests": DIR, "state_dir": DIR, "ready": BOOL,
/// "refused": [{"file", "reasons": [..], "in_force": "previous" |
/// "state-dir" | "nothing", "recorded": FILE (state-dir only)}]}`.
/// `ready` turns true once the first scan is in the indexes.
pub(crate) fn status_json(store: &ManifestDir, state_dir: &Path, ready: bool) -> serde_json::Value {
    let refused: Vec<serde_json::Value> = store
        .refused()
        .into_iter()
        .map(|r| {
            let mut v = serde_json::json!({
                "file": r.file.display().to_string(),
                "reasons": r.reasons,
                "in_force": match &r.in_force {
                    InForce::Current | InForce::Previous => "previous",
                    InForce::StateDir(_) => "state-dir",
                    InForce::Nothing => "nothing",
                },
            });
            if let InForce::StateDir(recorded) = &r.in_force {
                v["recorded"] = recorded.display().to_string().into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "manifests": store.dir().display().to_string(),
        "state_dir": state_dir.display().to_string(),
        "ready": ready,
        "refused": refused,
    })
}

/// The thread that reads the manifests directory: parsing never runs on
/// the async runtime's threads, nor under an index lock, so a slow or
/// hostile file cannot stall Certify, Destination or policy.
pub(crate) struct Scanner {
    /// Fires once the first scan is in the indexes, or with the reason the
    /// store could not be opened.
    pub(crate) ready: tokio::sync::oneshot::Receiver<Result<(), ztmesh_store::StateError>>,
    /// Dropping it stops the thread (after the scan under way, if any).
    pub(crate) stop: std::sync::mpsc::Sender<()>,
}

impl Scanner {
    /// Opens the store over `dir` and `state_dir` (reading what is
    /// recorded there), scans now, then every [`SCAN_INTERVAL`] until
    /// stopped; keeps `status` ([`status_json`]) current and logs each
    /// cross-object finding once.
    pub(crate) fn start(
        dir: std::path::PathBuf,
        state_dir: std::path::PathBuf,
        limits: ztmesh_resources::bounds::Limits,
        indexes: Indexes,
        status: Arc<Mutex<serde_json::Value>>,
    ) -> std::io::Result<Self> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("manifest-scanner".into())
            .spawn(move || {
                let mut store = match ManifestDir::with_state_dir(dir, &state_dir, limits) {
                    Ok(store) => store,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut ready_tx = Some(ready_tx);
                let mut reported = std::collections::BTreeSet::new();
                loop {
                    let changed = apply_scan(&mut store, &indexes);
                    if changed || ready_tx.is_some() {
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
                    *status.lock().expect("status lock") = status_json(&store, &state_dir, true);
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                    match stopped.recv_timeout(SCAN_INTERVAL) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(Self { ready, stop })
    }
}

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
