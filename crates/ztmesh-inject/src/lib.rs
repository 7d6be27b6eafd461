//! Proxy injection as Linkerd's injector does it, as pure functions over
//! Kubernetes objects held as `serde_json::Value` (no I/O, no kube): the
//! `linkerd-proxy` container with its `LINKERD2_PROXY_*` environment, the
//! `linkerd-init` container (or a native sidecar), the identity and
//! projected token volumes, Linkerd's labels and annotations, and their
//! removal. `ztmesh inject`/`uninject` call [`inject_document`] and
//! [`uninject_document`] per YAML document; the admission webhook calls
//! [`admission_patch`] and answers with its JSONPatch.
//!
//! Layout, leaf first:
//! - [`names`](crate::names): the annotation, label, container and volume names;
//! - [`config`]: [`Config`] (the control plane's values) and the settings
//!   in force for one pod once its annotations override them;
//! - [`report`]: what was done per object ([`Report`]), Linkerd's lines;
//! - `containers`: the proxy and proxy-init containers and the volumes, as
//!   Linkerd's chart renders them;
//! - `podspec`: a pod template read and edited (add and remove the proxy,
//!   strip Linkerd's metadata);
//! - `document`: one document (object or `List`) injected or uninjected;
//! - `admission`: the webhook's decision and patch for a Pod or Service;
//! - [`yaml`]: a YAML stream to documents and back, in the canonical form
//!   (keys sorted, as Linkerd's output has them) uninject restores.

#![forbid(unsafe_code)]

mod admission;
pub mod config;
mod containers;
mod document;
mod names;
mod podspec;
pub mod report;
pub mod yaml;

pub use admission::{AdmissionPatch, admission_patch};
pub use config::{Config, IptablesMode, Ports, Resources};
pub use document::{Error, inject_document, uninject_document};
pub use names::{TOKEN_AUDIENCE, TRUST_ROOTS_CONFIG_MAP, TRUST_ROOTS_KEY};
pub use report::{Outcome, Report, SkipReason, inject_warnings};

/// `linkerd.io/trust-root-sha256`: the hex SHA-256 of the anchors' PEM.
pub fn trust_root_sha256(cfg: &Config) -> String {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cfg.trust_anchors_pem.as_bytes());
    hex::encode(digest.as_ref())
}
