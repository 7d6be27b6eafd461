//! The agent's node token: a value, or a file read at each use, so a
//! token rotated on disk (`ztmesh token create --node NAME > FILE`) is
//! used from the next request on, without restarting the agent.

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum NodeToken {
    Value(Arc<str>),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
#[error("reading the node token {}: {source}", path.display())]
pub struct NodeTokenReadError {
    path: PathBuf,
    source: std::io::Error,
}

impl NodeToken {
    /// The token's bytes, trimmed.
    pub fn read(&self) -> Result<Vec<u8>, NodeTokenReadError> {
        match self {
            Self::Value(v) => Ok(v.trim().as_bytes().to_vec()),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().as_bytes().to_vec())
                .map_err(|source| NodeTokenReadError {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_at_each_use() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("node.token");
        let token = NodeToken::File(path.clone());
        assert!(token.read().is_err(), "missing file");
        std::fs::write(&path, "one\n").expect("write");
        assert_eq!(token.read().expect("read"), b"one");
        std::fs::write(&path, "two").expect("write");
        assert_eq!(token.read().expect("read"), b"two", "rotated on disk");
        assert_eq!(NodeToken::Value(" v\n".into()).read().expect("value"), b"v");
    }
}
