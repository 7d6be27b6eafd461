//! The kinds the store watches, and how each is found on the server.
//!
//! Core kinds have a fixed group/version/plural, taken from k8s-openapi's
//! types: the workspace builds k8s-openapi 0.26 with its `latest` feature,
//! and every type watched here (core/v1 Namespace, Pod, Service,
//! ServiceAccount) is GA and served
//! under the same path long before Kubernetes 1.28, so 1.28 serves them as the
//! newer crate addresses them; fields added since are optional and
//! simply absent from a 1.28 server's objects. discovery.k8s.io/v1
//! EndpointSlice is GA since 1.21; the fields read (addressType,
//! endpoints' addresses, conditions.ready and targetRef, ports' name and
//! port) are 1.28's. `tests::core_kinds_are_1_28s` pins the paths, and
//! `scripts/test-kube` runs the store against a 1.28 API server. The
//! destination index takes Services' endpoints from the slices (not from
//! selectors, as for the manifests directory). The CRDs' versions are
//! discovered: each is watched at the version the server prefers.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::discovery::ApiResource;

/// A kind to watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub kind: &'static str,
}

/// The core kinds, with their fixed API resource.
pub fn core() -> Vec<(Kind, ApiResource)> {
    fn erase<K: k8s_openapi::Resource + kube::Resource<DynamicType = ()>>() -> (Kind, ApiResource) {
        let ar = ApiResource::erase::<K>(&());
        let kind = Kind {
            group: K::GROUP,
            kind: K::KIND,
        };
        (kind, ar)
    }
    vec![
        erase::<Namespace>(),
        erase::<ServiceAccount>(),
        erase::<Service>(),
        erase::<Pod>(),
        erase::<EndpointSlice>(),
    ]
}

/// The custom resources, by group and kind; their version is discovered.
pub const CUSTOM: [Kind; 11] = [
    Kind {
        group: "policy.linkerd.io",
        kind: "Server",
    },
    Kind {
        group: "policy.linkerd.io",
        kind: "ServerAuthorization",
    },
    Kind {
        group: "policy.linkerd.io",
        kind: "AuthorizationPolicy",
    },
    Kind {
        group: "policy.linkerd.io",
        kind: "MeshTLSAuthentication",
    },
    Kind {
        group: "policy.linkerd.io",
        kind: "NetworkAuthentication",
    },
    Kind {
        group: "policy.linkerd.io",
        kind: "HTTPRoute",
    },
    Kind {
        group: "linkerd.io",
        kind: "ServiceProfile",
    },
    Kind {
        group: "workload.linkerd.io",
        kind: "ExternalWorkload",
    },
    Kind {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
    },
    Kind {
        group: "gateway.networking.k8s.io",
        kind: "GRPCRoute",
    },
    // SPIRE's, for SPIFFE federation; watched where its CRD is installed.
    Kind {
        group: "spire.spiffe.io",
        kind: "ClusterFederatedTrustDomain",
    },
];

/// EndpointSlices: read into the destination index's own type, not
/// through ztmesh-resources' loader (the manifests have none).
pub const ENDPOINT_SLICE: Kind = Kind {
    group: "discovery.k8s.io",
    kind: "EndpointSlice",
};

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes 1.28's paths of the core kinds (its OpenAPI v3
    /// `api/v1` and `apis/discovery.k8s.io/v1` documents).
    #[test]
    fn core_kinds_are_1_28s() {
        let want = [
            ("Namespace", "v1", "namespaces"),
            ("ServiceAccount", "v1", "serviceaccounts"),
            ("Service", "v1", "services"),
            ("Pod", "v1", "pods"),
            ("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
        ];
        let got: Vec<(String, String, String)> = core()
            .into_iter()
            .map(|(k, ar)| (k.kind.to_string(), ar.api_version, ar.plural))
            .collect();
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(k, v, p)| (k.to_string(), v.to_string(), p.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
