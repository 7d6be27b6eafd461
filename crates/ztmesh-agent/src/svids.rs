//! X.509-SVIDs from the controller, one per identity, kept fresh.
//!
//! The first caller attested to an identity starts its slot: a task that
//! makes a key, asks the controller's `NodeIdentity.CertifyWorkload` for a
//! certificate (the CSR names the identity's DNS name; the controller's CA
//! adds the `spiffe://` URI SAN, so the SVID is the workload's mesh
//! certificate), publishes it, and renews at two thirds of its lifetime.
//! A failure is published too (callers waiting get it as the reason) and
//! retried with backoff; a still-valid SVID is kept meanwhile. The trust
//! bundle starts from the anchors file and follows the anchors the
//! controller returns.

use crate::node_token::NodeToken;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tonic::transport::Channel;
use ztmesh_attestation::WorkloadIdentity;
use ztmesh_identity::TrustDomain;
use ztmesh_spiffe_api::node::CertifyWorkloadRequest;
use ztmesh_spiffe_api::node::node_identity_client::NodeIdentityClient;

/// One X.509-SVID with its key.
#[derive(Debug)]
pub struct Svid {
    pub spiffe_id: String,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    pub valid_until: SystemTime,
}

/// A slot's state: nothing yet, an SVID, or why there is none.
pub type SlotState = Option<Result<Arc<Svid>, Arc<str>>>;

/// DER trust anchors of the trust domain.
pub type Bundle = Arc<Vec<Vec<u8>>>;

#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error("making the key or CSR: {0}")]
    Csr(#[from] rcgen::Error),
    #[error("the controller refused: {}: {}", .0.code(), .0.message())]
    Refused(#[from] tonic::Status),
    #[error(transparent)]
    NodeToken(#[from] crate::node_token::NodeTokenReadError),
    #[error("the identity is invalid: {0}")]
    BadIdentity(ztmesh_identity::NameError),
    #[error("the controller answered without a certificate")]
    Empty,
}

pub struct Svids {
    client: NodeIdentityClient<Channel>,
    node_token: NodeToken,
    trust: TrustDomain,
    slots: Mutex<HashMap<WorkloadIdentity, watch::Sender<SlotState>>>,
    bundle: watch::Sender<Bundle>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Svids {
    fn drop(&mut self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}

impl Svids {
    pub fn new(
        channel: Channel,
        node_token: NodeToken,
        trust: TrustDomain,
        anchors: Vec<Vec<u8>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client: NodeIdentityClient::new(channel),
            node_token,
            trust,
            slots: Mutex::new(HashMap::new()),
            bundle: watch::channel(Arc::new(anchors)).0,
            tasks: Mutex::new(Vec::new()),
        })
    }

    pub fn trust(&self) -> &TrustDomain {
        &self.trust
    }

    pub fn bundle(&self) -> watch::Receiver<Bundle> {
        self.bundle.subscribe()
    }

    pub fn spiffe_id(&self, id: &WorkloadIdentity) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust.domain(),
            id.namespace,
            id.service_account
        )
    }

    /// The SVID slot of `id`, started at the first call.
    pub fn subscribe(self: &Arc<Self>, id: &WorkloadIdentity) -> watch::Receiver<SlotState> {
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some(tx) = slots.get(id) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        slots.insert(id.clone(), tx.clone());
        let task = tokio::spawn(keep_fresh(Arc::downgrade(self), id.clone(), tx));
        self.tasks
            .lock()
            .expect("tasks lock")
            .push(task.abort_handle());
        rx
    }

    async fn certify(&self, id: &WorkloadIdentity) -> Result<Svid, CertifyError> {
        let dns = self
            .trust
            .identity(&id.namespace, &id.service_account)
            .map_err(CertifyError::BadIdentity)?
            .to_string();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec![dns])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        let spiffe_id = self.spiffe_id(id);
        let resp = self
            .client
            .clone()
            .certify_workload(CertifyWorkloadRequest {
                node_token: self.node_token.read()?,
                spiffe_id: spiffe_id.clone(),
                certificate_signing_request: csr.der().to_vec(),
            })
            .await?
            .into_inner();
        if resp.leaf_certificate.is_empty() {
            return Err(CertifyError::Empty);
        }
        if !resp.trust_anchors.is_empty() && **self.bundle.borrow() != resp.trust_anchors {
            self.bundle.send_replace(Arc::new(resp.trust_anchors));
        }
        let mut chain = vec![resp.leaf_certificate];
        chain.extend(resp.intermediate_certificates);
        Ok(Svid {
            spiffe_id,
            chain,
            key_pkcs8: key.serialize_der(),
            valid_until: UNIX_EPOCH + Duration::from_secs(resp.valid_until.max(0) as u64),
        })
    }
}

/// Certifies `id` and renews it until the agent is dropped.
async fn keep_fresh(
    svids: std::sync::Weak<Svids>,
    id: WorkloadIdentity,
    tx: watch::Sender<SlotState>,
) {
    const MIN_BACKOFF: Duration = Duration::from_millis(500);
    const MAX_BACKOFF: Duration = Duration::from_secs(30);
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(strong) = svids.upgrade() else {
            return;
        };
        let result = strong.certify(&id).await;
        drop(strong);
        let wait = match result {
            Ok(svid) => {
                let now = SystemTime::now();
                let life = svid.valid_until.duration_since(now).unwrap_or_default();
                tracing::info!(spiffe_id = %svid.spiffe_id, valid_for = ?life, "X.509-SVID issued");
                tx.send_replace(Some(Ok(Arc::new(svid))));
                backoff = MIN_BACKOFF;
                (life * 2 / 3).max(MIN_BACKOFF)
            }
            Err(error) => {
                tracing::warn!(identity = %id, %error, "could not get an X.509-SVID");
                let still_valid =
                    matches!(&*tx.borrow(), Some(Ok(s)) if s.valid_until > SystemTime::now());
                if !still_valid {
                    tx.send_replace(Some(Err(error.to_string().into())));
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}
