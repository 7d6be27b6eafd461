//! Node tokens: how `ztmesh agent` proves which node it runs on.
//!
//! A node token is an ES256 JWT signed with the controller's token key
//! (`token.key` of `ztmesh install`, the key of service-account tokens),
//! made by `ztmesh token create --node NAME`. Its subject is
//! `system:node:NAME` and its audience [`AUDIENCE`], so a node token is
//! no service-account token (the identity service requires the audience
//! `identity.l5d.io`) and a service-account token is no node token.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const AUDIENCE: &str = "node.ztmesh.io";
const ISSUER: &str = "ztmesh";
const SUBJECT_PREFIX: &str = "system:node:";
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Allowance for clocks that disagree, on `nbf`.
const CLOCK_SKEW: u64 = 60;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeTokenError {
    #[error("no node token was sent")]
    Missing,
    #[error("the node token is {0} bytes; at most {MAX_TOKEN_LEN} are accepted")]
    TooLong(usize),
    #[error("the node name {0:?} is not a DNS-1123 subdomain")]
    BadNodeName(String),
    #[error("the token key is unusable: {0}")]
    Key(String),
    #[error(
        "the node token is not valid: {0} (make one with `ztmesh token create --node NAME` for this install)"
    )]
    Invalid(String),
    #[error("the node token expired at unix time {0}; create a new one")]
    Expired(u64),
    #[error("the node token is not valid before unix time {0}")]
    NotYetValid(u64),
    #[error("the token's subject {0:?} is not a node (system:node:NAME)")]
    NotANode(String),
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Signs node tokens with the controller's token key.
pub struct NodeTokenSigner {
    encoding: EncodingKey,
    verifier: NodeTokenVerifier,
}

/// Verifies node tokens against the token key's public half.
#[derive(Clone)]
pub struct NodeTokenVerifier {
    decoding: DecodingKey,
}

impl std::fmt::Debug for NodeTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTokenVerifier").finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// DNS-1123 subdomain, as Kubernetes node names are.
fn check_node_name(name: &str) -> Result<(), NodeTokenError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(NodeTokenError::BadNodeName(name.into()))
    }
}

impl NodeTokenSigner {
    /// From the token key's PEM (PKCS#8 ECDSA P-256); `what` names it in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, NodeTokenError> {
        let key = ztmesh_identity::pem::private_key(pem, what)
            .map_err(|e| NodeTokenError::Key(e.to_string()))?;
        let rustls_pki_der = match key {
            rustls_pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            _ => {
                return Err(NodeTokenError::Key(format!(
                    "{what}: expected a PKCS#8 (BEGIN PRIVATE KEY) key"
                )));
            }
        };
        Self::from_pkcs8(&rustls_pki_der)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, NodeTokenError> {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
        )
        .map_err(|_| NodeTokenError::Key("not a PKCS#8 ECDSA P-256 private key".into()))?;
        Ok(Self {
            encoding: EncodingKey::from_ec_der(der),
            verifier: NodeTokenVerifier {
                decoding: DecodingKey::from_ec_der(pair.public_key().as_ref()),
            },
        })
    }

    pub fn verifier(&self) -> NodeTokenVerifier {
        self.verifier.clone()
    }

    /// A token for `node`, valid from `now` for `ttl`.
    pub fn sign(
        &self,
        node: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, NodeTokenError> {
        check_node_name(node)?;
        let now = unix(now);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: format!("{SUBJECT_PREFIX}{node}"),
            aud: vec![AUDIENCE.into()],
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::ES256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| NodeTokenError::Key(e.to_string()))
    }
}

impl NodeTokenVerifier {
    /// The node `token` proves, at `now`.
    pub fn verify(&self, token: &[u8], now: SystemTime) -> Result<String, NodeTokenError> {
        if token.is_empty() {
            return Err(NodeTokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(NodeTokenError::TooLong(token.len()));
        }
        let token = std::str::from_utf8(token)
            .map_err(|_| NodeTokenError::Invalid("it is not UTF-8".into()))?
            .trim();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.required_spec_claims = ["exp", "nbf", "aud", "sub", "iss"].map(String::from).into();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|e| NodeTokenError::Invalid(e.to_string()))?
            .claims;
        let now = unix(now);
        if claims.exp <= now {
            return Err(NodeTokenError::Expired(claims.exp));
        }
        if claims.nbf > now + CLOCK_SKEW {
            return Err(NodeTokenError::NotYetValid(claims.nbf));
        }
        let node = claims
            .sub
            .strip_prefix(SUBJECT_PREFIX)
            .ok_or_else(|| NodeTokenError::NotANode(claims.sub.clone()))?;
        check_node_name(node)?;
        Ok(node.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztmesh_identity::token::{ServiceAccount, TokenSigner};

    #[test]
    fn sign_verify_and_refusals() {
        let key = TokenSigner::generate().expect("key");
        let pem = key.to_pem().expect("pem");
        let signer = NodeTokenSigner::from_pem(pem.as_bytes(), "token.key").expect("signer");
        let other = TokenSigner::generate().expect("key");
        let other = NodeTokenSigner::from_pem(other.to_pem().expect("pem").as_bytes(), "k")
            .expect("signer");
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let good = signer.sign("node-a", hour, now).expect("sign");
        let sa = key
            .sign(
                &ServiceAccount {
                    namespace: "demo".into(),
                    name: "web".into(),
                },
                hour,
                now,
            )
            .expect("sa token");
        let foreign = other.sign("node-a", hour, now).expect("sign");
        let v = signer.verifier();
        // (token, at) -> result
        let expired_at = now + 2 * hour;
        type Check = fn(&NodeTokenError) -> bool;
        let table: Vec<(&[u8], SystemTime, Result<String, Check>)> = vec![
            (good.as_bytes(), now, Ok("node-a".into())),
            (b"", now, Err(|e| *e == NodeTokenError::Missing)),
            (
                good.as_bytes(),
                expired_at,
                Err(|e| matches!(e, NodeTokenError::Expired(_))),
            ),
            (
                good.as_bytes(),
                now - 2 * hour,
                Err(|e| matches!(e, NodeTokenError::NotYetValid(_))),
            ),
            (
                foreign.as_bytes(),
                now,
                Err(|e| matches!(e, NodeTokenError::Invalid(_))),
            ),
            // A service-account token of the same key is no node token.
            (
                sa.as_bytes(),
                now,
                Err(|e| matches!(e, NodeTokenError::Invalid(_))),
            ),
            (
                b"a.b.c",
                now,
                Err(|e| matches!(e, NodeTokenError::Invalid(_))),
            ),
        ];
        for (i, (token, at, want)) in table.into_iter().enumerate() {
            let got = v.verify(token, at);
            match (got, want) {
                (Ok(node), Ok(want)) => assert_eq!(node, want, "row {i}"),
                (Err(e), Err(check)) => assert!(check(&e), "row {i}: {e}"),
                (got, _) => panic!("row {i}: unexpected {got:?}"),
            }
        }
        // The node token is refused by the service-account verifier too.
        assert!(key.verifier().verify(good.as_bytes(), now).is_err());
        assert!(matches!(
            signer.sign("Node_A", hour, now),
            Err(NodeTokenError::BadNodeName(_))
        ));
    }
}
