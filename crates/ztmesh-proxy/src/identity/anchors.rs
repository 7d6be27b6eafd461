//! Following a trust bundle file (`ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`).
//!
//! The file is read again every [`POLL`] (on `tokio::time`; a ConfigMap
//! volume updates by swapping a symlink, which a read follows). A changed
//! bundle that parses replaces the proxy's trust: new handshakes, client
//! and server side, use it; established connections are untouched. One
//! that does not parse (or cannot be read) is refused with its reason, once
//! per content, and the last good bundle stays.

use super::metrics::IdentityMetrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use ztmesh_tls::Trust;

/// How often the file is read.
pub const POLL: Duration = Duration::from_secs(5);

/// What one look at the file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The same content as last time (good or refused).
    Unchanged,
    /// A new bundle is in use, with this many anchors.
    Applied { anchors: usize },
    /// A new content was refused; the last good bundle stays.
    Refused { reason: String },
}

/// The file and what it held at the last look.
pub struct AnchorsFile {
    path: PathBuf,
    last: Option<Vec<u8>>,
    trust: Arc<Trust>,
    metrics: Arc<IdentityMetrics>,
}

impl AnchorsFile {
    /// `initial` is the content the trust was built from.
    pub fn new(
        path: PathBuf,
        initial: &[u8],
        trust: Arc<Trust>,
        metrics: Arc<IdentityMetrics>,
    ) -> Self {
        Self {
            path,
            last: Some(initial.to_vec()),
            trust,
            metrics,
        }
    }

    /// Reads the file and applies a changed, valid bundle.
    pub fn check(&mut self) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // Reported once until the file comes back.
                if self.last.take().is_none() {
                    return Reload::Unchanged;
                }
                return Reload::Refused {
                    reason: format!("reading {}: {e}", self.path.display()),
                };
            }
        };
        if self.last.as_deref() == Some(&bytes[..]) {
            return Reload::Unchanged;
        }
        self.last = Some(bytes.clone());
        let certs = match ztmesh_identity::pem::certificates(&bytes, "trust anchors") {
            Ok(c) => c,
            Err(e) => {
                return Reload::Refused {
                    reason: e.to_string(),
                };
            }
        };
        let roots = match ztmesh_tls::roots_from_pem(&bytes) {
            Ok(r) => r,
            Err(e) => {
                return Reload::Refused {
                    reason: e.to_string(),
                };
            }
        };
        let anchors = roots.len();
        if let Err(e) = self.trust.set(roots) {
            return Reload::Refused {
                reason: e.to_string(),
            };
        }
        self.metrics
            .set_trust_anchors(certs.iter().map(|c| c.as_ref()));
        Reload::Applied { anchors }
    }

    /// Runs forever, looking every `poll`.
    pub async fn follow(mut self, poll: Duration) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.check() {
                Reload::Unchanged => {}
                Reload::Applied { anchors } => {
                    tracing::info!(path = %self.path.display(), anchors, "trust bundle changed; new handshakes use it")
                }
                Reload::Refused { reason } => {
                    tracing::warn!(path = %self.path.display(), %reason, "trust bundle update refused; keeping the last good bundle")
                }
            }
        }
    }
}
