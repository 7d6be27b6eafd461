//! One API call: bounded by a timeout ([`bounded`]), its failure kept as
//! a [`CallError`] with the API server's own message. A leaf.

use std::time::Duration;

/// One API call that did not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {reason}")]
pub(crate) struct CallError {
    pub(crate) call: String,
    pub(crate) reason: String,
}

impl CallError {
    pub(crate) fn new(call: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            call: call.into(),
            reason: reason.to_string(),
        }
    }
}

/// `call` bounded by `timeout`, its error named `what`.
pub(crate) async fn bounded<T>(
    what: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::new(what, api_reason(&e))),
        Err(_) => Err(CallError::new(
            what,
            format!("no answer within {timeout:?}"),
        )),
    }
}

/// The API server's own message when it gave one.
fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(r) => format!("{} ({})", r.message, r.code),
        e => crate::check::proxy::with_causes(e),
    }
}
