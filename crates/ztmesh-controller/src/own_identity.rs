//! The controller's own TLS identity, for connections off loopback:
//! `linkerd-identity.{cp-ns}.serviceaccount.identity.{cp-ns}.{domain}`,
//! issued directly by its CA (no token needed), renewed at 70% of its
//! lifetime and whenever the issuer changes.

use std::sync::Arc;
use std::time::SystemTime;
use ztmesh_identity::csr::P256PublicKey;
use ztmesh_identity::{Ca, IdentityName};
use ztmesh_tls::CredentialsStore;

/// Why the controller could not make or renew its own certificate.
#[derive(Debug, thiserror::Error)]
pub enum OwnIdentityError {
    #[error("generating the controller's key")]
    Key(#[from] rcgen::Error),
    #[error("issuing the controller's certificate")]
    Issue(#[from] ztmesh_identity::ca::CaError),
    #[error("installing the controller's certificate")]
    Install(#[from] ztmesh_tls::TlsError),
}

/// A certificate of the controller's own, kept current in a
/// [`CredentialsStore`] that its TLS listeners read.
pub struct OwnIdentity {
    name: IdentityName,
    key: rcgen::KeyPair,
    store: Arc<CredentialsStore>,
    renew_at: Option<SystemTime>,
    issuer: Option<String>,
}

impl OwnIdentity {
    pub fn new(name: IdentityName) -> Result<Self, OwnIdentityError> {
        Ok(Self {
            name,
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            store: CredentialsStore::new(),
            renew_at: None,
            issuer: None,
        })
    }

    pub fn store(&self) -> Arc<CredentialsStore> {
        self.store.clone()
    }

    /// Issues a new certificate when due or when the issuer changed.
    pub fn refresh(&mut self, ca: &Ca, now: SystemTime) -> Result<(), OwnIdentityError> {
        let issuer = ca.issuer().fingerprint();
        let due = self.renew_at.is_none_or(|at| now >= at);
        if !due && self.issuer.as_ref() == Some(&issuer) {
            return Ok(());
        }
        let public_key = P256PublicKey::from_point(self.key.public_key_raw().to_vec());
        let issued = ca.issue(&self.name, &public_key, now)?;
        let issued_until = issued.valid_until;
        let lifetime = issued_until.duration_since(now).unwrap_or_default();
        let mut chain = vec![issued.leaf];
        chain.extend(issued.intermediates);
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.key.serialize_der().into());
        self.store.set(chain, key)?;
        self.renew_at = Some(now + lifetime * 7 / 10);
        self.issuer = Some(issuer);
        tracing::info!(identity = %self.name, valid_until = %ztmesh_identity::rfc3339(issued_until), "controller certificate issued");
        Ok(())
    }
}
