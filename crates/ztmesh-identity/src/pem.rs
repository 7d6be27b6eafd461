//! Reading certificates and keys that may arrive as PEM or DER.

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{what}: not valid PEM: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what}: holds no {expected}")]
    Empty {
        what: String,
        expected: &'static str,
    },
    #[error("{what}: holds {count} private keys; expected exactly one")]
    ManyKeys { what: String, count: usize },
}

/// Every `CERTIFICATE` block in `pem`, in order; `what` names the source in errors.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Malformed {
            what: what.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            what: what.into(),
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

/// The one private key (PKCS#8, SEC1 or PKCS#1) in `pem`.
pub fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut keys = Vec::new();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        let item = item.map_err(|e| PemError::Malformed {
            what: what.into(),
            reason: e.to_string(),
        })?;
        match item {
            rustls_pemfile::Item::Pkcs8Key(k) => keys.push(PrivateKeyDer::Pkcs8(k)),
            rustls_pemfile::Item::Sec1Key(k) => keys.push(PrivateKeyDer::Sec1(k)),
            rustls_pemfile::Item::Pkcs1Key(k) => keys.push(PrivateKeyDer::Pkcs1(k)),
            _ => {}
        }
    }
    match keys.len() {
        0 => Err(PemError::Empty {
            what: what.into(),
            expected: "PRIVATE KEY block",
        }),
        1 => Ok(keys.pop().expect("one key")),
        count => Err(PemError::ManyKeys {
            what: what.into(),
            count,
        }),
    }
}

/// A CSR as the proxy sends it: DER (what linkerd2-proxy sends), or PEM
/// (what the proto comment describes). Returns DER.
pub fn csr_der(bytes: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if bytes.first() == Some(&0x30) {
        return Some(std::borrow::Cow::Borrowed(bytes));
    }
    let (item, _) = rustls_pemfile::read_one_from_slice(bytes).ok()??;
    match item {
        rustls_pemfile::Item::Csr(der) => Some(std::borrow::Cow::Owned(der.to_vec())),
        _ => None,
    }
}

pub fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
