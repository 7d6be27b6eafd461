//! Following the federated trust domains' bundle set file
//! (`ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE`), which the controller
//! writes (`ztmesh controller --federated-bundles-file`):
//!
//! ```json
//! {"trust_domain": "a.example",
//!  "trust_domains": {"b.example": "-----BEGIN CERTIFICATE-----\n..."}}
//! ```
//!
//! `trust_domain` is the local one; each other domain's PEM bundle is
//! trusted only for identities in that domain (see `ztmesh_tls::federation`),
//! and a peer from a domain that is not listed is refused with that reason.
//! The file is read every [`POLL`]; a changed file that parses replaces the
//! federation for new handshakes (established connections are untouched);
//! one that does not is refused with its reason, once per content, and the
//! federation fails closed: no foreign domain is trusted until a good file
//! arrives. A missing file at start means no federation yet (nothing
//! foreign is trusted, nothing is scoped) until it appears.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use ztmesh_tls::{Federation, Trust};

pub(crate) const FEDERATED_BUNDLES_FILE: &str = "ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE";

/// How often the file is read.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FederatedFileError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("not a bundle set (JSON with trust_domain and trust_domains): {0}")]
    Json(String),
    #[error("the bundle of {domain}: {reason}")]
    Bundle { domain: String, reason: String },
    #[error(transparent)]
    Federation(#[from] ztmesh_tls::TlsError),
}

/// The federation a bundle set file describes.
pub fn parse(bytes: &[u8]) -> Result<Federation, FederatedFileError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FederatedFileError::Json(e.to_string()))?;
    let local = doc
        .get("trust_domain")
        .and_then(|v| v.as_str())
        .ok_or_else(|| FederatedFileError::Json("`trust_domain` must be a string".into()))?;
    let domains = doc
        .get("trust_domains")
        .and_then(|v| v.as_object())
        .ok_or_else(|| FederatedFileError::Json("`trust_domains` must be an object".into()))?;
    let mut bundles = BTreeMap::new();
    for (domain, pem) in domains {
        let bad = |reason: String| FederatedFileError::Bundle {
            domain: domain.clone(),
            reason,
        };
        let pem = pem
            .as_str()
            .ok_or_else(|| bad("must be a PEM string".into()))?;
        let roots = ztmesh_tls::roots_from_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if roots.is_empty() {
            return Err(bad("no certificate".into()));
        }
        bundles.insert(domain.clone(), roots);
    }
    Ok(Federation::new(local, bundles)?)
}

/// The file and what it held at the last look.
pub struct FederatedFile {
    path: PathBuf,
    last: Option<Vec<u8>>,
    trust: Arc<Trust>,
}

/// What one look at the file found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    /// A new federation is in use, with these domains.
    Applied {
        local: String,
        domains: Vec<String>,
    },
    /// A new content was refused: no foreign domain is trusted.
    Refused(FederatedFileError),
}

impl FederatedFile {
    pub fn new(path: PathBuf, trust: Arc<Trust>) -> Self {
        Self {
            path,
            last: None,
            trust,
        }
    }

    pub fn check(&mut self) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.last.is_none() => {
                return Reload::Unchanged;
            }
            Err(e) => {
                if self.last.take().is_none() {
                    return Reload::Unchanged;
                }
                self.fail_closed();
                return Reload::Refused(FederatedFileError::Read(
                    self.path.display().to_string(),
                    e,
                ));
            }
        };
        if self.last.as_deref() == Some(&bytes[..]) {
            return Reload::Unchanged;
        }
        self.last = Some(bytes.clone());
        match parse(&bytes) {
            Ok(federation) => {
                let local = federation.local_domain().to_string();
                let domains = federation.domains().iter().map(|d| d.to_string()).collect();
                self.trust.set_federation(Some(federation));
                Reload::Applied { local, domains }
            }
            Err(e) => {
                self.fail_closed();
                Reload::Refused(e)
            }
        }
    }

    /// Keeps the local domain (so foreign peers stay refused, with the
    /// reason) and drops every foreign bundle.
    fn fail_closed(&self) {
        if let Some(current) = self.trust.federation() {
            let local = current.local_domain().to_string();
            let empty = Federation::new(&local, BTreeMap::new())
                .expect("the local domain was accepted before");
            self.trust.set_federation(Some(empty));
        }
    }

    /// Runs forever, looking every `poll`.
    pub async fn follow(mut self, poll: Duration) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.check() {
                Reload::Unchanged => {}
                Reload::Applied { local, domains } => {
                    tracing::info!(path = %self.path.display(), trust_domain = %local, federated = ?domains, "federated trust bundles changed; new handshakes use them")
                }
                Reload::Refused(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "federated trust bundles refused; no foreign trust domain is trusted until a good file arrives")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn bundle_set_files_parse_or_are_refused_table() {
        let good = serde_json::json!(pem());
        let cases: Vec<(&str, String, Result<Vec<&str>, &str>)> = vec![
            (
                "one federated domain",
                serde_json::json!({"trust_domain": "a.example", "trust_domains": {"b.example": good}}).to_string(),
                Ok(vec!["b.example"]),
            ),
            (
                "none yet",
                r#"{"trust_domain": "a.example", "trust_domains": {}}"#.into(),
                Ok(vec![]),
            ),
            ("not JSON", "{".into(), Err("not a bundle set")),
            (
                "no local domain",
                r#"{"trust_domains": {}}"#.into(),
                Err("`trust_domain` must be a string"),
            ),
            (
                "a bundle that is not PEM",
                r#"{"trust_domain": "a.example", "trust_domains": {"b.example": "junk"}}"#.into(),
                Err("the bundle of b.example"),
            ),
            (
                "the local domain federated",
                serde_json::json!({"trust_domain": "a.example", "trust_domains": {"a.example": good}}).to_string(),
                Err("is the local trust domain"),
            ),
        ];
        for (what, doc, want) in cases {
            match (parse(doc.as_bytes()), want) {
                (Ok(f), Ok(domains)) => {
                    assert_eq!(f.domains(), domains, "{what}");
                    assert_eq!(f.local_domain(), "a.example");
                }
                (Err(e), Err(reason)) => assert!(e.to_string().contains(reason), "{what}: {e}"),
                (got, want) => panic!("{what}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_refused_file_fails_closed_and_a_good_one_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federated.json");
        let trust = Trust::from_pem(pem().as_bytes()).unwrap();
        let mut file = FederatedFile::new(path.clone(), trust.clone());
        assert!(matches!(file.check(), Reload::Unchanged), "no file yet");
        assert!(trust.federation().is_none());
        let doc =
            serde_json::json!({"trust_domain": "a.example", "trust_domains": {"b.example": pem()}});
        std::fs::write(&path, doc.to_string()).unwrap();
        assert!(matches!(file.check(), Reload::Applied { .. }));
        assert_eq!(trust.federation().unwrap().domains(), vec!["b.example"]);
        assert!(matches!(file.check(), Reload::Unchanged));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(file.check(), Reload::Refused(_)));
        let after = trust.federation().unwrap();
        assert_eq!(after.local_domain(), "a.example");
        assert!(after.domains().is_empty(), "failed closed");
        std::fs::write(&path, doc.to_string()).unwrap();
        assert!(matches!(file.check(), Reload::Applied { .. }));
        assert_eq!(trust.federation().unwrap().domains(), vec!["b.example"]);
    }
}
