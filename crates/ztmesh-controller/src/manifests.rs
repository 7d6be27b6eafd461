//! The resource side of the controller: the manifests directory feeding
//! the policy, outbound and destination indexes ([`Scanner`], on a thread
//! of its own), and the status the viz API reports ([`status_json`]).

use std::path::Path;
use std::sync::{Arc, Mutex};
use ztmesh_policy::Index;
use ztmesh_resources::load::Severity;
use ztmesh_store::watch::POLL_FALLBACK;
use ztmesh_store::{InForce, ManifestDir};

/// The indexes one manifests directory feeds.
#[derive(Clone)]
pub(crate) struct Indexes {
    pub(crate) policy: Arc<Mutex<Index>>,
    pub(crate) outbound: Arc<Mutex<ztmesh_policy::outbound::OutboundIndex>>,
    pub(crate) destination: Arc<Mutex<ztmesh_destination::Index>>,
    pub(crate) federation: crate::federation::Sources,
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
        indexes.federation.delete(key);
    }
    for resource in changes.apply {
        indexes.federation.apply(&resource);
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

/// What wakes the scanner thread.
enum Wake {
    /// Something changed under the manifests directory.
    Changed,
    Stop,
}

/// The thread that reads the manifests directory: parsing never runs on
/// the async runtime's threads, nor under an index lock, so a slow or
/// hostile file cannot stall Certify, Destination or policy.
pub(crate) struct Scanner {
    /// Fires once the first scan is in the indexes, or with the reason the
    /// store could not be opened.
    pub(crate) ready: tokio::sync::oneshot::Receiver<Result<(), ztmesh_store::StateError>>,
    /// Dropping it stops the thread (after the scan under way, if any).
    pub(crate) stop: StopScanner,
}

/// How often the scanner reads the directory even though its watch
/// reported nothing: a safety net for events a watch cannot see (the
/// directory itself replaced between two checks).
const RESCAN: std::time::Duration = std::time::Duration::from_secs(10);

/// The manifests directory's watch and the directory it was set up on.
struct DirWatch {
    _watch: ztmesh_store::watch::Watch,
    identity: Option<DirIdentity>,
}

/// Which directory a path names: its inode and its birth time (a removed
/// directory's inode number is often reused at once by the next one made).
type DirIdentity = (u64, std::time::SystemTime);

impl DirWatch {
    /// Watches `dir`, waking the scanner on each change; `None` (logged
    /// when `log`) when no watch can be set up: the scanner then polls.
    fn start(
        dir: &std::path::Path,
        wake: &std::sync::mpsc::Sender<Wake>,
        log: bool,
    ) -> Option<Self> {
        let changed = wake.clone();
        match ztmesh_store::watch::watch(dir, ztmesh_store::watch::Scope::Tree, move || {
            let _ = changed.send(Wake::Changed);
        }) {
            Ok(watch) => Some(Self {
                _watch: watch,
                identity: identity(dir),
            }),
            Err(error) => {
                if log {
                    tracing::warn!(%error, "reading the manifests every {}ms instead", POLL_FALLBACK.as_millis());
                }
                None
            }
        }
    }

    /// Whether `dir` is now another directory than the one watched (or
    /// the file system cannot tell: then it is watched anew, to be safe).
    fn replaced(&self, dir: &std::path::Path) -> bool {
        self.identity.is_none() || identity(dir) != self.identity
    }
}

fn identity(dir: &std::path::Path) -> Option<DirIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    Some((meta.ino(), meta.created().ok()?))
}

/// Stops the scanner thread when dropped.
pub(crate) struct StopScanner(std::sync::mpsc::Sender<Wake>);

impl Drop for StopScanner {
    fn drop(&mut self) {
        let _ = self.0.send(Wake::Stop);
    }
}

impl Scanner {
    /// Opens the store over `dir` and `state_dir` (reading what is
    /// recorded there), scans now, then whenever the directory's watch
    /// reports a change ([`ztmesh_store::watch`]; without one, every
    /// [`POLL_FALLBACK`]) until stopped; keeps `status` ([`status_json`])
    /// current and logs each cross-object finding once.
    pub(crate) fn start(
        dir: std::path::PathBuf,
        state_dir: std::path::PathBuf,
        limits: ztmesh_resources::bounds::Limits,
        indexes: Indexes,
        status: Arc<Mutex<serde_json::Value>>,
    ) -> std::io::Result<Self> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (wake, woken) = std::sync::mpsc::channel::<Wake>();
        // Set up before the first scan, so no change after it is missed.
        let mut watched = DirWatch::start(&dir, &wake, true);
        let rewatch = wake.clone();
        std::thread::Builder::new()
            .name("manifest-scanner".into())
            .spawn(move || {
                let mut store = match ManifestDir::with_state_dir(dir.clone(), &state_dir, limits) {
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
                    // A directory removed and made again is one the old
                    // watch does not see: watch the new one.
                    if watched.as_ref().is_none_or(|w| w.replaced(&dir)) {
                        watched = DirWatch::start(&dir, &rewatch, watched.is_some());
                    }
                    let every = match &watched {
                        Some(_) => RESCAN,
                        None => POLL_FALLBACK,
                    };
                    let next = match woken.recv_timeout(every) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(Wake::Changed),
                        other => other.map_err(|_| ()),
                    };
                    if !matches!(next, Ok(Wake::Changed)) {
                        return;
                    }
                    // One scan covers every change queued so far.
                    loop {
                        match woken.try_recv() {
                            Ok(Wake::Changed) => {}
                            Ok(Wake::Stop) => return,
                            Err(_) => break,
                        }
                    }
                }
            })?;
        Ok(Self {
            ready,
            stop: StopScanner(wake),
        })
    }
}
