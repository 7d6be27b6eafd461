//! `Certify`: the one operation the identity service offers, transport-free.
//!
//! Checks run cheapest first: the request's shape, the CSR, the token, then
//! the match between token and identity, and only then does the CA sign.
//! Each refusal is a [`CertifyError`] whose kind the gRPC adapter maps to a
//! status code and whose text tells the operator what to fix.

use crate::ca::{Ca, CaError, IssuedCertificate};
use crate::csr::{self, CsrError};
use crate::name::NameError;
use crate::token::{TokenAuthenticator, TokenError};
use std::time::SystemTime;

pub struct CertifyRequest<'a> {
    pub identity: &'a str,
    pub token: &'a [u8],
    pub csr: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    #[error("requested identity {identity:?} is invalid: {error}")]
    BadIdentity { identity: String, error: NameError },
    #[error(transparent)]
    BadCsr(#[from] CsrError),
    #[error("token rejected: {0}")]
    Unauthenticated(TokenError),
    /// The token could not be judged now ([`TokenError::Unavailable`]):
    /// retryable, unlike a refusal.
    #[error("{0}")]
    AuthenticatorUnavailable(TokenError),
    #[error(
        "the token is for service account {token_namespace}/{token_name}, whose identity is {token_identity}, but the request is for {requested}"
    )]
    IdentityMismatch {
        requested: String,
        token_identity: String,
        token_namespace: String,
        token_name: String,
    },
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl From<TokenError> for CertifyError {
    fn from(error: TokenError) -> Self {
        if error.is_unavailable() {
            CertifyError::AuthenticatorUnavailable(error)
        } else {
            CertifyError::Unauthenticated(error)
        }
    }
}

pub async fn certify<A: TokenAuthenticator>(
    req: CertifyRequest<'_>,
    authenticator: &A,
    ca: &Ca,
    now: SystemTime,
) -> Result<IssuedCertificate, CertifyError> {
    let identity = ca
        .trust_domain()
        .parse_identity(req.identity)
        .map_err(|error| CertifyError::BadIdentity {
            identity: req.identity.into(),
            error,
        })?;
    let csr = csr::validate(req.csr, &identity)?;
    let sa = authenticator.authenticate(req.token, now).await?;
    let token_identity = ca.trust_domain().identity(&sa.namespace, &sa.name);
    if token_identity.as_ref() != Ok(&identity) {
        return Err(CertifyError::IdentityMismatch {
            requested: identity.to_string(),
            token_identity: token_identity
                .map(|i| i.to_string())
                .unwrap_or_else(|e| format!("invalid ({e})")),
            token_namespace: sa.namespace,
            token_name: sa.name,
        });
    }
    Ok(ca.issue(&identity, csr.public_key(), now)?)
}
