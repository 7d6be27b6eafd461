//! Test support shared by every tier of ztmesh's tests; never a dependency of
//! shipped code (only `[dev-dependencies]` name it).
//!
//! [`TestPki`] is a real install in a temporary directory (trust anchor,
//! issuer, token key, written by the same code as `ztmesh install`), with
//! helpers to mint tokens, key pairs and CSRs for any identity.
//! With the `control-plane` feature, [`control_plane`] runs the real Identity
//! service in process (with a switch to take it down) or on a loopback port,
//! and [`profiles`] builds ServiceProfiles as the controller sends them.

#![forbid(unsafe_code)]

use rcgen::{CertificateParams, KeyPair};
use std::path::Path;
use std::time::{Duration, SystemTime};
use ztmesh_identity::install::{InstallOptions, install};
use ztmesh_identity::token::{ServiceAccount, TokenSigner};
use ztmesh_identity::{Ca, IdentityName, Issuer, TrustDomain};

/// A throw-away install: anchor, issuer and token key in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
    trust: TrustDomain,
    tokens: TokenSigner,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        install(dir.path(), &InstallOptions::default(), SystemTime::now())
            .expect("install into a temporary directory");
        let tokens = TokenSigner::from_pem(
            &std::fs::read(dir.path().join("token.key")).expect("token.key"),
            "token.key",
        )
        .expect("token key");
        Self {
            dir,
            trust: TrustDomain::default(),
            tokens,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust
    }

    pub fn identity(&self, ns: &str, sa: &str) -> IdentityName {
        self.trust.identity(ns, sa).expect("valid test identity")
    }

    pub fn issuer(&self) -> Issuer {
        Issuer::load_dir(self.dir(), SystemTime::now()).expect("test issuer loads")
    }

    /// A CA with the given leaf lifetime.
    pub fn ca(&self, ttl: Duration) -> Ca {
        Ca::new(self.issuer(), self.trust.clone(), ttl)
    }

    pub fn anchors_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir().join("ca.crt")).expect("ca.crt")
    }

    pub fn token_signer(&self) -> &TokenSigner {
        &self.tokens
    }

    /// A token for `ns/sa`, valid for an hour.
    pub fn token(&self, ns: &str, sa: &str) -> String {
        self.token_issued_at(ns, sa, Duration::from_secs(3600), SystemTime::now())
    }

    /// A token for `ns/sa` issued at `at` for `ttl` (in the past for expired ones).
    pub fn token_issued_at(&self, ns: &str, sa: &str, ttl: Duration, at: SystemTime) -> String {
        self.tokens
            .sign(
                &ServiceAccount {
                    namespace: ns.into(),
                    name: sa.into(),
                },
                ttl,
                at,
            )
            .expect("sign token")
    }
}

/// A fresh P-256 key and a DER CSR naming exactly `identity`, as a proxy makes them.
pub fn csr_for(identity: &str) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate key");
    let mut params = CertificateParams::new(vec![identity.to_string()]).expect("CSR params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).expect("serialize CSR");
    (key, csr.der().to_vec())
}

#[cfg(feature = "control-plane")]
pub mod apps;
#[cfg(feature = "control-plane")]
pub mod control_plane;
#[cfg(feature = "control-plane")]
pub mod profiles;
