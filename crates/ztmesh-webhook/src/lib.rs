//! The admission webhook of `ztmesh controller --kubernetes`: HTTPS,
//! AdmissionReview `admission.k8s.io/v1` (and `v1beta1`), two endpoints:
//! - `POST /inject` (the `MutatingWebhookConfiguration`
//!   `linkerd-proxy-injector-webhook-config`): the object goes to an
//!   [`Injector`] with its namespace's labels and annotations; its RFC 6902
//!   patch is answered as `patchType: JSONPatch`, or the object is allowed
//!   unchanged (skipped, or the injector failed: logged and counted).
//! - `POST /validate` (the `ValidatingWebhookConfiguration`
//!   `ztmesh-injection-enforcement`): a Pod created without the
//!   `linkerd-proxy` container in a namespace labelled
//!   `config.ztmesh.io/enforce-injection: "true"` is refused with the reason
//!   and the way out, unless annotated `config.ztmesh.io/injection-exempt:
//!   "<reason>"`: a bypass, logged and counted.
//!
//! Layout, leaf first:
//! - [`inject`]: the [`Injector`] trait the mutation goes through (the
//!   injector proper lives elsewhere), and [`NamespaceMeta`].
//! - [`namespaces`]: the [`Namespaces`] trait the namespace's metadata is
//!   read through (the AdmissionReview does not carry it; ztmesh-kube
//!   implements it over the API).
//! - [`enforce`]: the enforcement decision, a pure function.
//! - `review`: AdmissionReview requests read, responses written (no I/O).
//! - [`metrics`]: requests by endpoint and result, bypasses by namespace.
//! - `handler`: one request body to one answer, for both endpoints.
//! - [`tls`]: the serving certificate from a directory (`tls.crt`,
//!   `tls.key`: the mounted Secret), re-read when the files change.
//! - `server`: the HTTPS server, with its size limit and timeouts.
//! - `test_util` (feature `test-util`): a small injector and fixed
//!   namespaces for tests.
//!
//! kube stays out of this crate; so does the injector.

#![forbid(unsafe_code)]

pub mod enforce;
mod handler;
pub mod inject;
pub mod metrics;
pub mod namespaces;
mod review;
mod server;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod tls;

pub use handler::{Reply, Webhook};
pub use inject::{InjectError, Injector, NamespaceMeta, NoInjector, Patched};
pub use metrics::Metrics;
pub use namespaces::{NamespaceError, NamespaceFuture, Namespaces};
pub use server::{Limits, serve};
pub use tls::{CertFiles, TlsError};

/// The label that puts a namespace under enforcement (its value `"true"`).
pub const ENFORCE_LABEL: &str = "config.ztmesh.io/enforce-injection";
/// The pod annotation that exempts it from enforcement; its value, the
/// reason, must not be empty.
pub const EXEMPT_ANNOTATION: &str = "config.ztmesh.io/injection-exempt";
/// Linkerd's injection annotation.
pub const INJECT_ANNOTATION: &str = "linkerd.io/inject";
/// The proxy's container name.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
