//! `WorkloadAttestation`: which local processes are which workload, and on
//! which nodes.
//!
//! ```yaml
//! apiVersion: ztmesh.io/v1alpha1
//! kind: WorkloadAttestation
//! metadata:
//!   name: web
//! spec:
//!   namespace: demo            # the identity: spiffe://TD/ns/demo/sa/web
//!   serviceAccount: web
//!   nodes: [node-a]            # the nodes whose agents may serve it ("*": any)
//!   selectors:                 # all must match the caller
//!     - unix:uid:1000
//!     - unix:path:/usr/bin/web
//! ```
//!
//! The agent and the controller read the same resources: the agent to
//! attest callers, the controller to decide which identities a node may be
//! issued (so a compromised node gets no identity assigned elsewhere).
//! Loading reads one file or every `*.yaml`/`*.yml` of a directory (several
//! documents per file allowed); every error names the file, the resource
//! and the field.

use crate::selector::{Caller, Selector};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const API_VERSION: &str = "ztmesh.io/v1alpha1";
pub const KIND: &str = "WorkloadAttestation";
/// The `nodes` entry that allows every node.
pub const ANY_NODE: &str = "*";

/// The identity a resource assigns (`ns/sa`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadIdentity {
    pub namespace: String,
    pub service_account: String,
}

impl std::fmt::Display for WorkloadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {document}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        /// 1-based index of the YAML document in the file.
        document: usize,
        field: String,
        message: String,
    },
    #[error("{path}: WorkloadAttestation {name:?} is defined twice (first in {first})")]
    Duplicate {
        path: PathBuf,
        name: String,
        first: PathBuf,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    namespace: String,
    service_account: String,
    nodes: Vec<String>,
    selectors: Vec<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    path: PathBuf,
    identity: WorkloadIdentity,
    nodes: Vec<String>,
    selectors: Vec<Selector>,
}

impl Entry {
    fn on_node(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n == ANY_NODE || n == node)
    }
}

/// Every WorkloadAttestation read, in file order.
#[derive(Clone, Debug, Default)]
pub struct Attestations {
    entries: Vec<Entry>,
}

impl Attestations {
    /// Reads `path`: one file, or every `*.yaml`/`*.yml` in a directory
    /// (sorted by name, subdirectories ignored).
    pub fn load(path: &Path) -> Result<Self, ResourceError> {
        let read_err = |source| ResourceError::Read {
            path: path.to_path_buf(),
            source,
        };
        let files = if path.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read_err)? {
                let p = entry.map_err(read_err)?.path();
                let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
                if yaml && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut all = Self::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ResourceError::Read {
                path: file.clone(),
                source,
            })?;
            all.add(&file, &text)?;
        }
        Ok(all)
    }

    /// Adds the documents of one file's text.
    pub fn add(&mut self, path: &Path, text: &str) -> Result<(), ResourceError> {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let document = i + 1;
            let invalid = |field: &str, message: String| ResourceError::Invalid {
                path: path.to_path_buf(),
                document,
                field: field.into(),
                message,
            };
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| invalid("(document)", e.to_string()))?;
            if value.is_null() {
                continue; // an empty document, e.g. after a trailing `---`
            }
            let doc: Doc = serde_path_to_error::deserialize(value).map_err(|e| {
                let field = e.path().to_string();
                invalid(&field, e.into_inner().to_string())
            })?;
            if doc.api_version != API_VERSION {
                return Err(invalid(
                    "apiVersion",
                    format!("is {:?}; expected {API_VERSION:?}", doc.api_version),
                ));
            }
            if doc.kind != KIND {
                return Err(invalid(
                    "kind",
                    format!("is {:?}; expected {KIND:?}", doc.kind),
                ));
            }
            let name = doc.metadata.name;
            if name.is_empty() {
                return Err(invalid("metadata.name", "is empty".into()));
            }
            let spec = doc.spec;
            ztmesh_identity::TrustDomain::default()
                .identity(&spec.namespace, &spec.service_account)
                .map_err(|e| invalid("spec", format!("namespace/serviceAccount: {e}")))?;
            if spec.nodes.is_empty() {
                return Err(invalid(
                    "spec.nodes",
                    "is empty; name the nodes whose agents may serve this identity, or \"*\""
                        .into(),
                ));
            }
            if let Some((i, _)) = spec.nodes.iter().enumerate().find(|(_, n)| n.is_empty()) {
                return Err(invalid(&format!("spec.nodes[{i}]"), "is empty".into()));
            }
            if spec.selectors.is_empty() {
                return Err(invalid(
                    "spec.selectors",
                    "is empty; a resource without selectors would match every local process".into(),
                ));
            }
            let mut selectors = Vec::new();
            for (i, s) in spec.selectors.iter().enumerate() {
                let sel = s.parse().map_err(|e: crate::SelectorError| {
                    invalid(&format!("spec.selectors[{i}]"), e.to_string())
                })?;
                selectors.push(sel);
            }
            if let Some(first) = self.entries.iter().find(|e| e.name == name) {
                return Err(ResourceError::Duplicate {
                    path: path.to_path_buf(),
                    name,
                    first: first.path.clone(),
                });
            }
            self.entries.push(Entry {
                name,
                path: path.to_path_buf(),
                identity: WorkloadIdentity {
                    namespace: spec.namespace,
                    service_account: spec.service_account,
                },
                nodes: spec.nodes,
                selectors,
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identities of the resources on `node` whose selectors all match
    /// `caller`, in resource order, without repeats.
    pub fn identities_for(&self, node: &str, caller: &Caller) -> Vec<WorkloadIdentity> {
        let mut out: Vec<WorkloadIdentity> = Vec::new();
        for e in &self.entries {
            if e.on_node(node)
                && e.selectors.iter().all(|s| s.matches(caller))
                && !out.contains(&e.identity)
            {
                out.push(e.identity.clone());
            }
        }
        out
    }

    /// Whether some resource assigns `identity` to `node`.
    pub fn node_may_have(&self, node: &str, identity: &WorkloadIdentity) -> bool {
        self.entries
            .iter()
            .any(|e| e.on_node(node) && &e.identity == identity)
    }
}

#[cfg(test)]
mod tests;
