//! The Identity service: Certify requests in, leaf certificates out.
//!
//! Wire format as the real linkerd2-proxy uses it (which differs from the
//! proto's comments): the CSR arrives DER-encoded (PEM is accepted too), and
//! the leaf and intermediates go back DER-encoded, with `valid_until` set.

use linkerd2_proxy_api::identity::identity_server::{Identity, IdentityServer};
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use ztmesh_identity::ca::CaError;
use ztmesh_identity::{Ca, CertifyError, TokenAuthenticator};

/// Largest Certify request accepted: a CSR is ~300 bytes and a token ~1 KiB.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;

/// Serves Certify with whichever CA is current in `ca` (the issuer reloads
/// by publishing a new one).
pub struct IdentityService<A> {
    ca: watch::Receiver<Arc<Ca>>,
    authenticator: Arc<A>,
}

impl<A: TokenAuthenticator> IdentityService<A> {
    pub fn new(ca: watch::Receiver<Arc<Ca>>, authenticator: Arc<A>) -> Self {
        Self { ca, authenticator }
    }

    /// The tonic service, with the request size bounded.
    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }
}

#[tonic::async_trait]
impl<A: TokenAuthenticator> Identity for IdentityService<A> {
    async fn certify(
        &self,
        req: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let peer = req.remote_addr();
        let req = req.into_inner();
        let ca = self.ca.borrow().clone();
        let result = ztmesh_identity::certify(
            ztmesh_identity::CertifyRequest {
                identity: &req.identity,
                token: &req.token,
                csr: &req.certificate_signing_request,
            },
            self.authenticator.as_ref(),
            &ca,
            SystemTime::now(),
        )
        .await;
        match result {
            Ok(issued) => {
                tracing::info!(identity = %req.identity, valid_until = %ztmesh_identity::rfc3339(issued.valid_until), ?peer, "issued certificate");
                Ok(Response::new(CertifyResponse {
                    leaf_certificate: issued.leaf.to_vec(),
                    intermediate_certificates: issued
                        .intermediates
                        .iter()
                        .map(|c| c.to_vec())
                        .collect(),
                    valid_until: Some(issued.valid_until.into()),
                }))
            }
            Err(error) => {
                let status = status_for(&error);
                tracing::warn!(identity = %req.identity, ?peer, code = ?status.code(), %error, "refused certificate");
                Err(status)
            }
        }
    }
}

/// The one place where identity refusals become gRPC codes.
pub fn status_for(error: &CertifyError) -> Status {
    let msg = error.to_string();
    match error {
        CertifyError::BadIdentity { .. } | CertifyError::BadCsr(_) => Status::invalid_argument(msg),
        CertifyError::Unauthenticated(_) => Status::unauthenticated(msg),
        // Not a verdict on the token (the TokenReview could not be made):
        // the proxy retries.
        CertifyError::AuthenticatorUnavailable(_) => Status::unavailable(msg),
        CertifyError::IdentityMismatch { .. } => Status::permission_denied(msg),
        CertifyError::Ca(CaError::WrongTrustDomain { .. }) => Status::invalid_argument(msg),
        CertifyError::Ca(CaError::IssuerExpired(_)) => Status::unavailable(msg),
        CertifyError::Ca(CaError::Sign(_)) => Status::internal(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use ztmesh_identity::TokenError;

    #[test]
    fn each_refusal_has_its_code() {
        let cases = [
            (
                CertifyError::from(TokenError::Review("token has expired".into())),
                Code::Unauthenticated,
            ),
            (
                CertifyError::from(TokenError::WrongAudience(vec!["other".into()])),
                Code::Unauthenticated,
            ),
            (
                CertifyError::from(TokenError::Missing),
                Code::Unauthenticated,
            ),
            (
                CertifyError::from(TokenError::Unavailable(
                    "the TokenReview could not be made: connection refused".into(),
                )),
                Code::Unavailable,
            ),
            (
                CertifyError::IdentityMismatch {
                    requested: "a".into(),
                    token_identity: "b".into(),
                    token_namespace: "ns".into(),
                    token_name: "b".into(),
                },
                Code::PermissionDenied,
            ),
            (
                CertifyError::Ca(CaError::IssuerExpired("then".into())),
                Code::Unavailable,
            ),
            (CertifyError::Ca(CaError::Sign("no".into())), Code::Internal),
        ];
        for (error, code) in cases {
            let status = status_for(&error);
            assert_eq!(status.code(), code, "{error}");
            assert_eq!(status.message(), error.to_string());
        }
    }
}
