//! Watching files for changes: inotify (through `notify`, debounced), so
//! a change is read once the writes that make it have settled, instead of
//! reading everything on a timer.
//!
//! [`watch`] calls its callback after each burst of changes under a path.
//! When the watch cannot be set up (no inotify: too many watches, an
//! unsupported file system), it fails and the caller falls back to
//! polling at [`POLL_FALLBACK`]; the controller does so for the manifests
//! directory and for the issuer.

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a burst of events must be quiet before the callback runs.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// How often a caller without a watch reads the files instead.
pub const POLL_FALLBACK: Duration = Duration::from_millis(500);

/// A watch that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {} for changes: {source}", path.display())]
pub struct WatchError {
    path: PathBuf,
    source: notify_debouncer_mini::notify::Error,
}

/// What under the path is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The directory and everything below it (the manifests).
    Tree,
    /// The directory's own entries only (the issuer's files: a Kubernetes
    /// secret volume swaps its `..data` link there).
    Dir,
}

/// A running watch; dropping it stops the watch.
pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Calls `on_change` (on the watcher's thread) after each burst of changes
/// under `path` (within `scope`); a watch error (e.g. events lost to a full
/// queue) counts as a change, so the caller reads everything again.
pub fn watch(
    path: &Path,
    scope: Scope,
    mut on_change: impl FnMut() + Send + 'static,
) -> Result<Watch, WatchError> {
    let err = |source| WatchError {
        path: path.into(),
        source,
    };
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Err(error) = &result {
            tracing::warn!(%error, "file watch error; reading everything again");
        }
        on_change();
    })
    .map_err(err)?;
    debouncer
        .watcher()
        .watch(
            path,
            match scope {
                Scope::Tree => RecursiveMode::Recursive,
                Scope::Dir => RecursiveMode::NonRecursive,
            },
        )
        .map_err(err)?;
    Ok(Watch {
        _debouncer: debouncer,
    })
}
