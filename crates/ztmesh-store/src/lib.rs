//! The local resource store: every `*.yaml` / `*.yml` file under a
//! directory, read as multi-document manifests.
//!
//! [`ManifestDir::scan`] compares the files with what it saw last and
//! returns a [`Changes`]: resources to apply, keys to delete, and the
//! diagnostics of every file that changed. A file is all or nothing: if it
//! has any error (bad YAML, an unknown field, an object another file already
//! defines), it is reported and its previous good content stays in force.
//! The caller polls `scan` (the controller every 500ms) and applies the
//! changes to its indexes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use ztmesh_resources::load::{Diagnostic, ResourceKey, Severity};
use ztmesh_resources::{Resource, load_str};

pub struct ManifestDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

struct FileState {
    contents: Vec<u8>,
    /// The last good resources of this file (what is in force).
    good: Vec<Resource>,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Changes {
    pub apply: Vec<Resource>,
    pub delete: Vec<ResourceKey>,
    /// Diagnostics of files that changed, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// Files whose new content was refused (their old content stays).
    pub refused: Vec<PathBuf>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.delete.is_empty() && self.diagnostics.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

impl ManifestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every resource currently in force.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.files.values().flat_map(|f| f.good.iter())
    }

    /// Reads the directory and returns what changed since the last scan.
    pub fn scan(&mut self) -> Changes {
        let mut changes = Changes::default();
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
            if let Some(state) = self.files.remove(&path) {
                changes.delete.extend(state.good.iter().map(|r| r.key()));
            }
        }

        for path in &paths {
            let contents = match std::fs::read(path) {
                Ok(c) => c,
                Err(e) => {
                    changes
                        .diagnostics
                        .push(file_error(path, format!("cannot read: {e}")));
                    continue;
                }
            };
            if self.files.get(path).is_some_and(|s| s.contents == contents) {
                continue;
            }
            let name = path.display().to_string();
            let mut loaded = match std::str::from_utf8(&contents) {
                Ok(text) => load_str(text, &name),
                Err(_) => {
                    changes
                        .diagnostics
                        .push(file_error(path, "not UTF-8 text".into()));
                    self.remember_refused(path, contents);
                    changes.refused.push(path.clone());
                    continue;
                }
            };
            self.check_duplicates(path, &mut loaded);
            let failed = loaded.has_errors();
            changes.diagnostics.append(&mut loaded.diagnostics);
            if failed {
                changes.refused.push(path.clone());
                self.remember_refused(path, contents);
                continue;
            }
            let old: BTreeSet<ResourceKey> = self
                .files
                .get(path)
                .map(|s| s.good.iter().map(|r| r.key()).collect())
                .unwrap_or_default();
            let new: BTreeSet<ResourceKey> = loaded.resources.iter().map(|r| r.key()).collect();
            changes.delete.extend(old.difference(&new).cloned());
            changes.apply.extend(loaded.resources.iter().cloned());
            self.files.insert(
                path.clone(),
                FileState {
                    contents,
                    good: loaded.resources,
                },
            );
        }
        changes
    }

    /// Keeps the previous good resources but remembers the refused bytes,
    /// so the same bad content is reported once, not at every scan.
    fn remember_refused(&mut self, path: &Path, contents: Vec<u8>) {
        let good = self.files.remove(path).map(|s| s.good).unwrap_or_default();
        self.files.insert(path.into(), FileState { contents, good });
    }

    /// An object may be defined by one file only.
    fn check_duplicates(&self, path: &Path, loaded: &mut ztmesh_resources::Loaded) {
        let mut seen = BTreeMap::new();
        for r in &loaded.resources {
            let key = r.key();
            let other_file = self
                .files
                .iter()
                .find(|(p, s)| p.as_path() != path && s.good.iter().any(|g| g.key() == key));
            if let Some((other, _)) = other_file {
                loaded.diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: path.display().to_string(),
                    document: 0,
                    object: Some(key.to_string()),
                    field: None,
                    message: format!(
                        "already defined in {}; an object may be defined in one file only",
                        other.display()
                    ),
                });
            } else if seen.insert(key.clone(), ()).is_some() {
                loaded.diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: path.display().to_string(),
                    document: 0,
                    object: Some(key.to_string()),
                    field: None,
                    message: "defined twice in this file".into(),
                });
            }
        }
    }
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.display().to_string(),
        document: 0,
        object: None,
        field: None,
        message,
    }
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
