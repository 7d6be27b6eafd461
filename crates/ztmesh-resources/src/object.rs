//! The typed objects a manifest holds: [`Object`] (a Linkerd-style
//! apiVersion / metadata / spec), [`Resource`] (every kind ztmesh reads)
//! and [`ResourceKey`] (kind, namespace, name). A leaf: loading
//! ([`crate::load`]) makes them, validation ([`crate::validate`]) reads them.

use crate::federation::ClusterFederatedTrustDomainSpec;
use crate::policy::*;
use crate::profile::ServiceProfileSpec;
use crate::route::{GrpcRouteSpec, HttpRouteSpec};
use crate::workload::ExternalWorkloadSpec;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::fmt;

/// A Linkerd-style object: apiVersion, metadata, spec (status is ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    #[serde(default, skip_serializing)]
    status: Option<serde::de::IgnoredAny>,
}

impl<S> Object<S> {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The `apiVersion`'s version part (`v1beta2` of `policy.linkerd.io/v1beta2`).
    pub fn version(&self) -> &str {
        self.api_version.rsplit('/').next().unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    Server(Object<ServerSpec>),
    ServerAuthorization(Object<ServerAuthorizationSpec>),
    AuthorizationPolicy(Object<AuthorizationPolicySpec>),
    MeshTlsAuthentication(Object<MeshTlsAuthenticationSpec>),
    NetworkAuthentication(Object<NetworkAuthenticationSpec>),
    HttpRoute(Object<HttpRouteSpec>),
    GrpcRoute(Object<GrpcRouteSpec>),
    ServiceProfile(Object<ServiceProfileSpec>),
    ExternalWorkload(Object<ExternalWorkloadSpec>),
    ClusterFederatedTrustDomain(Object<ClusterFederatedTrustDomainSpec>),
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    Service(Box<Service>),
    Pod(Box<Pod>),
}

/// Identifies one object across files: kind, namespace ("" when cluster
/// scoped), name. HTTPRoutes of the two API groups are distinct kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl Resource {
    pub fn key(&self) -> ResourceKey {
        let (kind, meta) = self.kind_and_meta();
        let namespace = match self {
            Resource::Namespace(_) | Resource::ClusterFederatedTrustDomain(_) => String::new(),
            _ => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        };
        ResourceKey {
            kind: kind.into(),
            namespace,
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        self.kind_and_meta().1
    }

    fn kind_and_meta(&self) -> (&'static str, &ObjectMeta) {
        match self {
            Resource::Server(o) => ("Server", &o.metadata),
            Resource::ServerAuthorization(o) => ("ServerAuthorization", &o.metadata),
            Resource::AuthorizationPolicy(o) => ("AuthorizationPolicy", &o.metadata),
            Resource::MeshTlsAuthentication(o) => ("MeshTLSAuthentication", &o.metadata),
            Resource::NetworkAuthentication(o) => ("NetworkAuthentication", &o.metadata),
            Resource::HttpRoute(o) if o.api_version.starts_with("gateway.") => {
                ("HTTPRoute.gateway.networking.k8s.io", &o.metadata)
            }
            Resource::HttpRoute(o) => ("HTTPRoute.policy.linkerd.io", &o.metadata),
            Resource::GrpcRoute(o) => ("GRPCRoute", &o.metadata),
            Resource::ServiceProfile(o) => ("ServiceProfile", &o.metadata),
            Resource::ExternalWorkload(o) => ("ExternalWorkload", &o.metadata),
            Resource::ClusterFederatedTrustDomain(o) => {
                ("ClusterFederatedTrustDomain", &o.metadata)
            }
            Resource::Namespace(o) => ("Namespace", &o.metadata),
            Resource::ServiceAccount(o) => ("ServiceAccount", &o.metadata),
            Resource::Service(o) => ("Service", &o.metadata),
            Resource::Pod(o) => ("Pod", &o.metadata),
        }
    }
}
