//! Certify's tokens on Kubernetes: the proxy's projected ServiceAccount
//! token (audience `identity.l5d.io`, as Linkerd's injector projects it)
//! is checked by the API server's TokenReview. [`outcome`] reads the
//! review (no I/O, table-tested); the controller then requires the
//! token's service account to be the identity asked for, as in local mode.
//!
//! A TokenReview that cannot be made (the API server unreachable or too
//! slow, the permission to create TokenReviews missing, any error answer)
//! is no verdict on the token: it is [`TokenError::Unavailable`], which
//! Certify answers with UNAVAILABLE and the reason, so the proxy retries
//! ([`failed`]). Only the review's own answer refuses a token
//! (UNAUTHENTICATED), and a token of another service account than the
//! identity asked for is PERMISSION_DENIED (the controller's check).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use ztmesh_controller::{ReviewFuture, TokenReviewer};
use ztmesh_identity::{ServiceAccount, TokenError};

/// The audience Linkerd's injector projects the token for.
pub const AUDIENCE: &str = "identity.l5d.io";
/// Tokens longer than this are refused unsent (as local tokens are).
const MAX_TOKEN: usize = 16 * 1024;
/// How long a TokenReview may take before Certify answers UNAVAILABLE
/// (the proxy's own Certify deadline is longer).
const REVIEW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reviews tokens through the API server.
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
}

impl KubeTokenReviewer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }

    async fn review_token(&self, token: &[u8]) -> Result<ServiceAccount, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN {
            return Err(TokenError::TooLong(token.len()));
        }
        let token = std::str::from_utf8(token)
            .map_err(|_| TokenError::Malformed("not UTF-8".into()))?
            .trim();
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.into()),
                audiences: Some(vec![AUDIENCE.into()]),
            },
            ..Default::default()
        };
        let reviewed = tokio::time::timeout(
            REVIEW_TIMEOUT,
            self.api.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| {
            TokenError::Unavailable(format!(
                "the Kubernetes API did not answer the TokenReview within {REVIEW_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| failed(&e))?;
        outcome(reviewed.status)
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a [u8]) -> ReviewFuture<'a> {
        Box::pin(self.review_token(token))
    }
}

/// Why a TokenReview could not be made (`error` is the API call's): never
/// a verdict on the token, whatever the failure (unreachable, TLS,
/// 403 without the RBAC to create TokenReviews, 5xx), with its causes.
pub fn failed(error: &kube::Error) -> TokenError {
    let mut reason = format!("the TokenReview could not be made: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    TokenError::Unavailable(reason)
}

/// The service account a TokenReview's answer names, or why none. An
/// answer without a status judged nothing: [`TokenError::Unavailable`].
pub fn outcome(status: Option<TokenReviewStatus>) -> Result<ServiceAccount, TokenError> {
    let status = status
        .ok_or_else(|| TokenError::Unavailable("the TokenReview's answer has no status".into()))?;
    if status.authenticated != Some(true) {
        return Err(TokenError::Review(
            status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    if let Some(audiences) = &status.audiences
        && !audiences.iter().any(|a| a == AUDIENCE)
    {
        return Err(TokenError::WrongAudience(audiences.clone()));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    let sa = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'));
    match sa {
        Some((namespace, name)) => Ok(ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        }),
        None => Err(TokenError::NotServiceAccount(username)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn status(
        authenticated: Option<bool>,
        username: Option<&str>,
        audiences: Option<&[&str]>,
        error: Option<&str>,
    ) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated,
            user: username.map(|u| UserInfo {
                username: Some(u.into()),
                ..Default::default()
            }),
            audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_review_names_the_service_account_or_says_why_not() {
        let books = || {
            Ok(ServiceAccount {
                namespace: "booksapp".into(),
                name: "books".into(),
            })
        };
        let cases: Vec<(Option<TokenReviewStatus>, Result<ServiceAccount, TokenError>)> = vec![
            (
                Some(status(
                    Some(true),
                    Some("system:serviceaccount:booksapp:books"),
                    Some(&[AUDIENCE]),
                    None,
                )),
                books(),
            ),
            // A server that does not echo audiences: it checked them.
            (
                Some(status(Some(true), Some("system:serviceaccount:booksapp:books"), None, None)),
                books(),
            ),
            (
                Some(status(
                    Some(false),
                    None,
                    None,
                    Some("[invalid bearer token, token audiences [\"other\"] is invalid for the target audiences [\"identity.l5d.io\"]]"),
                )),
                Err(TokenError::Review("[invalid bearer token, token audiences [\"other\"] is invalid for the target audiences [\"identity.l5d.io\"]]".into())),
            ),
            (
                Some(status(None, None, None, None)),
                Err(TokenError::Review("not authenticated".into())),
            ),
            (
                Some(status(Some(true), Some("system:serviceaccount:booksapp:books"), Some(&["other"]), None)),
                Err(TokenError::WrongAudience(vec!["other".into()])),
            ),
            (
                Some(status(Some(true), Some("alice"), Some(&[AUDIENCE]), None)),
                Err(TokenError::NotServiceAccount("alice".into())),
            ),
            (
                Some(status(Some(true), Some("system:serviceaccount:booksapp:"), Some(&[AUDIENCE]), None)),
                Err(TokenError::NotServiceAccount("system:serviceaccount:booksapp:".into())),
            ),
            (
                None,
                Err(TokenError::Unavailable(
                    "the TokenReview's answer has no status".into(),
                )),
            ),
        ];
        for (status, want) in cases {
            assert_eq!(outcome(status.clone()), want, "{status:?}");
        }
    }

    /// A review that could not be made is never a refusal of the token.
    #[test]
    fn a_failed_review_is_unavailable_with_its_reason() {
        let api = |code: u16, reason: &str, message: &str| {
            kube::Error::Api(kube::core::ErrorResponse {
                status: "Failure".into(),
                message: message.into(),
                reason: reason.into(),
                code,
            })
        };
        let connect: kube::Error = kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused (os error 111)",
        )));
        let cases = [
            (
                api(
                    403,
                    "Forbidden",
                    "tokenreviews.authentication.k8s.io is forbidden",
                ),
                "is forbidden",
            ),
            (
                api(500, "InternalError", "etcdserver: request timed out"),
                "request timed out",
            ),
            (api(429, "TooManyRequests", "slow down"), "slow down"),
            (connect, "Connection refused"),
        ];
        for (error, says) in cases {
            match failed(&error) {
                TokenError::Unavailable(reason) => {
                    assert!(reason.contains(says), "{reason:?} names {says:?}");
                    assert!(reason.starts_with("the TokenReview could not be made"));
                }
                other => panic!("{error}: {other:?} is not Unavailable"),
            }
        }
    }
}
