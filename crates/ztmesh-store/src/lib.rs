//! The local resource store: every `*.yaml` / `*.yml` file under a
//! directory, read as multi-document manifests.
//!
//! [`ManifestDir::scan`] compares the files with what it saw last and
//! returns a [`Changes`]: resources to apply, keys to delete, and the
//! diagnostics of every file that changed. A file is all or nothing: if it
//! has any error (too large or too deeply nested, bad YAML, an unknown
//! field, an object another file already defines), it is refused and its
//! last good content stays in force; a file that never had good content
//! has none of its objects in force. A file refused only because another
//! file defines the same object is tried again at every scan, so it comes
//! into force once the other file lets go of the object.
//!
//! With a state directory ([`ManifestDir::with_state_dir`]), the last good
//! content of every file is also recorded on disk ([`state`]), and a new
//! store over the same directories (a restart) starts from it: a file
//! refused at start-up keeps the content recorded before, and it owns its
//! objects against any other file that redefines them.
//!
//! The caller runs `scan` when [`watch`] reports a change under the
//! directory (or every [`watch::POLL_FALLBACK`] where no watch can be set
//! up) and applies the changes to its indexes. The first scan applies
//! everything in force.

#![forbid(unsafe_code)]

mod state;
pub mod watch;

pub use state::StateError;

use state::StateDir;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use ztmesh_resources::bounds::{BoundsError, Limits};
use ztmesh_resources::load::{Diagnostic, ResourceKey, Severity};
use ztmesh_resources::{Loaded, Resource, load_str_with};

pub struct ManifestDir {
    dir: PathBuf,
    limits: Limits,
    state: Option<StateDir>,
    files: BTreeMap<PathBuf, FileState>,
    /// Which file's in-force content defines each object.
    owners: BTreeMap<ResourceKey, PathBuf>,
    scanned: bool,
    /// Problems found in the state directory, reported by the first scan.
    pending: Vec<Diagnostic>,
}

struct FileState {
    /// What was read last; None when restored from the state directory.
    seen: Option<Seen>,
    /// The resources in force.
    good: Vec<Resource>,
    in_force: InForce,
    refusal: Option<Refusal>,
}

/// A file's content as read, to tell whether it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Bytes(Vec<u8>),
    /// Over the size limit: not read, known by its size and time.
    Oversized {
        len: u64,
        modified: Option<std::time::SystemTime>,
    },
}

struct Refusal {
    reasons: Vec<String>,
    /// The file's own content when its only problem is another file
    /// defining the same objects: tried again at every scan.
    conflicted: Option<(Loaded, Vec<u8>)>,
}

/// What of a file is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InForce {
    /// Its content as it is on disk.
    Current,
    /// Its last good content, read earlier by this process.
    Previous,
    /// Its last good content recorded in the state directory, here.
    StateDir(PathBuf),
    /// Nothing: it never had good content, so none of its objects exist
    /// (they allow nothing and deny nothing).
    Nothing,
}

/// A refused file: why, and what of it is in force instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStatus {
    pub file: PathBuf,
    /// Its errors, as diagnostics print them.
    pub reasons: Vec<String>,
    pub in_force: InForce,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Changes {
    pub apply: Vec<Resource>,
    pub delete: Vec<ResourceKey>,
    /// Diagnostics of files that changed, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Files whose content was refused by this scan.
    pub refused: Vec<FileStatus>,
    /// Files refused for a conflict that went away: now in force.
    pub resolved: Vec<PathBuf>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty()
            && self.delete.is_empty()
            && self.diagnostics.is_empty()
            && self.refused.is_empty()
            && self.resolved.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

impl ManifestDir {
    /// A store that keeps last good content in memory only (`--check`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            limits: Limits::default(),
            state: None,
            files: BTreeMap::new(),
            owners: BTreeMap::new(),
            scanned: false,
            pending: Vec::new(),
        }
    }

    /// A store that records each file's last good content in `state_dir`
    /// (created 0700 if need be) and starts from what is recorded there.
    pub fn with_state_dir(
        dir: impl Into<PathBuf>,
        state_dir: &Path,
        limits: Limits,
    ) -> Result<Self, StateError> {
        let mut store = Self::new(dir).with_limits(limits);
        let state = StateDir::open(state_dir)?;
        for entry in state.entries()? {
            let name = entry.recorded.display().to_string();
            let loaded = match std::str::from_utf8(&entry.contents) {
                Ok(text) => load_str_with(text, &name, &store.limits),
                Err(_) => not_text(&name),
            };
            let path = store.dir.join(&entry.relative);
            let mut problems: Vec<Diagnostic> = loaded.errors().cloned().collect();
            problems.extend(store.conflicts(&path, &loaded));
            if problems.is_empty() {
                store.own(&path, &loaded.resources);
                store.files.insert(
                    path,
                    FileState {
                        seen: None,
                        good: loaded.resources,
                        in_force: InForce::StateDir(entry.recorded),
                        refusal: None,
                    },
                );
                continue;
            }
            for mut d in problems {
                d.severity = Severity::Warning;
                d.message = format!(
                    "{}; the recorded last good content of {} is not usable and is dropped",
                    d.message,
                    path.display()
                );
                store.pending.push(d);
            }
            let _ = state.forget(&entry.relative);
        }
        store.state = Some(state);
        Ok(store)
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every resource currently in force.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.files.values().flat_map(|f| f.good.iter())
    }

    /// Every file refused now, with its reasons and what is in force.
    pub fn refused(&self) -> Vec<FileStatus> {
        self.files.keys().filter_map(|p| self.status(p)).collect()
    }

    fn status(&self, path: &Path) -> Option<FileStatus> {
        let state = self.files.get(path)?;
        let refusal = state.refusal.as_ref()?;
        Some(FileStatus {
            file: path.into(),
            reasons: refusal.reasons.clone(),
            in_force: state.in_force.clone(),
        })
    }

    /// Reads the directory and returns what changed since the last scan.
    pub fn scan(&mut self) -> Changes {
        let mut changes = Changes {
            diagnostics: std::mem::take(&mut self.pending),
            ..Default::default()
        };
        let paths = match manifest_files(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                changes.diagnostics.push(file_error(
                    &self.dir,
                    format!("cannot read the manifests directory: {e}"),
                ));
                return changes;
            }
        };

        // Files that disappeared: their objects go.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !paths.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            let old = self.files.remove(&path).map(|s| s.good).unwrap_or_default();
            self.disown(&path, &old);
            changes.delete.extend(old.iter().map(|r| r.key()));
            if let (Some(state), Ok(rel)) = (&self.state, path.strip_prefix(&self.dir))
                && let Err(e) = state.forget(rel)
            {
                changes.diagnostics.push(file_error(&path, e.to_string()));
            }
        }

        for path in &paths {
            let seen = match self.read(path) {
                Ok(s) => s,
                Err(e) => {
                    changes
                        .diagnostics
                        .push(file_error(path, format!("cannot read: {e}")));
                    continue;
                }
            };
            if self
                .files
                .get(path)
                .is_some_and(|s| s.seen.as_ref() == Some(&seen))
            {
                continue;
            }
            self.evaluate(path, seen, &mut changes);
        }

        // Files refused for a conflict: the other file may have let go.
        let conflicted: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, s)| s.refusal.as_ref().is_some_and(|r| r.conflicted.is_some()))
            .map(|(p, _)| p.clone())
            .collect();
        for path in conflicted {
            let refusal = self.files.get_mut(&path).and_then(|s| s.refusal.as_mut());
            let (loaded, bytes) = refusal
                .and_then(|r| r.conflicted.take())
                .expect("listed above");
            let conflicts = self.conflicts(&path, &loaded);
            if conflicts.is_empty() {
                self.accept(&path, None, loaded.resources, &bytes, &mut changes);
                changes.resolved.push(path);
            } else if let Some(refusal) = self.files.get_mut(&path).and_then(|s| s.refusal.as_mut())
            {
                refusal.reasons = conflicts.iter().map(|d| d.to_string()).collect();
                refusal.conflicted = Some((loaded, bytes));
            }
        }

        if !self.scanned {
            // The indexes start empty: everything in force is new to them.
            self.scanned = true;
            changes.delete.clear();
            changes.apply = self.resources().cloned().collect();
        }
        changes
    }

    /// Reads a file, refusing to read more than the size limit.
    fn read(&self, path: &Path) -> std::io::Result<Seen> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let oversized = |len| Seen::Oversized {
            len,
            modified: meta.modified().ok(),
        };
        if meta.len() > self.limits.max_bytes {
            return Ok(oversized(meta.len()));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(self.limits.max_bytes + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > self.limits.max_bytes {
            return Ok(oversized(bytes.len() as u64));
        }
        Ok(Seen::Bytes(bytes))
    }

    /// Loads a changed file and accepts or refuses it.
    fn evaluate(&mut self, path: &Path, seen: Seen, changes: &mut Changes) {
        let name = path.display().to_string();
        let (mut loaded, bytes) = match &seen {
            Seen::Oversized { len, .. } => {
                let e = BoundsError::TooLarge {
                    size: *len,
                    limit: self.limits.max_bytes,
                };
                (file_refusal(&name, e.to_string()), Vec::new())
            }
            Seen::Bytes(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (load_str_with(text, &name, &self.limits), bytes.clone()),
                Err(_) => (not_text(&name), Vec::new()),
            },
        };
        duplicates_within(&mut loaded, &name);
        let own_errors = loaded.has_errors();
        let conflicts = if own_errors {
            Vec::new()
        } else {
            self.conflicts(path, &loaded)
        };
        let reasons: Vec<String> = loaded
            .errors()
            .chain(&conflicts)
            .map(|d| d.to_string())
            .collect();
        changes.diagnostics.append(&mut loaded.diagnostics);
        if reasons.is_empty() {
            return self.accept(path, Some(seen), loaded.resources, &bytes, changes);
        }
        changes.diagnostics.extend(conflicts.iter().cloned());
        let conflicted = (!own_errors).then_some((loaded, bytes));
        let state = self.files.entry(path.into()).or_insert(FileState {
            seen: None,
            good: Vec::new(),
            in_force: InForce::Nothing,
            refusal: None,
        });
        state.seen = Some(seen);
        if state.in_force == InForce::Current {
            state.in_force = InForce::Previous;
        }
        state.refusal = Some(Refusal {
            reasons,
            conflicted,
        });
        changes.refused.extend(self.status(path));
    }

    /// Puts `resources` in force for `path` (`seen`: what was read, if new)
    /// and records `bytes` as its last good content.
    fn accept(
        &mut self,
        path: &Path,
        seen: Option<Seen>,
        resources: Vec<Resource>,
        bytes: &[u8],
        changes: &mut Changes,
    ) {
        let old = self.files.remove(path);
        let seen = seen.or_else(|| old.as_ref().and_then(|s| s.seen.clone()));
        let old = old.map(|s| s.good).unwrap_or_default();
        self.disown(path, &old);
        self.own(path, &resources);
        let new: BTreeSet<ResourceKey> = resources.iter().map(|r| r.key()).collect();
        changes.delete.extend(
            old.iter()
                .map(|r| r.key())
                .filter(|k| !new.contains(k) && !self.owners.contains_key(k)),
        );
        changes.apply.extend(resources.iter().cloned());
        self.files.insert(
            path.into(),
            FileState {
                seen,
                good: resources,
                in_force: InForce::Current,
                refusal: None,
            },
        );
        if let (Some(state), Ok(rel)) = (&self.state, path.strip_prefix(&self.dir))
            && let Err(e) = state.record(rel, bytes)
        {
            changes.diagnostics.push(file_error(path, e.to_string()));
        }
    }

    fn own(&mut self, path: &Path, resources: &[Resource]) {
        for r in resources {
            self.owners.insert(r.key(), path.into());
        }
    }

    fn disown(&mut self, path: &Path, resources: &[Resource]) {
        for r in resources {
            let key = r.key();
            if self.owners.get(&key).is_some_and(|p| p == path) {
                self.owners.remove(&key);
            }
        }
    }

    /// An object may be defined by one file only: the objects of `loaded`
    /// another file's content in force already defines.
    fn conflicts(&self, path: &Path, loaded: &Loaded) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (r, document) in loaded.resources.iter().zip(&loaded.documents) {
            let key = r.key();
            if let Some(other) = self.owners.get(&key).filter(|p| p.as_path() != path) {
                out.push(Diagnostic {
                    severity: Severity::Error,
                    file: path.display().to_string(),
                    document: *document,
                    object: Some(key.to_string()),
                    field: None,
                    message: format!(
                        "already defined in {}; an object may be defined in one file only",
                        other.display()
                    ),
                });
            }
        }
        out
    }
}

/// An object defined twice in one file is an error in the second document.
fn duplicates_within(loaded: &mut Loaded, name: &str) {
    let mut first = BTreeMap::new();
    for (r, document) in loaded.resources.iter().zip(&loaded.documents) {
        let key = r.key();
        if let Some(earlier) = first.get(&key) {
            loaded.diagnostics.push(Diagnostic {
                severity: Severity::Error,
                file: name.into(),
                document: *document,
                object: Some(key.to_string()),
                field: None,
                message: format!("defined twice in this file (first in document {earlier})"),
            });
        } else {
            first.insert(key, *document);
        }
    }
}

fn not_text(name: &str) -> Loaded {
    file_refusal(name, "not UTF-8 text".into())
}

fn file_refusal(name: &str, message: String) -> Loaded {
    Loaded {
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            file: name.into(),
            document: 0,
            object: None,
            field: None,
            message,
        }],
        ..Default::default()
    }
}

/// A problem with a whole file (document 0: no document in particular).
fn file_error(path: &Path, message: String) -> Diagnostic {
    file_refusal(&path.display().to_string(), message)
        .diagnostics
        .remove(0)
}

/// `*.yaml` and `*.yml` under `dir`, recursively, sorted; hidden entries skipped.
fn manifest_files(dir: &Path) -> std::io::Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.insert(path);
            }
        }
    }
    Ok(out)
}
