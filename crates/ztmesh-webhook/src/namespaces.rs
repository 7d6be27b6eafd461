//! Where the webhook reads a namespace's labels and annotations: the
//! [`Namespaces`] trait (implemented over the Kubernetes API in
//! ztmesh-kube).

use crate::inject::NamespaceMeta;
use std::future::Future;
use std::pin::Pin;

/// The answer of [`Namespaces::get`]: `Ok(None)` when there is no such namespace.
pub type NamespaceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<NamespaceMeta>, NamespaceError>> + Send + 'a>>;

/// A namespace could not be read.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NamespaceError(Box<dyn std::error::Error + Send + Sync>);

impl NamespaceError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// Namespaces by name.
pub trait Namespaces: Send + Sync + 'static {
    fn get<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a>;
}
