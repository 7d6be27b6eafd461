//! The proxy's private key and CSR.

use std::path::Path;

pub struct Documents {
    /// PKCS#8 DER; never sent anywhere.
    pub key_pkcs8: Vec<u8>,
    pub csr_der: Vec<u8>,
    /// The key's public point, to check that an issued leaf is ours.
    pub public_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("{}: {error}", path.display())]
    Read {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("generating the identity key failed: {0}")]
    Generate(String),
}

impl Documents {
    /// A fresh P-256 key and a CSR naming exactly `name`.
    pub fn generate(name: &str) -> Result<Self, DocumentsError> {
        let err = |e: rcgen::Error| DocumentsError::Generate(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(err)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(err)?;
        Ok(Self {
            key_pkcs8: key.serialize_der(),
            csr_der: csr.der().to_vec(),
            public_key: key.public_key_raw().to_vec(),
        })
    }

    /// `key.p8` and `csr.der` from Linkerd's identity directory.
    pub fn load(dir: &Path) -> Result<Self, DocumentsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(b) if b.is_empty() => Err(DocumentsError::Invalid {
                    path,
                    reason: "the file is empty".into(),
                }),
                Ok(b) => Ok(b),
                Err(error) => Err(DocumentsError::Read { path, error }),
            }
        };
        let key_pkcs8 = read("key.p8")?;
        let csr_der = read("csr.der")?;
        let key = rcgen::KeyPair::from_der_and_sign_algo(
            &rustls_pki_types::PrivateKeyDer::Pkcs8(key_pkcs8.clone().into()),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .map_err(|_| DocumentsError::Invalid {
            path: dir.join("key.p8"),
            reason: "not a PKCS#8 ECDSA P-256 private key".into(),
        })?;
        Ok(Self {
            public_key: key.public_key_raw().to_vec(),
            key_pkcs8,
            csr_der,
        })
    }
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("key_pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}
