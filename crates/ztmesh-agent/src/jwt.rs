//! JWT-SVIDs: ES256 tokens whose subject is the caller's SPIFFE ID.
//!
//! The agent signs them with its own P-256 key, made at start and never
//! written to disk; its public half is the trust domain's JWT bundle the
//! agent serves (a JWKS whose key has a `kid` and `use: jwt-svid`, as the
//! SPIFFE JWT bundle format says). A verifier elsewhere (Vault, a gateway)
//! trusts that bundle. [`JwtAuthority::validate`] checks the signature, the
//! expiry and the audience, for ValidateJWTSVID.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("making the JWT signing key: {0}")]
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

pub struct JwtAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwks: Vec<u8>,
    trust_domain: String,
    ttl: Duration,
}

impl JwtAuthority {
    /// A new key for `trust_domain`, signing tokens valid for `ttl`.
    pub fn generate(trust_domain: &str, ttl: Duration) -> Result<Self, JwtError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| JwtError::Key(e.to_string()))?;
        // The uncompressed point: 0x04 || X || Y.
        let point = pair.public_key().as_ref().to_vec();
        if point.len() != 65 || point[0] != 4 {
            return Err(JwtError::Key("unexpected public key encoding".into()));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &point);
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
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ec_der(&point),
            kid,
            jwks: serde_json::to_vec(&jwks).map_err(|e| JwtError::Key(e.to_string()))?,
            trust_domain: trust_domain.into(),
            ttl,
        })
    }

    /// The JWKS document of the trust domain's JWT bundle.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
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
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JwtError::UnknownKey(header.kid));
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.required_spec_claims = ["exp", "aud", "sub"].map(String::from).into();
        v.leeway = 0;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.decoding,
            &v,
        )
        .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let Subject { sub } =
            serde_json::from_value(serde_json::Value::Object(data.claims.clone()))
                .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let prefix = format!("spiffe://{}/", self.trust_domain);
        if !sub.starts_with(&prefix) {
            return Err(JwtError::ForeignSubject(sub, self.trust_domain.clone()));
        }
        Ok((sub, data.claims))
    }
}

/// JSON claims as a protobuf Struct (ValidateJWTSVIDResponse.claims).
pub fn to_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_validate() {
        let a = JwtAuthority::generate("cluster.local", Duration::from_secs(300)).expect("key");
        let b = JwtAuthority::generate("cluster.local", Duration::from_secs(300)).expect("key");
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
            match (a.validate(t, audience), want) {
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
        assert_eq!(jwks["keys"][0]["kty"], "EC");
    }
}
