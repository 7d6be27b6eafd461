//! Keeping the proxy's certificate from the Workload API's FetchX509SVID
//! stream.
//!
//! Each message carries every SVID the workload may use; the proxy takes
//! the one whose ID is its configured `spiffe://` ID, checks that it chains
//! to the bundle sent with it and names exactly that ID, and installs it
//! (new handshakes use it; established connections are untouched). The
//! bundle sent with the SVID replaces the proxy's trust when it differs
//! (ztmesh's addition: linkerd2-proxy keeps its configured anchors). A
//! message that fails any check is refused with its reason and the last
//! good SVID and bundle stay. The message's federated bundles (by trust
//! domain), when it has any, replace the proxy's federation when they
//! differ: each trusted only for its own domain's identities, the local
//! domain being the SVID's (see `ztmesh_tls::federation`); a message
//! without any leaves the federation alone (a bundle set file may own it).
//! When the stream ends or fails the client
//! reconnects with a backoff (1s doubling to 60s); when the SVID expires
//! before a new one arrives the status turns `Expired`.

use super::client::{ClientError, WorkloadApiClient};
use super::proto::{self, X509SvidResponse};
use crate::identity::config::{SpireConfig, WorkloadApiAddr};
use crate::identity::daemon::{IdentityStatus, backoff};
use crate::identity::metrics::IdentityMetrics;
use crate::identity::verify::{self, VerifyError};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::time::Instant;
use ztmesh_tls::{CredentialsStore, Trust};

#[derive(Debug, thiserror::Error)]
pub enum SvidError {
    #[error("no SVID for {want} (offered: {offered:?})")]
    NoMatchingSvid { want: String, offered: Vec<String> },
    #[error("the SVID's certificate chain is empty")]
    EmptyChain,
    #[error("the SVID has no private key")]
    NoKey,
    #[error("the SVID's {what} is not DER: {error}")]
    Der {
        what: &'static str,
        error: proto::DerError,
    },
    #[error("the SVID's bundle is unusable: {0}")]
    Bundle(String),
    #[error("the SVID is refused: {0}")]
    Verify(#[from] VerifyError),
    #[error("the SVID has already expired")]
    AlreadyExpired,
    #[error("the SVID cannot be used for TLS: {0}")]
    Tls(#[from] ztmesh_tls::TlsError),
}

/// What an applied message changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    pub expiry: SystemTime,
    /// The bundle differed from the one in use and replaced it.
    pub bundle_changed: bool,
}

pub struct SvidDaemon {
    addr: WorkloadApiAddr,
    spiffe_id: String,
    trust: Arc<Trust>,
    /// The DER anchors of the bundle in use, to tell a change.
    bundle: Vec<Vec<u8>>,
    /// The federated bundles in use (DER by trust domain), likewise.
    federated: BTreeMap<String, Vec<u8>>,
    store: Arc<CredentialsStore>,
    status: watch::Sender<IdentityStatus>,
    metrics: Arc<IdentityMetrics>,
}

impl SvidDaemon {
    /// Installs SVIDs for `config.spiffe_id`, and the bundles sent with
    /// them into `trust`.
    pub fn new(config: &SpireConfig, trust: Arc<Trust>) -> Self {
        let (status, _) = watch::channel(IdentityStatus::Pending);
        let metrics = Arc::new(IdentityMetrics::default());
        let bundle: Vec<Vec<u8>> = ztmesh_identity::pem::certificates(
            config.trust_anchors_pem.as_bytes(),
            "trust anchors",
        )
        .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default();
        metrics.set_trust_anchors(bundle.iter().map(|d| d.as_slice()));
        Self {
            addr: config.workload_api.clone(),
            spiffe_id: config.spiffe_id.clone(),
            trust,
            bundle,
            federated: BTreeMap::new(),
            store: CredentialsStore::new(),
            status,
            metrics,
        }
    }

    pub fn store(&self) -> Arc<CredentialsStore> {
        self.store.clone()
    }

    pub fn status(&self) -> watch::Receiver<IdentityStatus> {
        self.status.subscribe()
    }

    pub fn metrics(&self) -> Arc<IdentityMetrics> {
        self.metrics.clone()
    }

    /// Checks one stream message and installs its SVID (and bundle).
    pub fn apply(&mut self, msg: X509SvidResponse) -> Result<Applied, SvidError> {
        let Some(svid) = msg.svids.iter().find(|s| s.spiffe_id == self.spiffe_id) else {
            return Err(SvidError::NoMatchingSvid {
                want: self.spiffe_id.clone(),
                offered: msg.svids.iter().map(|s| s.spiffe_id.clone()).collect(),
            });
        };
        let mut chain: Vec<CertificateDer<'static>> = proto::split_der(&svid.x509_svid)
            .map_err(|error| SvidError::Der {
                what: "certificate chain",
                error,
            })?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        if chain.is_empty() {
            return Err(SvidError::EmptyChain);
        }
        if svid.x509_svid_key.is_empty() {
            return Err(SvidError::NoKey);
        }
        let bundle = proto::split_der(&svid.bundle).map_err(|error| SvidError::Der {
            what: "bundle",
            error,
        })?;
        // Without a bundle in the message, the one in use.
        let roots = if bundle.is_empty() {
            self.trust.roots()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for der in &bundle {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| SvidError::Bundle(e.to_string()))?;
            }
            Arc::new(roots)
        };
        let federated: BTreeMap<String, Vec<u8>> = msg
            .federated_bundles
            .iter()
            .map(|(d, b)| (d.clone(), b.clone()))
            .collect();
        let federation = if federated.is_empty() || federated == self.federated {
            None
        } else {
            Some(self.federation(&federated)?)
        };
        let leaf = chain.remove(0);
        let verified = verify::verify_svid(&leaf, &chain, &roots.roots, &self.spiffe_id)?;
        let now = SystemTime::now();
        if verified.not_after <= now {
            return Err(SvidError::AlreadyExpired);
        }
        chain.insert(0, leaf);
        let key = PrivateKeyDer::Pkcs8(svid.x509_svid_key.clone().into());
        self.store.set(chain, key)?;
        let bundle_changed = !bundle.is_empty() && bundle != self.bundle;
        if bundle_changed {
            self.trust.set(roots)?;
            self.metrics
                .set_trust_anchors(bundle.iter().map(|d| d.as_slice()));
            self.bundle = bundle;
        }
        if let Some(federation) = federation {
            tracing::info!(trust_domain = federation.local_domain(), federated = ?federation.domains(), "federated bundles from the Workload API; new handshakes use them");
            self.trust.set_federation(Some(federation));
            self.federated = federated;
        }
        self.metrics.record_ok(verified.not_after, now);
        self.status.send_replace(IdentityStatus::Ready {
            expiry: verified.not_after,
        });
        Ok(Applied {
            expiry: verified.not_after,
            bundle_changed,
        })
    }

    /// The federation a message's federated bundles describe, local to the
    /// SVID's trust domain.
    fn federation(
        &self,
        bundles: &BTreeMap<String, Vec<u8>>,
    ) -> Result<ztmesh_tls::Federation, SvidError> {
        let local = ztmesh_tls::federation::trust_domain_of(&self.spiffe_id)
            .ok_or_else(|| SvidError::Bundle(format!("{} has no trust domain", self.spiffe_id)))?;
        let mut roots = BTreeMap::new();
        for (domain, der) in bundles {
            let mut store = rustls::RootCertStore::empty();
            let certs = proto::split_der(der).map_err(|error| SvidError::Der {
                what: "federated bundle",
                error,
            })?;
            for cert in certs {
                store.add(CertificateDer::from(cert)).map_err(|e| {
                    SvidError::Bundle(format!("the federated bundle of {domain}: {e}"))
                })?;
            }
            roots.insert(domain.clone(), Arc::new(store));
        }
        Ok(ztmesh_tls::Federation::new(local, roots)?)
    }

    /// Runs forever: connect, follow the stream, reconnect on its end.
    pub async fn run(mut self) {
        let mut failures: u32 = 0;
        let mut expires_at: Option<(Instant, SystemTime)> = None;
        loop {
            match self.follow(&mut expires_at, &mut failures).await {
                Ok(()) => {
                    tracing::warn!(addr = %self.addr.0.display(), "the Workload API closed the SVID stream; reconnecting")
                }
                Err(error) => {
                    tracing::warn!(%error, "Workload API unavailable; keeping the current SVID")
                }
            }
            failures += 1;
            let wait = backoff(failures);
            self.wait(Instant::now() + wait, &mut expires_at).await;
        }
    }

    /// One connection's stream, until it ends or fails.
    async fn follow(
        &mut self,
        expires_at: &mut Option<(Instant, SystemTime)>,
        failures: &mut u32,
    ) -> Result<(), ClientError> {
        let mut client = WorkloadApiClient::connect(&self.addr).await?;
        let mut stream = client.fetch_x509_svid().await?;
        loop {
            let next = async {
                match *expires_at {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let msg = tokio::select! {
                msg = stream.message() => msg,
                () = next => {
                    self.expire(expires_at);
                    continue;
                }
            };
            let Some(msg) = msg.map_err(ClientError::Rpc)? else {
                return Ok(());
            };
            match self.apply(msg) {
                Ok(applied) => {
                    *failures = 0;
                    let lifetime = applied
                        .expiry
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    *expires_at = Some((Instant::now() + lifetime, applied.expiry));
                    tracing::info!(identity = %self.spiffe_id, expiry = %ztmesh_identity::rfc3339(applied.expiry), bundle_changed = applied.bundle_changed, "X.509-SVID from the Workload API installed");
                }
                Err(error) => {
                    self.metrics.record_error();
                    tracing::warn!(identity = %self.spiffe_id, %error, "Workload API update refused; keeping the current SVID and bundle");
                }
            }
        }
    }

    /// Sleeps until `until`, marking the SVID expired if it expires first.
    async fn wait(&self, until: Instant, expires_at: &mut Option<(Instant, SystemTime)>) {
        if let Some((at, _)) = *expires_at
            && at < until
        {
            tokio::time::sleep_until(at).await;
            self.expire(expires_at);
        }
        tokio::time::sleep_until(until).await;
    }

    fn expire(&self, expires_at: &mut Option<(Instant, SystemTime)>) {
        if let Some((_, expiry)) = expires_at.take() {
            self.status.send_replace(IdentityStatus::Expired { expiry });
            tracing::error!(identity = %self.spiffe_id, ?expiry, "X.509-SVID expired before the Workload API sent a new one; peers will refuse it");
        }
    }
}
