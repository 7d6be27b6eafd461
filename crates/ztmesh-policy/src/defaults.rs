//! Linkerd's default inbound policies and the cluster facts they depend on.

use crate::model::*;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::time::Duration;

/// The annotation that overrides the default policy on a namespace or workload.
pub const DEFAULT_POLICY_ANNOTATION: &str = "config.linkerd.io/default-inbound-policy";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultPolicy {
    Allow {
        authenticated_only: bool,
        cluster_only: bool,
    },
    Deny,
    Audit,
}

/// A string that names no default inbound policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a default inbound policy (all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit)"
)]
pub struct UnknownDefaultPolicy(pub String);

impl std::str::FromStr for DefaultPolicy {
    type Err = UnknownDefaultPolicy;

    fn from_str(s: &str) -> Result<Self, UnknownDefaultPolicy> {
        let allow = |authenticated_only, cluster_only| {
            Ok(Self::Allow {
                authenticated_only,
                cluster_only,
            })
        };
        match s {
            "all-authenticated" => allow(true, false),
            "all-unauthenticated" => allow(false, false),
            "cluster-authenticated" => allow(true, true),
            "cluster-unauthenticated" => allow(false, true),
            "deny" => Ok(Self::Deny),
            "audit" => Ok(Self::Audit),
            other => Err(UnknownDefaultPolicy(other.into())),
        }
    }
}

impl DefaultPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Allow {
                authenticated_only: true,
                cluster_only: false,
            } => "all-authenticated",
            Self::Allow {
                authenticated_only: false,
                cluster_only: false,
            } => "all-unauthenticated",
            Self::Allow {
                authenticated_only: true,
                cluster_only: true,
            } => "cluster-authenticated",
            Self::Allow {
                authenticated_only: false,
                cluster_only: true,
            } => "cluster-unauthenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }

    /// The authorizations this default grants: none for `deny`; for `audit`
    /// everything (the proxy logs what it would have denied).
    pub fn authorizations(
        self,
        cluster: &ClusterInfo,
    ) -> BTreeMap<AuthorizationRef, ClientAuthorization> {
        let (authenticated_only, cluster_only) = match self {
            Self::Deny => return BTreeMap::new(),
            Self::Audit => (false, false),
            Self::Allow {
                authenticated_only,
                cluster_only,
            } => (authenticated_only, cluster_only),
        };
        let authentication = if authenticated_only {
            ClientAuthentication::TlsAuthenticated(vec![IdentityMatch::Suffix(vec![])])
        } else {
            ClientAuthentication::Unauthenticated
        };
        let networks = if cluster_only {
            cluster
                .networks
                .iter()
                .copied()
                .map(NetworkMatch::all)
                .collect()
        } else {
            all_networks()
        };
        BTreeMap::from([(
            AuthorizationRef::Default(self.as_str()),
            ClientAuthorization {
                networks,
                authentication,
            },
        )])
    }
}

pub fn all_networks() -> Vec<NetworkMatch> {
    vec![
        NetworkMatch::all("0.0.0.0/0".parse().expect("valid")),
        NetworkMatch::all("::/0".parse().expect("valid")),
    ]
}

/// Cluster-wide settings of the policy controller.
#[derive(Clone, Debug)]
pub struct ClusterInfo {
    /// For `cluster-*` defaults and ServerAuthorizations without networks.
    pub networks: Vec<IpNet>,
    pub default_policy: DefaultPolicy,
    pub default_detect_timeout: Duration,
    /// Where kubelet probes come from; empty disables probe routes.
    pub probe_networks: Vec<IpNet>,
    /// `linkerd` in `{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local`.
    pub control_plane_ns: String,
    pub trust_domain: String,
}

impl Default for ClusterInfo {
    /// Linkerd's chart defaults.
    fn default() -> Self {
        Self {
            networks: [
                "10.0.0.0/8",
                "100.64.0.0/10",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fd00::/8",
            ]
            .iter()
            .map(|n| n.parse().expect("valid network"))
            .collect(),
            default_policy: DefaultPolicy::Allow {
                authenticated_only: false,
                cluster_only: false,
            },
            default_detect_timeout: Duration::from_secs(10),
            probe_networks: vec![
                "0.0.0.0/0".parse().expect("valid"),
                "::/0".parse().expect("valid"),
            ],
            control_plane_ns: "linkerd".into(),
            trust_domain: "cluster.local".into(),
        }
    }
}

impl ClusterInfo {
    pub fn service_account_identity(&self, ns: &str, sa: &str) -> String {
        format!(
            "{sa}.{ns}.serviceaccount.identity.{}.{}",
            self.control_plane_ns, self.trust_domain
        )
    }
}
