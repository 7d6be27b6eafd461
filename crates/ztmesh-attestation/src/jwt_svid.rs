//! JWT-SVIDs: ES256 tokens whose subject is a workload's SPIFFE ID.
//!
//! The controller signs them ([`JwtSigner`], its key in a file beside the
//! issuer, made at first start) for nodes that may have the identity, as
//! it signs X.509-SVIDs, so no node holds a key that the trust domain's
//! verifiers trust. Its public half is the trust domain's JWT bundle: a
//! JWKS whose key has a `kid` and `use: jwt-svid`, as the SPIFFE JWT
//! bundle format says. [`JwtBundle`] reads such a JWKS and validates
//! tokens against it (signature, expiry, audience, trust domain).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The JWT-SVID key's file, beside the issuer in the identity directory.
pub const KEY_FILE: &str = "jwt-svid.key";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT-SVID key: {0}")]
    Key(String),
    #[error("signing the JWT-SVID: {0}")]
    Sign(String),
    #[error("at least one audience is required")]
    NoAudience,
    #[error("the JWT-SVID is not valid: {0}")]
    Invalid(String),
    #[error("the JWT-SVID's key id {0:?} is not in this trust domain's JWT bundle")]
    UnknownKey(Option<String>),
    #[error("the JWT-SVID's subject {0:?} is not a SPIFFE ID of trust domain {1:?}")]
    ForeignSubject(String, String),
    #[error("the JWT bundle is not a JWKS of P-256 keys with key ids: {0}")]
    BadJwks(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    aud: &'a [String],
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct Subject {
    sub: String,
}

pub struct JwtSigner {
    encoding: EncodingKey,
    kid: String,
    jwks: Vec<u8>,
    ttl: Duration,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    kid: Option<String>,
}

impl JwtSigner {
    /// From a PKCS#8 ECDSA P-256 key; tokens valid for `ttl`.
    pub fn from_pkcs8(der: &[u8], ttl: Duration) -> Result<Self, JwtError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| JwtError::Key("not a PKCS#8 ECDSA P-256 private key".into()))?;
        // The uncompressed point: 0x04 || X || Y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(JwtError::Key("unexpected public key encoding".into()));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, point);
        let kid = B64.encode(&digest.as_ref()[..16]);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": B64.encode(&point[1..33]),
                "y": B64.encode(&point[33..]),
                "kid": kid,
                "use": "jwt-svid",
            }]
        });
        Ok(Self {
            encoding: EncodingKey::from_ec_der(der),
            kid,
            jwks: serde_json::to_vec(&jwks).map_err(|e| JwtError::Key(e.to_string()))?,
            ttl,
        })
    }

    /// A new key (PKCS#8 DER), for tests and first starts.
    pub fn generate_pkcs8() -> Result<Vec<u8>, JwtError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| JwtError::Key(e.to_string()))
    }

    /// The key in `path` (PEM), made and written (mode 0600) if absent.
    pub fn load_or_create(path: &Path, ttl: Duration) -> Result<Self, JwtError> {
        let what = path.display().to_string();
        match std::fs::read(path) {
            Ok(pem) => {
                let key = ztmesh_identity::pem::private_key(&pem, &what)
                    .map_err(|e| JwtError::Key(e.to_string()))?;
                match key {
                    rustls_pki_types::PrivateKeyDer::Pkcs8(k) => {
                        Self::from_pkcs8(k.secret_pkcs8_der(), ttl)
                    }
                    _ => Err(JwtError::Key(format!("{what}: expected a PKCS#8 key"))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let der = Self::generate_pkcs8()?;
                let pem = ztmesh_identity::pem::encode("PRIVATE KEY", &der);
                ztmesh_identity::install::write_atomically(path, pem.as_bytes(), true)
                    .map_err(|e| JwtError::Key(format!("writing {what}: {e}")))?;
                Self::from_pkcs8(&der, ttl)
            }
            Err(e) => Err(JwtError::Key(format!("reading {what}: {e}"))),
        }
    }

    /// The JWKS document of the trust domain's JWT bundle.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// A JWT-SVID for `spiffe_id` and `audience`, issued at `now`.
    pub fn sign(
        &self,
        spiffe_id: &str,
        audience: &[String],
        now: SystemTime,
    ) -> Result<String, JwtError> {
        if audience.is_empty() || audience.iter().any(|a| a.is_empty()) {
            return Err(JwtError::NoAudience);
        }
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(
            &header,
            &Claims {
                sub: spiffe_id,
                aud: audience,
                iat,
                exp: iat + self.ttl.as_secs(),
            },
            &self.encoding,
        )
        .map_err(|e| JwtError::Sign(e.to_string()))
    }
}

/// A trust domain's JWT bundle, for validating JWT-SVIDs.
pub struct JwtBundle {
    trust_domain: String,
    keys: HashMap<String, DecodingKey>,
}

impl JwtBundle {
    pub fn from_jwks(trust_domain: &str, jwks: &[u8]) -> Result<Self, JwtError> {
        let bad = |m: String| JwtError::BadJwks(m);
        let doc: Jwks = serde_json::from_slice(jwks).map_err(|e| bad(e.to_string()))?;
        let mut keys = HashMap::new();
        for k in doc.keys {
            let (Some(kid), Some(x), Some(y)) = (k.kid, k.x, k.y) else {
                return Err(bad("a key lacks kid, x or y".into()));
            };
            if k.kty != "EC" || k.crv.as_deref() != Some("P-256") {
                return Err(bad(format!("key {kid:?} is not EC P-256")));
            }
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| bad(e.to_string()))?;
            keys.insert(kid, key);
        }
        Ok(Self {
            trust_domain: trust_domain.into(),
            keys,
        })
    }

    /// Validates `token` for `audience`: the SPIFFE ID and every claim.
    pub fn validate(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(String, serde_json::Map<String, serde_json::Value>), JwtError> {
        if audience.is_empty() {
            return Err(JwtError::NoAudience);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| JwtError::UnknownKey(header.kid.clone()))?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.required_spec_claims = ["exp", "aud", "sub"].map(String::from).into();
        v.leeway = 0;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &v)
                .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let Subject { sub } =
            serde_json::from_value(serde_json::Value::Object(data.claims.clone()))
                .map_err(|e| JwtError::Invalid(e.to_string()))?;
        if !sub.starts_with(&format!("spiffe://{}/", self.trust_domain)) {
            return Err(JwtError::ForeignSubject(sub, self.trust_domain.clone()));
        }
        Ok((sub, data.claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> JwtSigner {
        JwtSigner::from_pkcs8(
            &JwtSigner::generate_pkcs8().expect("key"),
            Duration::from_secs(300),
        )
        .expect("signer")
    }

    #[test]
    fn sign_and_validate() {
        let a = signer();
        let b = signer();
        let bundle = JwtBundle::from_jwks("cluster.local", a.jwks()).expect("JWKS");
        let id = "spiffe://cluster.local/ns/demo/sa/web";
        let now = SystemTime::now();
        let aud = vec!["vault".to_string(), "gw".to_string()];
        let token = a.sign(id, &aud, now).expect("sign");
        let expired = a
            .sign(id, &aud, now - Duration::from_secs(600))
            .expect("sign");
        let foreign = a
            .sign("spiffe://other.org/ns/demo/sa/web", &aud, now)
            .expect("sign");
        let from_b = b.sign(id, &aud, now).expect("sign");
        // (token, audience) -> subject or error check
        type Check = fn(&JwtError) -> bool;
        let table: Vec<(&str, &str, Result<&str, Check>)> = vec![
            (&token, "vault", Ok(id)),
            (&token, "gw", Ok(id)),
            (&token, "other", Err(|e| matches!(e, JwtError::Invalid(_)))),
            (&token, "", Err(|e| *e == JwtError::NoAudience)),
            (
                &expired,
                "vault",
                Err(|e| matches!(e, JwtError::Invalid(_))),
            ),
            (
                &foreign,
                "vault",
                Err(|e| matches!(e, JwtError::ForeignSubject(..))),
            ),
            (
                &from_b,
                "vault",
                Err(|e| matches!(e, JwtError::UnknownKey(_))),
            ),
            (
                "not.a.jwt",
                "vault",
                Err(|e| matches!(e, JwtError::Invalid(_))),
            ),
        ];
        for (i, (t, audience, want)) in table.into_iter().enumerate() {
            match (bundle.validate(t, audience), want) {
                (Ok((sub, claims)), Ok(want)) => {
                    assert_eq!(sub, want, "row {i}");
                    assert!(claims.contains_key("exp"), "row {i}");
                }
                (Err(e), Err(check)) => assert!(check(&e), "row {i}: {e}"),
                (got, _) => panic!("row {i}: unexpected {got:?}"),
            }
        }
        assert_eq!(a.sign(id, &[], now), Err(JwtError::NoAudience));
        let jwks: serde_json::Value = serde_json::from_slice(a.jwks()).expect("json");
        assert_eq!(jwks["keys"][0]["use"], "jwt-svid");
        for bad in [
            &b"{}"[..],
            b"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"x\":\"a\",\"y\":\"b\"}]}",
        ] {
            assert!(JwtBundle::from_jwks("cluster.local", bad).is_err());
        }
    }

    #[test]
    fn key_file_is_made_once_and_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(KEY_FILE);
        let first = JwtSigner::load_or_create(&path, Duration::from_secs(60)).expect("made");
        let again = JwtSigner::load_or_create(&path, Duration::from_secs(60)).expect("read");
        assert_eq!(first.jwks(), again.jwks(), "the same key after a restart");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret: {mode:o}");
    }
}
