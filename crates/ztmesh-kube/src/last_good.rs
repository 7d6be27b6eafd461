//! The last good version of each custom resource, kept on disk so that it
//! survives a restart: a controller starting while the API server holds
//! only a refused version of an object puts the recorded good one in force
//! ([`crate::state`] decides; this module only reads and writes).
//!
//! One JSON file per object ([`Recorded`]: kind, namespace, name,
//! resourceVersion and the object as the API served it) in the store's
//! directory (`--state-dir`'s `kubernetes/`, created 0700). Each file is
//! written atomically (a temporary file, synced, renamed over the old one,
//! the directory synced). A file that cannot be read or parsed is
//! reported and ignored, never fatal: the object then has no recorded
//! version until its next good one.
//!
//! Only custom resources are recorded ([`recorded_kind`]): they are what
//! users write and the loader may refuse; core objects (Pods,
//! EndpointSlices, ...) are validated by the API server itself and change
//! far too often to be written down at each change.

use crate::kinds::{self, Kind};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An object's identity across restarts: kind (`Server.policy.linkerd.io`),
/// namespace, name.
pub type Key = (String, String, String);

/// The last good version of one object.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
    /// The object as the API served it (with apiVersion and kind).
    pub object: serde_json::Value,
}

impl Recorded {
    pub fn key(&self) -> Key {
        (self.kind.clone(), self.namespace.clone(), self.name.clone())
    }
}

/// A change to the records, from [`crate::state::StoreState::take_records`].
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Write(Box<Recorded>),
    Remove(Key),
}

/// Whether objects of `kind` are recorded: the custom resources.
pub fn recorded_kind(kind: &Kind) -> bool {
    kinds::CUSTOM.contains(kind)
}

/// Reading or writing the records failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the last-good directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a record of an object: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} records {key:?}, which is not where that object is recorded")]
    Misplaced { path: PathBuf, key: Key },
}

/// The directory of records.
#[derive(Clone, Debug)]
pub struct LastGoodDir {
    dir: PathBuf,
}

const SUFFIX: &str = ".json";

impl LastGoodDir {
    /// Opens (creating, 0700) the records in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(|source| Error::Create {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Every readable record, and the problems of the others (to report;
    /// those files are ignored).
    pub fn load(&self) -> (BTreeMap<Key, Recorded>, Vec<Error>) {
        let mut records = BTreeMap::new();
        let mut problems = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(source) => {
                problems.push(Error::Read {
                    path: self.dir.clone(),
                    source,
                });
                return (records, problems);
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_str().is_some_and(|p| p.ends_with(SUFFIX)))
            .collect();
        paths.sort();
        for path in paths {
            match read(&path) {
                Ok(recorded) => {
                    let key = recorded.key();
                    if self.file(&key).as_deref() != Some(path.as_path()) {
                        problems.push(Error::Misplaced { path, key });
                        continue;
                    }
                    records.insert(key, recorded);
                }
                Err(e) => problems.push(e),
            }
        }
        (records, problems)
    }

    /// Applies `records` in order.
    pub fn apply(&self, records: Vec<Record>) -> Result<(), Error> {
        for record in records {
            match record {
                Record::Write(recorded) => {
                    let Some(path) = self.file(&recorded.key()) else {
                        continue;
                    };
                    let text =
                        serde_json::to_vec_pretty(&*recorded).expect("a JSON value serializes");
                    write_atomically(&self.dir, &path, &text)
                        .map_err(|source| Error::Write { path, source })?;
                }
                Record::Remove(key) => {
                    let Some(path) = self.file(&key) else {
                        continue;
                    };
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(Error::Remove { path, source }),
                    }
                }
            }
        }
        Ok(())
    }

    /// Where `key` is recorded: `KIND_NAMESPACE_NAME.json` (`_` is in no
    /// Kubernetes name); none for a name outside what the API allows.
    pub fn file(&self, key: &Key) -> Option<PathBuf> {
        let (kind, ns, name) = key;
        let allowed = |s: &str, empty_ok: bool| {
            (empty_ok || !s.is_empty())
                && s.len() <= 253
                && !s.starts_with('.')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        (allowed(kind, false) && allowed(ns, true) && allowed(name, false))
            .then(|| self.dir.join(format!("{kind}_{ns}_{name}{SUFFIX}")))
    }
}

fn read(path: &Path) -> Result<Recorded, Error> {
    let text = std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| Error::Parse {
        path: path.into(),
        source,
    })
}

/// `path` holds `text` entirely or keeps its old content.
fn write_atomically(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile_in(dir, path)?;
    let result = (|| {
        tmp.1.write_all(text)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    result
}

/// A new file beside `path` (`.NAME.tmp-PID-N`), 0600.
fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    Ok((tmp, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(name: &str, rv: &str) -> Recorded {
        Recorded {
            kind: "Server.policy.linkerd.io".into(),
            namespace: "booksapp".into(),
            name: name.into(),
            resource_version: rv.into(),
            object: json!({"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
                           "metadata": {"name": name, "namespace": "booksapp"}}),
        }
    }

    #[test]
    fn records_survive_a_reopen_and_bad_files_are_reported_and_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LastGoodDir::open(tmp.path().join("kubernetes")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        dir.apply(vec![
            Record::Write(Box::new(recorded("a", "1"))),
            Record::Write(Box::new(recorded("b", "2"))),
            Record::Write(Box::new(recorded("a", "3"))),
            Record::Remove(recorded("b", "2").key()),
            // Removing what is not recorded is no error.
            Record::Remove(recorded("zz", "0").key()),
        ])
        .unwrap();
        // A corrupt record, one moved under another's name, and a stray file.
        std::fs::write(
            dir.path().join("Server.policy.linkerd.io_booksapp_c.json"),
            b"{\"kind\": trunc",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("Server.policy.linkerd.io_booksapp_d.json"),
            serde_json::to_vec(&recorded("a", "9")).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a record").unwrap();

        let reopened = LastGoodDir::open(dir.path()).unwrap();
        let (records, problems) = reopened.load();
        assert_eq!(
            records.into_values().collect::<Vec<_>>(),
            vec![recorded("a", "3")]
        );
        let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("booksapp_c.json is not a record"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("booksapp_d.json records"),
            "{problems:?}"
        );
        // No temporary file is left behind.
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn only_api_names_have_a_file() {
        let dir = LastGoodDir {
            dir: PathBuf::from("/s"),
        };
        let key = |kind: &str, ns: &str, name: &str| (kind.into(), ns.into(), name.into());
        let cases = [
            (
                key("Server.policy.linkerd.io", "booksapp", "authors"),
                Some("/s/Server.policy.linkerd.io_booksapp_authors.json"),
            ),
            // Cluster-scoped: no namespace.
            (
                key("Namespace", "", "booksapp"),
                Some("/s/Namespace__booksapp.json"),
            ),
            (key("Server.policy.linkerd.io", "booksapp", "../x"), None),
            (key("Server.policy.linkerd.io", "booksapp", ""), None),
            (key("Server.policy.linkerd.io", "a_b", "x"), None),
            (key("Server.policy.linkerd.io", "ns", ".hidden"), None),
        ];
        for (key, want) in cases {
            assert_eq!(dir.file(&key), want.map(PathBuf::from), "{key:?}");
        }
    }

    #[test]
    fn the_custom_resources_are_recorded() {
        assert!(recorded_kind(&kinds::CUSTOM[0]));
        for (kind, _) in kinds::core() {
            assert!(!recorded_kind(&kind), "{kind}");
        }
    }
}
