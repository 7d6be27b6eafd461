//! The resources ztmesh reads, with Linkerd's schemas, so a Linkerd user's
//! YAML works unchanged. Transport-free: no kube client, no gRPC.
//!
//! - [`meta`] holds label selectors; [`duration`] parses Go-style durations.
//! - [`policy`] holds `policy.linkerd.io` Server, ServerAuthorization,
//!   AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication.
//! - [`route`] holds HTTPRoute (`policy.linkerd.io` and `gateway.networking.k8s.io`)
//!   and GRPCRoute.
//! - [`profile`] holds `linkerd.io` ServiceProfile.
//! - [`workload`] holds `workload.linkerd.io` ExternalWorkload.
//! - [`load`] turns multi-document YAML into typed [`Resource`]s, with every
//!   problem reported as a [`load::Diagnostic`] naming file, document,
//!   kind/namespace/name and field path. Core Kubernetes kinds (Namespace,
//!   ServiceAccount, Service, Pod) use the k8s-openapi types. [`bounds`]
//!   refuses files too large or too deeply nested before they are parsed.
//!   The objects it makes are [`object`]'s, its problems [`diagnostic`]'s;
//!   `validate` (private) checks what a schema cannot say. Both `load` and
//!   `validate` report into [`diagnostic`], so neither depends on the other
//!   beyond `load` calling `validate`.

pub mod bounds;
pub mod diagnostic;
pub mod duration;
pub mod load;
pub mod meta;
pub mod object;
pub mod policy;
pub mod profile;
pub mod route;
mod validate;
pub mod workload;

pub use self::load::{Diagnostic, Loaded, Resource, load_str, load_str_with};
pub use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
