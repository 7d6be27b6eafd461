//! The SPIFFE bundle document (SPIFFE Trust Domain and Bundle, section 4):
//! a JWK Set whose `keys` with `use: "x509-svid"` each carry one X.509
//! authority in `x5c`, with `spiffe_sequence` and `spiffe_refresh_hint`.
//!
//! [`parse`] is strict where trust is at stake: a document that is not a
//! JWK Set, an `x509-svid` key whose `x5c` is not exactly one certificate
//! that parses as a trust anchor, or a set with no X.509 authority at all
//! is malformed (the caller then trusts nothing from it). Keys of other
//! uses (`jwt-svid`) and unknown fields are ignored, as the spec asks.
//! [`encode`] writes the local anchors with their public key parameters.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use std::time::Duration;

/// The X.509 part of a trust domain's bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bundle {
    pub(crate) sequence: Option<u64>,
    pub(crate) refresh_hint: Option<Duration>,
    pub(crate) x509_authorities: Vec<CertificateDer<'static>>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BundleError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a JWK Set: `keys` must be an array")]
    NoKeys,
    #[error("keys[{index}]: {reason}")]
    Key { index: usize, reason: String },
    #[error("no X.509 authority (no key with \"use\": \"x509-svid\")")]
    NoAuthorities,
    #[error("`{field}` must be a non-negative integer")]
    Field { field: &'static str },
}

impl Bundle {
    /// The authorities as a PEM bundle.
    pub(crate) fn pem(&self) -> String {
        self.x509_authorities
            .iter()
            .map(|c| ztmesh_identity::pem::encode("CERTIFICATE", c))
            .collect()
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(BundleError::NoKeys)?;
    let number = |field: &'static str| match doc.get(field) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(BundleError::Field { field }),
    };
    let sequence = number("spiffe_sequence")?;
    let refresh_hint = number("spiffe_refresh_hint")?.map(Duration::from_secs);
    let mut x509_authorities = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let bad = |reason: &str| BundleError::Key {
            index,
            reason: reason.to_string(),
        };
        if key.get("use").and_then(Value::as_str) != Some("x509-svid") {
            continue;
        }
        let x5c = key
            .get("x5c")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("an x509-svid key needs `x5c`"))?;
        let [cert] = &x5c[..] else {
            return Err(bad("`x5c` must hold exactly one certificate"));
        };
        let der = cert
            .as_str()
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| bad("`x5c[0]` is not base64"))?;
        let der = CertificateDer::from(der);
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| bad(&format!("`x5c[0]` is not a usable certificate: {e}")))?;
        x509_authorities.push(der);
    }
    if x509_authorities.is_empty() {
        return Err(BundleError::NoAuthorities);
    }
    Ok(Bundle {
        sequence,
        refresh_hint,
        x509_authorities,
    })
}

/// The bundle document for `anchors`. An anchor whose key type is not EC
/// (P-256, P-384) or RSA is left out, with a warning.
pub(crate) fn encode(
    anchors: &[CertificateDer<'_>],
    sequence: u64,
    refresh_hint: Duration,
) -> String {
    let keys: Vec<Value> = anchors
        .iter()
        .filter_map(|der| match jwk(der) {
            Ok(k) => Some(k),
            Err(reason) => {
                tracing::warn!(%reason, "bundle endpoint: a trust anchor left out");
                None
            }
        })
        .collect();
    let doc = json!({
        "keys": keys,
        "spiffe_sequence": sequence,
        "spiffe_refresh_hint": refresh_hint.as_secs(),
    });
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

/// One authority as an `x509-svid` JWK.
fn jwk(der: &CertificateDer<'_>) -> Result<Value, String> {
    use x509_parser::prelude::*;
    use x509_parser::public_key::PublicKey;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let x5c = STANDARD.encode(der.as_ref());
    let spki = cert.public_key();
    match spki.parsed().map_err(|e| e.to_string())? {
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let (crv, len) = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256", 32),
                Some("1.3.132.0.34") => ("P-384", 48),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let data = point.data();
            if data.len() != 1 + 2 * len || data[0] != 4 {
                return Err("the EC point is not uncompressed".into());
            }
            Ok(json!({
                "use": "x509-svid", "kty": "EC", "crv": crv,
                "x": b64(&data[1..1 + len]), "y": b64(&data[1 + len..]),
                "x5c": [x5c],
            }))
        }
        PublicKey::RSA(rsa) => {
            let trim = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b64(&b[start..])
            };
            Ok(json!({
                "use": "x509-svid", "kty": "RSA",
                "n": trim(rsa.modulus), "e": trim(rsa.exponent),
                "x5c": [x5c],
            }))
        }
        _ => Err("unsupported key type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let (a, b) = (anchor(), anchor());
        let doc = encode(&[a.clone(), b.clone()], 7, Duration::from_secs(60));
        let v: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["keys"][0]["use"], "x509-svid");
        assert_eq!(v["keys"][0]["kty"], "EC");
        assert_eq!(v["keys"][0]["crv"], "P-256");
        assert_eq!(v["spiffe_refresh_hint"], 60);
        let bundle = parse(doc.as_bytes()).unwrap();
        assert_eq!(bundle.x509_authorities, vec![a, b]);
        assert_eq!(bundle.sequence, Some(7));
        assert_eq!(bundle.refresh_hint, Some(Duration::from_secs(60)));
        assert_eq!(bundle.pem().matches("BEGIN CERTIFICATE").count(), 2);
    }

    #[test]
    fn malformed_bundles_are_refused_table() {
        let good = STANDARD.encode(anchor().as_ref());
        let key = |x5c: Value| json!({"keys": [{"use": "x509-svid", "kty": "EC", "x5c": x5c}]});
        let cases: Vec<(&str, String, Result<usize, BundleError>)> =
            vec![
            ("one authority", key(json!([good])).to_string(), Ok(1)),
            (
                "jwt-svid keys are ignored",
                json!({"keys": [{"use": "jwt-svid", "kid": "k", "kty": "EC"},
                                {"use": "x509-svid", "x5c": [good]}], "extra": 1})
                .to_string(),
                Ok(1),
            ),
            ("not JSON", "{".into(), Err(BundleError::Json(String::new()))),
            ("no keys", "{}".into(), Err(BundleError::NoKeys)),
            (
                "no x509-svid key",
                json!({"keys": [{"use": "jwt-svid"}]}).to_string(),
                Err(BundleError::NoAuthorities),
            ),
            (
                "two certificates in x5c",
                key(json!([good, good])).to_string(),
                Err(BundleError::Key {
                    index: 0,
                    reason: "`x5c` must hold exactly one certificate".into(),
                }),
            ),
            (
                "x5c not base64",
                key(json!(["%%%"])).to_string(),
                Err(BundleError::Key {
                    index: 0,
                    reason: "`x5c[0]` is not base64".into(),
                }),
            ),
            (
                "x5c not a certificate",
                key(json!([STANDARD.encode(b"junk")])).to_string(),
                Err(BundleError::Key {
                    index: 0,
                    reason: String::new(),
                }),
            ),
            (
                "negative refresh hint",
                json!({"keys": [{"use": "x509-svid", "x5c": [good]}], "spiffe_refresh_hint": -1})
                    .to_string(),
                Err(BundleError::Field {
                    field: "spiffe_refresh_hint",
                }),
            ),
        ];
        for (what, doc, want) in cases {
            let got = parse(doc.as_bytes()).map(|b| b.x509_authorities.len());
            match (&want, &got) {
                (Ok(n), Ok(m)) => assert_eq!(n, m, "{what}"),
                // Messages from other crates are compared by variant.
                (Err(BundleError::Json(_)), Err(BundleError::Json(_))) => {}
                (
                    Err(BundleError::Key { index, reason }),
                    Err(BundleError::Key {
                        index: i,
                        reason: r,
                    }),
                ) if index == i && (reason.is_empty() || reason == r) => {}
                (Err(w), Err(g)) => assert_eq!(w, g, "{what}"),
                _ => panic!("{what}: wanted {want:?}, got {got:?}"),
            }
        }
    }
}
