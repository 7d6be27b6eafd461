//! The state directory: the last good content of each manifest file, kept
//! across restarts so a file refused at start-up still has its last good
//! content in force.
//!
//! One file per manifest, named by the manifest's path relative to the
//! manifests directory with every byte outside `[A-Za-z0-9._-]`
//! percent-encoded (`sub/a.yaml` is `sub%2Fa.yaml.last-good`). Writes are
//! atomic: a hidden temporary file is written, synced and renamed over the
//! old one, then the directory is synced, so a crash leaves the old
//! content or the new, never half of one.

use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".last-good";

/// A state directory that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the state directory {}: {what}: {source}", dir.display())]
pub struct StateError {
    dir: PathBuf,
    what: String,
    source: std::io::Error,
}

pub(crate) struct StateDir {
    root: PathBuf,
}

/// One recorded file: its path relative to the manifests directory, where
/// it is recorded, and its content.
pub(crate) struct Entry {
    pub(crate) relative: PathBuf,
    pub(crate) recorded: PathBuf,
    pub(crate) contents: Vec<u8>,
}

impl StateDir {
    /// Creates the directory (0700) if need be and removes temporary files
    /// a crash left behind.
    pub(crate) fn open(root: &Path) -> Result<Self, StateError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let err = |what: &str, source| StateError {
            dir: root.into(),
            what: what.into(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| err("cannot create it", e))?;
        let meta = std::fs::metadata(root).map_err(|e| err("cannot read it", e))?;
        if meta.permissions().mode() & 0o022 != 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| err("cannot make it private", e))?;
        }
        for entry in std::fs::read_dir(root).map_err(|e| err("cannot list it", e))? {
            let entry = entry.map_err(|e| err("cannot list it", e))?;
            if entry.file_name().as_bytes().starts_with(b".") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self { root: root.into() })
    }

    /// Where the last good content of `relative` is recorded.
    pub(crate) fn recorded(&self, relative: &Path) -> PathBuf {
        self.root.join(format!("{}{SUFFIX}", encode(relative)))
    }

    /// Every recorded file, sorted by its relative path.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, StateError> {
        let err = |what: String, source| StateError {
            dir: self.root.clone(),
            what,
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(|e| err("cannot list it".into(), e))? {
            let entry = entry.map_err(|e| err("cannot list it".into(), e))?;
            let name = entry.file_name();
            let Some(relative) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(decode)
            else {
                continue;
            };
            let recorded = entry.path();
            let contents = std::fs::read(&recorded)
                .map_err(|e| err(format!("cannot read {}", recorded.display()), e))?;
            out.push(Entry {
                relative,
                recorded,
                contents,
            });
        }
        out.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(out)
    }

    /// Records `contents` as the last good content of `relative`, atomically.
    pub(crate) fn record(&self, relative: &Path, contents: &[u8]) -> Result<(), StateError> {
        let target = self.recorded(relative);
        if std::fs::read(&target).is_ok_and(|old| old == contents) {
            return Ok(());
        }
        let name = target.file_name().expect("a file name").to_string_lossy();
        let tmp = self.root.join(format!(".{name}.tmp"));
        let err = |what: &str, source| StateError {
            dir: self.root.clone(),
            what: format!("{what} {}", target.display()),
            source,
        };
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&self.root)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err("cannot record", e)
        })
    }

    /// Forgets `relative` (its file is gone from the manifests directory).
    pub(crate) fn forget(&self, relative: &Path) -> Result<(), StateError> {
        let target = self.recorded(relative);
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError {
                dir: self.root.clone(),
                what: format!("cannot remove {}", target.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

fn encode(relative: &Path) -> String {
    let mut out = String::new();
    for &b in relative.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(name: &str) -> Option<PathBuf> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = PathBuf::from(std::ffi::OsString::from_vec(out));
    // Only relative paths without `..` can name a manifest.
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_escape_nothing() {
        for p in ["a.yaml", "sub/dir/b c.yml", "100%.yaml", "ü.yaml"] {
            let name = encode(Path::new(p));
            assert!(!name.contains('/'), "{name}");
            assert_eq!(decode(&name), Some(PathBuf::from(p)));
        }
        assert_eq!(decode("..%2Fetc%2Fpasswd"), None);
        assert_eq!(decode("%2Fetc%2Fpasswd"), None);
        assert_eq!(decode("bad%zz"), None);
    }

    #[test]
    fn records_atomically_and_forgets() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let state = StateDir::open(&root).unwrap();
        state.record(Path::new("sub/a.yaml"), b"one").unwrap();
        state.record(Path::new("sub/a.yaml"), b"two").unwrap();
        // A temporary file a crash left is not an entry, and is cleaned up.
        std::fs::write(root.join(".sub%2Fa.yaml.last-good.tmp"), b"half").unwrap();
        let entries = StateDir::open(&root).unwrap().entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].relative, Path::new("sub/a.yaml"));
        assert_eq!(entries[0].contents, b"two");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        state.forget(Path::new("sub/a.yaml")).unwrap();
        state.forget(Path::new("sub/a.yaml")).unwrap();
        assert!(state.entries().unwrap().is_empty());
    }
}
