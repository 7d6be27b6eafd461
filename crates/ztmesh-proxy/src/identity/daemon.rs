//! Keeping the workload's certificate fresh.
//!
//! Each round: read the token (it may have been rotated), send Certify with
//! our CSR, verify the returned chain, install it in the credentials store
//! (new handshakes use it; established connections are untouched), then
//! sleep until 70% of the certificate's lifetime, bounded by the min/max
//! refresh settings, as linkerd2-proxy does. On failure the current
//! certificate stays in use and the next attempt backs off exponentially
//! (1s doubling to 60s). If the certificate expires before a renewal
//! succeeds the status turns `Expired`, which makes the proxy unready.
//!
//! All waiting is on `tokio::time`, so tests drive it on a paused clock.

use super::config::IdentityConfig;
use super::documents::Documents;
use super::metrics::IdentityMetrics;
use super::verify::{self, VerifyError};
use linkerd2_proxy_api::identity::{
    CertifyRequest, CertifyResponse, identity_client::IdentityClient, identity_server::Identity,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use ztmesh_tls::{CredentialsStore, Trust};

pub(crate) const CERTIFY_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How the daemon reaches the Identity service.
pub trait CertifyClient: Send {
    fn certify(
        &mut self,
        req: CertifyRequest,
    ) -> impl Future<Output = Result<CertifyResponse, tonic::Status>> + Send;
}

impl CertifyClient for IdentityClient<tonic::transport::Channel> {
    async fn certify(&mut self, req: CertifyRequest) -> Result<CertifyResponse, tonic::Status> {
        IdentityClient::certify(self, req)
            .await
            .map(|r| r.into_inner())
    }
}

/// Any Identity service implementation, called in process (no socket).
pub struct InProcess<S>(pub Arc<S>);

impl<S: Identity> CertifyClient for InProcess<S> {
    async fn certify(&mut self, req: CertifyRequest) -> Result<CertifyResponse, tonic::Status> {
        self.0
            .certify(tonic::Request::new(req))
            .await
            .map(|r| r.into_inner())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityStatus {
    /// No certificate yet.
    Pending,
    /// A verified, unexpired certificate is in use.
    Ready { expiry: SystemTime },
    /// The last certificate expired before it could be renewed.
    Expired { expiry: SystemTime },
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("reading the token file {}: {error}", path.display())]
    Token {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the identity service answered {code:?}: {message}", code = .0.code(), message = .0.message())]
    Rpc(tonic::Status),
    #[error("the identity service did not answer within {CERTIFY_TIMEOUT:?}")]
    Timeout,
    #[error("the identity service's answer has no valid_until")]
    NoExpiry,
    #[error("the issued certificate is refused: {0}")]
    Verify(#[from] VerifyError),
    #[error("the issued certificate has already expired")]
    AlreadyExpired,
    #[error("the issued certificate cannot be used for TLS: {0}")]
    Tls(#[from] ztmesh_tls::TlsError),
}

pub struct IdentityDaemon<C> {
    name: String,
    documents: Documents,
    token_file: PathBuf,
    /// The bundle an issued chain must chain to (it may change).
    trust: Arc<Trust>,
    min_refresh: Duration,
    max_refresh: Duration,
    client: C,
    store: Arc<CredentialsStore>,
    status: watch::Sender<IdentityStatus>,
    metrics: Arc<IdentityMetrics>,
}

impl<C: CertifyClient> IdentityDaemon<C> {
    pub fn new(
        config: &IdentityConfig,
        documents: Documents,
        client: C,
    ) -> Result<Self, verify::AnchorsError> {
        let (status, _) = watch::channel(IdentityStatus::Pending);
        let metrics = Arc::new(IdentityMetrics::default());
        if let Ok(certs) =
            ztmesh_identity::pem::certificates(config.trust_anchors_pem.as_bytes(), "trust anchors")
        {
            metrics.set_trust_anchors(certs.iter().map(|c| c.as_ref()));
        }
        Ok(Self {
            name: config.local_name.clone(),
            trust: {
                verify::anchors(config.trust_anchors_pem.as_bytes())?;
                Trust::from_pem(config.trust_anchors_pem.as_bytes())?
            },
            documents,
            token_file: config.token_file.clone(),
            min_refresh: config.min_refresh,
            max_refresh: config.max_refresh,
            client,
            store: CredentialsStore::new(),
            status,
            metrics,
        })
    }

    /// Checks issued chains against `trust`, the bundle the proxy's
    /// handshakes use, so a rotated anchor is followed here too.
    pub fn with_trust(mut self, trust: Arc<Trust>) -> Self {
        self.trust = trust;
        self
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

    /// Runs forever.
    pub async fn run(mut self) {
        let mut failures: u32 = 0;
        let mut expires_at: Option<(Instant, SystemTime)> = None;
        loop {
            let next = match self.refresh().await {
                Ok(expiry) => {
                    failures = 0;
                    let lifetime = expiry.duration_since(SystemTime::now()).unwrap_or_default();
                    let now = Instant::now();
                    expires_at = Some((now + lifetime, expiry));
                    let wait = refresh_in(lifetime, self.min_refresh, self.max_refresh);
                    tracing::info!(identity = %self.name, expiry = %ztmesh_identity::rfc3339(expiry), refresh_in = ?wait, "certified identity");
                    now + wait
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.record_error();
                    let wait = backoff(failures);
                    tracing::warn!(identity = %self.name, %error, retry_in = ?wait, "failed to refresh identity; keeping the current certificate");
                    let mut next = Instant::now() + wait;
                    if let Some((at, expiry)) = expires_at {
                        if at <= Instant::now() {
                            self.mark_expired(expiry);
                        } else {
                            // Wake at expiry to report it, if that comes first.
                            next = next.min(at);
                        }
                    }
                    next
                }
            };
            tokio::time::sleep_until(next).await;
            if let Some((at, expiry)) = expires_at
                && at <= Instant::now()
            {
                self.mark_expired(expiry);
            }
        }
    }

    fn mark_expired(&self, expiry: SystemTime) {
        let changed = self.status.send_if_modified(|s| {
            let was_ready = matches!(s, IdentityStatus::Ready { .. });
            *s = IdentityStatus::Expired { expiry };
            was_ready
        });
        if changed {
            tracing::error!(identity = %self.name, ?expiry, "identity certificate expired before it could be renewed; peers will refuse it");
        }
    }

    /// One Certify round; returns the new certificate's expiry.
    pub async fn refresh(&mut self) -> Result<SystemTime, RefreshError> {
        let token = std::fs::read(&self.token_file).map_err(|error| RefreshError::Token {
            path: self.token_file.clone(),
            error,
        })?;
        let req = CertifyRequest {
            identity: self.name.clone(),
            token,
            certificate_signing_request: self.documents.csr_der.clone(),
        };
        let rsp = tokio::time::timeout(CERTIFY_TIMEOUT, self.client.certify(req))
            .await
            .map_err(|_| RefreshError::Timeout)?
            .map_err(RefreshError::Rpc)?;
        rsp.valid_until.ok_or(RefreshError::NoExpiry)?;
        let leaf = CertificateDer::from(rsp.leaf_certificate);
        let intermediates: Vec<CertificateDer<'static>> = rsp
            .intermediate_certificates
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let roots = self.trust.roots();
        let verified = verify::verify(
            &leaf,
            &intermediates,
            &roots.roots,
            &self.name,
            &self.documents.public_key,
        )?;
        let now = SystemTime::now();
        if verified.not_after <= now {
            return Err(RefreshError::AlreadyExpired);
        }
        let mut chain = vec![leaf];
        chain.extend(intermediates);
        let key = PrivateKeyDer::Pkcs8(self.documents.key_pkcs8.clone().into());
        self.store.set(chain, key)?;
        self.metrics.record_ok(verified.not_after, now);
        self.status.send_replace(IdentityStatus::Ready {
            expiry: verified.not_after,
        });
        Ok(verified.not_after)
    }
}

/// 70% of the remaining lifetime, within [min, max].
pub(crate) fn refresh_in(lifetime: Duration, min: Duration, max: Duration) -> Duration {
    (lifetime * 7 / 10).clamp(min, max)
}

/// 1s, 2s, 4s, ... up to 60s.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (BACKOFF_MIN * 2u32.pow(exp)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_schedule_table() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(86400));
        let cases = [
            (86400, 60480),      // 24h leaf: renew after 16.8h
            (3600, 2520),        // 1h leaf
            (10, 10),            // below min: min
            (0, 10),             // expired: min
            (10 * 86400, 86400), // above max: max
        ];
        for (lifetime, want) in cases {
            assert_eq!(
                refresh_in(Duration::from_secs(lifetime), min, max),
                Duration::from_secs(want),
                "{lifetime}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let got: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
