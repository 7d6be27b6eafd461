//! Stage: may this client connect? Until policy enforcement lands (its own
//! issue), only the default policy from `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`
//! applies. A pure function, tested as a table.

use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultPolicy {
    AllUnauthenticated,
    AllAuthenticated,
    ClusterUnauthenticated,
    ClusterAuthenticated,
    Deny,
    Audit,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("default policy {policy} requires a mesh identity; the client presented none")]
    Unauthenticated { policy: &'static str },
    #[error("default policy {policy} admits only cluster networks; {ip} is outside them")]
    OutsideCluster { policy: &'static str, ip: IpAddr },
    #[error("default policy deny admits no one")]
    Deny,
}

impl std::str::FromStr for DefaultPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "all-unauthenticated" => Self::AllUnauthenticated,
            "all-authenticated" => Self::AllAuthenticated,
            "cluster-unauthenticated" => Self::ClusterUnauthenticated,
            "cluster-authenticated" => Self::ClusterAuthenticated,
            "deny" => Self::Deny,
            "audit" => Self::Audit,
            _ => {
                return Err(format!(
                    "{s:?} is not a default policy (all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit)"
                ));
            }
        })
    }
}

impl DefaultPolicy {
    pub fn name(self) -> &'static str {
        match self {
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::AllAuthenticated => "all-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }
}

/// The decision for a connection from `client_ip`, with `client_id` when
/// it proved a mesh identity.
pub fn authorize(
    policy: DefaultPolicy,
    cluster_networks: &[IpNet],
    client_id: Option<&str>,
    client_ip: IpAddr,
) -> Result<(), Denied> {
    let name = policy.name();
    let in_cluster = || cluster_networks.iter().any(|n| n.contains(&client_ip));
    match policy {
        DefaultPolicy::AllUnauthenticated | DefaultPolicy::Audit => Ok(()),
        DefaultPolicy::Deny => Err(Denied::Deny),
        DefaultPolicy::AllAuthenticated | DefaultPolicy::ClusterAuthenticated
            if client_id.is_none() =>
        {
            Err(Denied::Unauthenticated { policy: name })
        }
        DefaultPolicy::ClusterAuthenticated | DefaultPolicy::ClusterUnauthenticated
            if !in_cluster() =>
        {
            Err(Denied::OutsideCluster {
                policy: name,
                ip: client_ip,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_table() {
        let cluster: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let id = Some("web.ns.serviceaccount.identity.linkerd.cluster.local");
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        use DefaultPolicy::*;
        let cases = [
            (AllUnauthenticated, None, outside, true),
            (Audit, None, outside, true),
            (Deny, id, inside, false),
            (AllAuthenticated, None, inside, false),
            (AllAuthenticated, id, outside, true),
            (ClusterAuthenticated, id, inside, true),
            (ClusterAuthenticated, id, outside, false),
            (ClusterAuthenticated, None, inside, false),
            (ClusterUnauthenticated, None, inside, true),
            (ClusterUnauthenticated, None, outside, false),
        ];
        for (policy, client, ip, allowed) in cases {
            assert_eq!(
                authorize(policy, &cluster, client, ip).is_ok(),
                allowed,
                "{policy:?} {client:?} {ip}"
            );
        }
        assert!("maybe".parse::<DefaultPolicy>().is_err());
        for p in [
            AllUnauthenticated,
            AllAuthenticated,
            ClusterUnauthenticated,
            ClusterAuthenticated,
            Deny,
            Audit,
        ] {
            assert_eq!(p.name().parse::<DefaultPolicy>(), Ok(p));
        }
    }
}
