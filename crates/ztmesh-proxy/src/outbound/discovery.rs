//! The seam between the outbound stack and the control plane: what the
//! stack asks about a target ([`Discovery`]), answered over gRPC in
//! production ([`GrpcDiscovery`]: Destination and OutboundPolicies,
//! [`super::discover`] and [`super::policy`]) and from memory in tests
//! ([`InMemoryDiscovery`], behind the `test-util` feature).

use super::discover::{Discover, DiscoverError, Resolution};
use super::policy::{OutboundPolicy, Policies};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future borrowing the discovery and the target.
pub type Lookup<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a target is and how it is routed, as the outbound stack asks.
pub trait Discovery: Send + Sync + 'static {
    /// The target's endpoints (never empty), profile and protocol.
    fn resolve<'a>(&'a self, target: &'a str) -> Lookup<'a, Result<Resolution, DiscoverError>>;

    /// The target's OutboundPolicy, if the control plane has one.
    fn policy<'a>(&'a self, target: &'a str) -> Lookup<'a, Option<Arc<OutboundPolicy>>>;
}

/// Discovery from the control plane: Destination.Get / GetProfile, and
/// OutboundPolicies.Watch when a policy service is configured.
pub struct GrpcDiscovery {
    destination: Discover,
    policies: Option<Policies>,
}

impl GrpcDiscovery {
    /// `policies`: the policy service's channel, if there is one.
    pub fn new(
        destination: tonic::transport::Channel,
        context_token: String,
        profile_networks: Vec<ipnet::IpNet>,
        policies: Option<tonic::transport::Channel>,
    ) -> Self {
        Self {
            destination: Discover::new(destination, context_token, profile_networks),
            policies: policies.map(Policies::new),
        }
    }
}

impl Discovery for GrpcDiscovery {
    fn resolve<'a>(&'a self, target: &'a str) -> Lookup<'a, Result<Resolution, DiscoverError>> {
        Box::pin(self.destination.endpoints(target))
    }

    fn policy<'a>(&'a self, target: &'a str) -> Lookup<'a, Option<Arc<OutboundPolicy>>> {
        Box::pin(async move {
            match &self.policies {
                Some(p) => p.get(target).await,
                None => None,
            }
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use self::in_memory::InMemoryDiscovery;

#[cfg(any(test, feature = "test-util"))]
mod in_memory {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    /// Discovery from a table the test fills: a target it names resolves
    /// as set; an unnamed `ip:port` is outside the mesh (reached as it
    /// is); an unnamed name is unknown.
    #[derive(Default)]
    pub struct InMemoryDiscovery {
        targets: Mutex<HashMap<String, Resolution>>,
        policies: Mutex<HashMap<String, Arc<OutboundPolicy>>>,
    }

    impl InMemoryDiscovery {
        pub fn set(&self, target: &str, resolution: Resolution) {
            self.targets
                .lock()
                .expect("in-memory discovery")
                .insert(target.into(), resolution);
        }

        pub fn set_policy(&self, target: &str, policy: OutboundPolicy) {
            self.policies
                .lock()
                .expect("in-memory discovery")
                .insert(target.into(), Arc::new(policy));
        }
    }

    impl Discovery for InMemoryDiscovery {
        fn resolve<'a>(&'a self, target: &'a str) -> Lookup<'a, Result<Resolution, DiscoverError>> {
            let known = self
                .targets
                .lock()
                .expect("in-memory discovery")
                .get(target)
                .cloned();
            let resolution = match known {
                Some(r) if r.endpoints.is_empty() => Err(DiscoverError::NoEndpoints(target.into())),
                // A name is its own logical name, as with Destination.
                Some(mut r) => {
                    if r.logical.is_none() && target.parse::<SocketAddr>().is_err() {
                        r.logical = Some(target.into());
                    }
                    Ok(r)
                }
                None => match target.parse::<SocketAddr>() {
                    Ok(addr) => Ok(Resolution {
                        endpoints: Arc::new(vec![super::super::discover::Endpoint::plain(addr)]),
                        outside_mesh: true,
                        ..Default::default()
                    }),
                    Err(_) => Err(DiscoverError::Unknown(target.into())),
                },
            };
            Box::pin(std::future::ready(resolution))
        }

        fn policy<'a>(&'a self, target: &'a str) -> Lookup<'a, Option<Arc<OutboundPolicy>>> {
            let policy = self
                .policies
                .lock()
                .expect("in-memory discovery")
                .get(target)
                .cloned();
            Box::pin(std::future::ready(policy))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test]
        async fn lookups_table() {
            let d = InMemoryDiscovery::default();
            let meshed: SocketAddr = "10.0.0.7:8080".parse().unwrap();
            d.set(
                "web.ns.svc.cluster.local:80",
                Resolution {
                    endpoints: Arc::new(vec![super::super::super::discover::Endpoint::plain(
                        meshed,
                    )]),
                    ..Default::default()
                },
            );
            d.set("empty.ns.svc.cluster.local:80", Resolution::default());
            d.set_policy("web.ns.svc.cluster.local:80", OutboundPolicy::default());
            let cases: [(&str, Option<(&str, bool)>); 4] = [
                (
                    "web.ns.svc.cluster.local:80",
                    Some(("10.0.0.7:8080", false)),
                ),
                ("10.1.1.1:80", Some(("10.1.1.1:80", true))),
                ("empty.ns.svc.cluster.local:80", None),
                ("nowhere.ns.svc.cluster.local:80", None),
            ];
            for (target, want) in cases {
                let got = d.resolve(target).await;
                let got = got
                    .as_ref()
                    .ok()
                    .map(|r| (r.endpoints[0].addr.to_string(), r.outside_mesh));
                assert_eq!(
                    got.as_ref().map(|(a, o)| (a.as_str(), *o)),
                    want,
                    "{target}"
                );
            }
            assert!(matches!(
                d.resolve("empty.ns.svc.cluster.local:80").await,
                Err(DiscoverError::NoEndpoints(_))
            ));
            assert!(d.policy("web.ns.svc.cluster.local:80").await.is_some());
            assert!(d.policy("10.1.1.1:80").await.is_none());
        }
    }
}
