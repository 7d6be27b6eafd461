//! One request to one answer: [`Webhook::handle`] routes `/inject` and
//! `/validate`, reads the AdmissionReview, looks the namespace up, calls
//! the injector or the enforcement decision, logs, counts, and writes the
//! response. A body that is not a review is answered 400 with the reason.

use crate::enforce::{self, Decision};
use crate::inject::{Injector, NamespaceMeta};
use crate::metrics::Metrics;
use crate::namespaces::{NamespaceError, Namespaces};
use crate::review::{self, Answer, Request};
use std::sync::Arc;
use std::time::Duration;

/// How long a namespace lookup may take before it counts as failed.
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP answer: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(status: u16, text: impl std::fmt::Display) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{text}\n").into_bytes(),
        }
    }
}

/// Both endpoints, over an injector and a namespace source.
pub struct Webhook {
    injector: Arc<dyn Injector>,
    namespaces: Arc<dyn Namespaces>,
    metrics: Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Inject,
    Validate,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Inject => "inject",
            Endpoint::Validate => "validate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Failed(#[from] NamespaceError),
    #[error("no answer within {NAMESPACE_TIMEOUT:?}")]
    TimedOut,
}

impl Webhook {
    pub fn new(
        injector: Arc<dyn Injector>,
        namespaces: Arc<dyn Namespaces>,
        metrics: Metrics,
    ) -> Self {
        Self {
            injector,
            namespaces,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The answer to a POST of `body` to `path` (the query is ignored: the
    /// API server adds `?timeout=10s`).
    pub async fn handle(&self, path: &str, body: &[u8]) -> Reply {
        let endpoint = match path.split('?').next().unwrap_or_default() {
            "/inject" => Endpoint::Inject,
            "/validate" => Endpoint::Validate,
            _ => {
                self.metrics.request("other", "invalid");
                return Reply::text(404, "not found: POST /inject or /validate");
            }
        };
        let (version, request) = match review::parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(endpoint = endpoint.label(), %error, "bad admission request");
                self.metrics.request(endpoint.label(), "invalid");
                return Reply::text(400, error);
            }
        };
        let (result, answer) = match endpoint {
            Endpoint::Inject => self.inject(&request).await,
            Endpoint::Validate => self.validate(&request).await,
        };
        self.metrics.request(endpoint.label(), result);
        let body = review::respond(version, &request.uid, &answer);
        Reply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(&body).expect("a JSON value serializes"),
        }
    }

    async fn namespace(&self, name: &str) -> Result<NamespaceMeta, LookupError> {
        match tokio::time::timeout(NAMESPACE_TIMEOUT, self.namespaces.get(name)).await {
            Err(_) => Err(LookupError::TimedOut),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(found)) => Ok(found.unwrap_or_else(|| NamespaceMeta::named(name))),
        }
    }

    /// `POST /inject`: (result label, answer).
    async fn inject(&self, request: &Request) -> (&'static str, Answer) {
        let allow = |warnings: Vec<String>| Answer::Allow {
            patch: None,
            warnings,
        };
        let (Some(object), Some(ns)) = (&request.object, request.namespace()) else {
            return ("skipped", allow(vec![]));
        };
        let name = request.object_name();
        let namespace = match self.namespace(&ns).await {
            Ok(meta) => meta,
            Err(error) => {
                tracing::warn!(namespace = %ns, object = %name, %error, "not injected: the namespace could not be read");
                return (
                    "error",
                    allow(vec![format!(
                        "ztmesh: not injected: namespace {ns:?} could not be read: {error}"
                    )]),
                );
            }
        };
        match self.injector.patch(&request.kind.kind, object, &namespace) {
            Ok(patched) => match patched.patch {
                Some(patch) if patch.is_array() => {
                    tracing::info!(namespace = %ns, user = %request.user_info.username, "{}", patched.report);
                    (
                        "patched",
                        Answer::Allow {
                            patch: Some(patch),
                            warnings: vec![],
                        },
                    )
                }
                Some(_) => {
                    tracing::error!(namespace = %ns, object = %name, "not injected: the injector's patch is not a JSON Patch array");
                    ("error", allow(vec![]))
                }
                None => {
                    tracing::info!(namespace = %ns, "{}", patched.report);
                    ("skipped", allow(vec![]))
                }
            },
            Err(error) => {
                tracing::warn!(namespace = %ns, object = %name, %error, "not injected");
                (
                    "error",
                    allow(vec![format!("ztmesh: {name} not injected: {error}")]),
                )
            }
        }
    }

    /// `POST /validate`: (result label, answer). Only Pod creations are judged.
    async fn validate(&self, request: &Request) -> (&'static str, Answer) {
        let allow = Answer::Allow {
            patch: None,
            warnings: vec![],
        };
        let (Some(pod), Some(ns)) = (&request.object, request.namespace()) else {
            return ("allowed", allow);
        };
        if !request.is_pod() || request.operation != "CREATE" {
            return ("allowed", allow);
        }
        let name = request.object_name();
        // The configuration's selector matched the label; a namespace that
        // cannot be read is taken as enforced (fail closed).
        let enforced = match self.namespace(&ns).await {
            Ok(meta) => meta.enforced(),
            Err(error) => {
                tracing::warn!(namespace = %ns, pod = %name, %error, "the namespace could not be read: enforced");
                true
            }
        };
        match enforce::decide(pod, enforced) {
            Decision::NotEnforced | Decision::Meshed(_) => ("allowed", allow),
            Decision::Exempt { reason } => {
                let dry_run = request.dry_run.unwrap_or(false);
                tracing::warn!(
                    target: "ztmesh_webhook::bypass",
                    namespace = %ns,
                    pod = %name,
                    reason = %reason,
                    user = %request.user_info.username,
                    dry_run,
                    "injection bypass: pod admitted without the proxy by its exemption"
                );
                if !dry_run {
                    self.metrics.bypass(&ns);
                }
                ("bypass", allow)
            }
            Decision::Refused(refusal) => {
                let message = refusal.message(&ns, &name);
                tracing::info!(namespace = %ns, pod = %name, user = %request.user_info.username, "refused: {message}");
                ("denied", Answer::Deny { message })
            }
        }
    }
}
