//! Proof of identity: service-account tokens.
//!
//! [`TokenAuthenticator`] is what the CA asks "which service account does
//! this token prove?". On Kubernetes that is a TokenReview (a later adapter);
//! in local mode it is [`TokenVerifier`], checking JWTs that `ztmesh token
//! create` signed with the install's ES256 token key. Their claims follow
//! Kubernetes' projected service-account tokens (`sub` is
//! `system:serviceaccount:{ns}:{sa}`, the audience is `identity.l5d.io`), so
//! a token from either source reads the same.
//!
//! Signing and signature verification are `jsonwebtoken`'s (with aws-lc-rs,
//! the crypto the rest of the mesh uses): it accepts ES256 alone, checks
//! the signature before reading the claims, and checks the issuer. What a
//! refusal should say, and the checks against the caller's clock (expiry,
//! not-before) and of the audience and subject, are this module's, so
//! every refusal names the value that failed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The audience Linkerd's identity service requires.
pub const AUDIENCE: &str = "identity.l5d.io";
const ISSUER: &str = "ztmesh";
const SUBJECT_PREFIX: &str = "system:serviceaccount:";
/// Longest token accepted: a Kubernetes token is ~1 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token was sent")]
    Missing,
    #[error("the token is {0} bytes; at most 16384 are accepted")]
    TooLong(usize),
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error(
        "the token is signed with {0:?}; only ES256 tokens from `ztmesh token create` are accepted"
    )]
    UnsupportedAlgorithm(String),
    #[error(
        "the token's signature does not verify with this control plane's token key (was it made for another install?)"
    )]
    BadSignature,
    #[error("the token expired at {0}; create a new one with `ztmesh token create`")]
    Expired(String),
    #[error("the token is not valid before {0}")]
    NotYetValid(String),
    #[error("the token's audience is {0:?}; it must include {AUDIENCE:?}")]
    WrongAudience(Vec<String>),
    #[error(
        "the token's issuer is not {ISSUER:?}: only tokens from `ztmesh token create` are accepted"
    )]
    WrongIssuer,
    #[error("the token's subject {0:?} is not a service account (system:serviceaccount:NS:NAME)")]
    NotServiceAccount(String),
    #[error("the token key is unusable: {0}")]
    Key(String),
    /// On Kubernetes: the API server's TokenReview refused the token, or
    /// named no service account; the text is its reason.
    #[error("the Kubernetes API did not authenticate the token: {0}")]
    Review(String),
    /// The token could not be checked now (on Kubernetes: the TokenReview
    /// could not be made, the API server unreachable or refusing it); not
    /// a verdict on the token, so Certify answers UNAVAILABLE and the
    /// proxy retries.
    #[error("the token could not be checked now (retry): {0}")]
    Unavailable(String),
}

impl TokenError {
    /// True when the token was not judged (a retry may succeed), as
    /// opposed to refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenError::Unavailable(_))
    }
}

/// Proves which service account presented a token.
pub trait TokenAuthenticator: Send + Sync + 'static {
    fn authenticate(
        &self,
        token: &[u8],
        now: SystemTime,
    ) -> impl Future<Output = Result<ServiceAccount, TokenError>> + Send;
}

/// Signs local tokens with an ECDSA P-256 key (PKCS#8).
pub struct TokenSigner {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    encoding: EncodingKey,
}

/// Verifies local tokens against the signer's public key.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

/// Only read to say which algorithm a refused token names.
#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    iat: u64,
    nbf: u64,
    exp: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl TokenSigner {
    pub fn generate() -> Result<Self, TokenError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|e| TokenError::Key(e.to_string()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, TokenError> {
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
        )
        .map_err(|_| TokenError::Key("not a PKCS#8 ECDSA P-256 private key".into()))?;
        Ok(Self {
            key,
            encoding: EncodingKey::from_ec_der(der),
        })
    }

    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, TokenError> {
        let key = crate::pem::private_key(pem, what).map_err(|e| TokenError::Key(e.to_string()))?;
        match key {
            rustls_pki_types::PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der()),
            _ => Err(TokenError::Key(format!(
                "{what}: expected a PKCS#8 (BEGIN PRIVATE KEY) key"
            ))),
        }
    }

    pub fn to_pem(&self) -> Result<String, TokenError> {
        let doc = self
            .key
            .to_pkcs8v1()
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(crate::pem::encode("PRIVATE KEY", doc.as_ref()))
    }

    pub fn verifier(&self) -> TokenVerifier {
        use aws_lc_rs::signature::KeyPair;
        // The uncompressed point, as aws-lc-rs verifies with it.
        TokenVerifier {
            key: DecodingKey::from_ec_der(self.key.public_key().as_ref()),
        }
    }

    /// A token for `sa`, valid from `now` for `ttl`.
    pub fn sign(
        &self,
        sa: &ServiceAccount,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, TokenError> {
        let now_s = unix(now);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: format!("{SUBJECT_PREFIX}{}:{}", sa.namespace, sa.name),
            aud: Audience::Many(vec![AUDIENCE.into()]),
            iat: now_s,
            nbf: now_s,
            exp: now_s + ttl.as_secs(),
        };
        let header = jsonwebtoken::Header::new(Algorithm::ES256);
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| TokenError::Key(e.to_string()))
    }
}

/// What `jsonwebtoken` checks: ES256, the signature, the issuer, and that
/// every claim this module reads is there. Times and audience are checked
/// after, against the caller's clock and with the values in the message.
fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = ["exp", "nbf", "aud", "sub", "iss"].map(String::from).into();
    v.set_issuer(&[ISSUER]);
    v
}

impl TokenVerifier {
    pub fn verify(&self, token: &[u8], now: SystemTime) -> Result<ServiceAccount, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong(token.len()));
        }
        let token = std::str::from_utf8(token)
            .map_err(|_| TokenError::Malformed("it is not UTF-8".into()))?
            .trim();
        let mut parts = token.split('.');
        let (Some(h), Some(_), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        // Said before verifying, so the refusal names the algorithm;
        // jsonwebtoken accepts ES256 alone whatever this says.
        let header: Header = decode_json(h, "header")?;
        if header.alg != "ES256" {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }
        if B64.decode(s).is_err() {
            return Err(TokenError::Malformed(
                "the signature is not base64url".into(),
            ));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &validation())
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAlgorithm => TokenError::UnsupportedAlgorithm(header.alg),
                ErrorKind::MissingRequiredClaim(claim) => {
                    TokenError::Malformed(format!("the claims have no {claim:?}"))
                }
                ErrorKind::Base64(_) => {
                    TokenError::Malformed("the claims are not base64url".into())
                }
                ErrorKind::Json(e) => {
                    TokenError::Malformed(format!("the claims are not valid: {e}"))
                }
                other => TokenError::Malformed(format!("{other:?}")),
            })?
            .claims;
        let now_s = unix(now);
        if claims.exp <= now_s {
            return Err(TokenError::Expired(claim_time(claims.exp)));
        }
        if claims.nbf > now_s + crate::issuer::CLOCK_SKEW_ALLOWANCE.as_secs() {
            return Err(TokenError::NotYetValid(claim_time(claims.nbf)));
        }
        let audiences = match claims.aud {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
        };
        if !audiences.iter().any(|a| a == AUDIENCE) {
            return Err(TokenError::WrongAudience(audiences));
        }
        parse_subject(&claims.sub)
    }
}

impl TokenAuthenticator for TokenVerifier {
    fn authenticate(
        &self,
        token: &[u8],
        now: SystemTime,
    ) -> impl Future<Output = Result<ServiceAccount, TokenError>> + Send {
        std::future::ready(self.verify(token, now))
    }
}

fn parse_subject(sub: &str) -> Result<ServiceAccount, TokenError> {
    let bad = || TokenError::NotServiceAccount(sub.into());
    let rest = sub.strip_prefix(SUBJECT_PREFIX).ok_or_else(bad)?;
    let (ns, name) = rest.split_once(':').ok_or_else(bad)?;
    if ns.is_empty() || name.is_empty() || name.contains(':') {
        return Err(bad());
    }
    Ok(ServiceAccount {
        namespace: ns.into(),
        name: name.into(),
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let bytes = B64
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("the {what} is not valid: {e}")))
}

/// A claim's time, for a message: any u64 is a valid claim, but not every
/// one is a `SystemTime` (adding it to the epoch would panic).
fn claim_time(secs: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .map_or_else(|| format!("{secs}s after the epoch"), crate::x509::rfc3339)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> ServiceAccount {
        ServiceAccount {
            namespace: "booksapp".into(),
            name: "books".into(),
        }
    }

    fn forge(signer: &TokenSigner, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = signer.key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    #[test]
    fn round_trip_and_rejections() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let signer = TokenSigner::generate().unwrap();
        let verifier = signer.verifier();
        let token = signer.sign(&sa(), Duration::from_secs(3600), now).unwrap();
        let other = TokenSigner::generate().unwrap().verifier();
        let es = r#"{"alg":"ES256"}"#;
        let claims = |aud: &str, sub: &str| {
            format!(
                r#"{{"iss":"ztmesh","sub":"{sub}","aud":{aud},"iat":1800000000,"nbf":1800000000,"exp":1800003600}}"#
            )
        };
        let tampered = {
            let mut parts: Vec<String> = token.split('.').map(String::from).collect();
            parts[1] = B64.encode(claims(
                r#""identity.l5d.io""#,
                "system:serviceaccount:booksapp:admin",
            ));
            parts.join(".")
        };

        let cases: Vec<(
            &str,
            Vec<u8>,
            SystemTime,
            &TokenVerifier,
            Result<ServiceAccount, TokenError>,
        )> = vec![
            ("valid", token.clone().into(), now, &verifier, Ok(sa())),
            (
                "valid with newline",
                format!("{token}\n").into(),
                now,
                &verifier,
                Ok(sa()),
            ),
            (
                "one second before expiry",
                token.clone().into(),
                now + Duration::from_secs(3599),
                &verifier,
                Ok(sa()),
            ),
            (
                "at expiry",
                token.clone().into(),
                now + Duration::from_secs(3600),
                &verifier,
                Err(TokenError::Expired("2027-01-15T09:00:00Z".into())),
            ),
            (
                "before nbf",
                token.clone().into(),
                now - Duration::from_secs(60),
                &verifier,
                Err(TokenError::NotYetValid("2027-01-15T08:00:00Z".into())),
            ),
            (
                "other key",
                token.clone().into(),
                now,
                &other,
                Err(TokenError::BadSignature),
            ),
            (
                "tampered claims",
                tampered.into(),
                now,
                &verifier,
                Err(TokenError::BadSignature),
            ),
            ("empty", vec![], now, &verifier, Err(TokenError::Missing)),
            (
                "two parts",
                b"a.b".to_vec(),
                now,
                &verifier,
                Err(TokenError::Malformed(
                    "expected three dot-separated parts".into(),
                )),
            ),
            (
                "binary",
                vec![0xff, 0xfe, 0x00],
                now,
                &verifier,
                Err(TokenError::Malformed("it is not UTF-8".into())),
            ),
            (
                "huge",
                vec![b'a'; MAX_TOKEN_LEN + 1],
                now,
                &verifier,
                Err(TokenError::TooLong(MAX_TOKEN_LEN + 1)),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    B64.encode(r#"{"alg":"none"}"#),
                    B64.encode(claims("[]", "x"))
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::UnsupportedAlgorithm("none".into())),
            ),
            (
                "wrong audience",
                forge(
                    &signer,
                    es,
                    &claims(r#"["kubernetes"]"#, "system:serviceaccount:booksapp:books"),
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::WrongAudience(vec!["kubernetes".into()])),
            ),
            (
                "audience as a string",
                forge(
                    &signer,
                    es,
                    &claims(
                        r#""identity.l5d.io""#,
                        "system:serviceaccount:booksapp:books",
                    ),
                )
                .into(),
                now,
                &verifier,
                Ok(sa()),
            ),
            (
                "another issuer",
                forge(
                    &signer,
                    es,
                    r#"{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:booksapp:books","aud":"identity.l5d.io","iat":1800000000,"nbf":1800000000,"exp":1800003600}"#,
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::WrongIssuer),
            ),
            (
                "no expiry",
                forge(
                    &signer,
                    es,
                    r#"{"iss":"ztmesh","sub":"system:serviceaccount:booksapp:books","aud":"identity.l5d.io","iat":1800000000,"nbf":1800000000}"#,
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::Malformed(
                    "the claims are not valid: missing field `exp` at line 1 column 119".into(),
                )),
            ),
            (
                "HS256 with the public key as its secret",
                {
                    use aws_lc_rs::signature::KeyPair;
                    let secret = signer.key.public_key().as_ref().to_vec();
                    jsonwebtoken::encode(
                        &jsonwebtoken::Header::new(Algorithm::HS256),
                        &serde_json::json!({"iss": "ztmesh", "sub": "system:serviceaccount:booksapp:books", "aud": AUDIENCE, "iat": 1800000000u64, "nbf": 1800000000u64, "exp": 1800003600u64}),
                        &EncodingKey::from_secret(&secret).unwrap(),
                    )
                    .unwrap()
                    .into()
                },
                now,
                &verifier,
                Err(TokenError::UnsupportedAlgorithm("HS256".into())),
            ),
            (
                "not a service account",
                forge(
                    &signer,
                    es,
                    &claims(r#""identity.l5d.io""#, "system:node:n1"),
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::NotServiceAccount("system:node:n1".into())),
            ),
            (
                "too many colons",
                forge(
                    &signer,
                    es,
                    &claims(r#""identity.l5d.io""#, "system:serviceaccount:a:b:c"),
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::NotServiceAccount(
                    "system:serviceaccount:a:b:c".into(),
                )),
            ),
            (
                "not before the end of time (this panicked)",
                forge(
                    &signer,
                    es,
                    r#"{"iss":"ztmesh","sub":"system:serviceaccount:booksapp:books","aud":"identity.l5d.io","iat":0,"nbf":18446744073709551615,"exp":18446744073709551615}"#,
                )
                .into(),
                now,
                &verifier,
                Err(TokenError::NotYetValid(
                    "18446744073709551615s after the epoch".into(),
                )),
            ),
        ];
        for (name, token, at, v, expected) in cases {
            assert_eq!(v.verify(&token, at), expected, "case {name}");
        }
    }

    #[test]
    fn key_survives_pem_round_trip() {
        let signer = TokenSigner::generate().unwrap();
        let pem = signer.to_pem().unwrap();
        let again = TokenSigner::from_pem(pem.as_bytes(), "token.key").unwrap();
        let now = SystemTime::now();
        let token = again.sign(&sa(), Duration::from_secs(60), now).unwrap();
        assert_eq!(signer.verifier().verify(token.as_bytes(), now), Ok(sa()));
        assert!(TokenSigner::from_pem(b"garbage", "token.key").is_err());
    }
}
