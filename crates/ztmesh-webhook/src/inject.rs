//! The mutation, through a trait: the webhook hands the admitted object
//! and its namespace to an [`Injector`], which answers with an RFC 6902
//! patch (or none) and a report for the log.

use serde_json::Value;
use std::collections::BTreeMap;

/// A namespace's metadata, as the webhook needs it (the AdmissionReview
/// carries only the namespace's name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl NamespaceMeta {
    /// A namespace with no labels nor annotations.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Whether it is labelled for enforcement ([`crate::ENFORCE_LABEL`] = `"true"`).
    pub fn enforced(&self) -> bool {
        self.labels.get(crate::ENFORCE_LABEL).map(String::as_str) == Some("true")
    }
}

/// What an [`Injector`] made of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Patched {
    /// An RFC 6902 JSON Patch (an array of operations), or `None` to admit
    /// the object unchanged.
    pub patch: Option<Value>,
    /// What was done or why not, for the log: `pod "web" injected`,
    /// `pod "db" skipped: hostNetwork`, ...
    pub report: String,
}

/// The injector failed on this object (it is then admitted unchanged,
/// and the failure logged and counted).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InjectError(Box<dyn std::error::Error + Send + Sync>);

impl InjectError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// The mutation `POST /inject` applies.
pub trait Injector: Send + Sync + 'static {
    /// The patch for `object`, of `kind` (the AdmissionReview's
    /// `request.kind.kind`: `Pod`, `Service`, ...), created in `namespace`.
    fn patch(
        &self,
        kind: &str,
        object: &Value,
        namespace: &NamespaceMeta,
    ) -> Result<Patched, InjectError>;
}

/// An injector that never injects (a controller built without one).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInjector;

impl Injector for NoInjector {
    fn patch(&self, kind: &str, _: &Value, _: &NamespaceMeta) -> Result<Patched, InjectError> {
        Ok(Patched {
            patch: None,
            report: format!(
                "{} skipped: no injector in this controller",
                kind.to_lowercase()
            ),
        })
    }
}
