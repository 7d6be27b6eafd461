//! Who presented a Certify token: the local token key (`ztmesh token
//! create`), or, on Kubernetes, a [`TokenReviewer`] (ztmesh-kube asks the
//! API server's TokenReview). Either way the token's service account must
//! then be the identity asked for (`ztmesh_identity::certify`), so a
//! refusal reads the same: UNAUTHENTICATED for a token not accepted,
//! PERMISSION_DENIED for another service account's token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use ztmesh_identity::TokenAuthenticator;
use ztmesh_identity::token::{ServiceAccount, TokenError, TokenVerifier};

/// A future a [`TokenReviewer`] returns.
pub type ReviewFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ServiceAccount, TokenError>> + Send + 'a>>;

/// Proves which service account a token belongs to, outside the process
/// (the Kubernetes TokenReview API).
pub trait TokenReviewer: Send + Sync + 'static {
    fn review<'a>(&'a self, token: &'a [u8]) -> ReviewFuture<'a>;
}

/// The authenticator the identity service uses.
pub(crate) enum Authenticator {
    Local(TokenVerifier),
    Review(Arc<dyn TokenReviewer>),
}

impl TokenAuthenticator for Authenticator {
    async fn authenticate(
        &self,
        token: &[u8],
        now: SystemTime,
    ) -> Result<ServiceAccount, TokenError> {
        match self {
            Authenticator::Local(verifier) => verifier.authenticate(token, now).await,
            Authenticator::Review(reviewer) => reviewer.review(token).await,
        }
    }
}
