//! Stage (outbound): the target's OutboundPolicy (`OutboundPolicies.Watch`):
//! HTTPRoutes whose rules send matching requests to weighted backends
//! (other Services) with a request timeout, and the Service's failure
//! accrual.
//!
//! "OutboundPolicies answering UNIMPLEMENTED or NOT_FOUND falls back to the
//! profile": such answers (and failures) are remembered for a while and the
//! request takes the ServiceProfile / Destination path. "A ServiceProfile
//! with routes takes precedence over HTTPRoutes", as in Linkerd; that
//! choice is made by the HTTP stage.

use super::accrual::AccrualConfig;
use super::cache::{IDLE_TIMEOUT, IdleCache, Negative};
use linkerd2_proxy_api::outbound::{
    self as proto, outbound_policies_client::OutboundPoliciesClient,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;
use ztmesh_authz::HttpMatch;
use ztmesh_authz::route::{RequestFacts, http_score};

/// How long a target without an OutboundPolicy is remembered as such.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(10);
pub(crate) const POLICY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct OutboundPolicy {
    /// Explicit HTTPRoutes (the controller's default route is left out:
    /// it sends everything to the target itself).
    pub routes: Vec<PolicyRoute>,
    pub accrual: Option<AccrualConfig>,
}

#[derive(Debug)]
pub struct PolicyRoute {
    pub name: String,
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug)]
pub struct PolicyRule {
    /// Any one suffices; none matches every request.
    pub matches: Vec<HttpMatch>,
    /// (weight, `svc.ns.svc.cluster.local:port`)
    pub backends: Vec<(u32, String)>,
    pub timeout: Option<Duration>,
    pub retry: Option<RuleRetry>,
}

/// An HTTPRoute rule's retries (Linkerd's `retry.linkerd.io/*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRetry {
    pub limit: u32,
    pub timeout: Option<Duration>,
    /// Status ranges to retry; connection failures always are.
    pub statuses: Vec<(u16, u16)>,
}

fn duration(d: Option<prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
}

impl OutboundPolicy {
    pub(crate) fn from_proto(p: &proto::OutboundPolicy) -> Self {
        use proto::proxy_protocol::Kind;
        let (routes, accrual) = match p.protocol.as_ref().and_then(|p| p.kind.as_ref()) {
            Some(Kind::Detect(d)) => d
                .http1
                .as_ref()
                .map(|h| (h.routes.as_slice(), h.failure_accrual.as_ref()))
                .unwrap_or((&[], None)),
            Some(Kind::Http1(h)) => (h.routes.as_slice(), h.failure_accrual.as_ref()),
            Some(Kind::Http2(h)) => (h.routes.as_slice(), h.failure_accrual.as_ref()),
            _ => (&[][..], None),
        };
        let routes = routes
            .iter()
            .filter(|r| {
                !matches!(
                    r.metadata.as_ref().and_then(|m| m.kind.as_ref()),
                    Some(linkerd2_proxy_api::meta::metadata::Kind::Default(_))
                )
            })
            .map(|r| {
                let (_, name) = ztmesh_proxy_api::authz::names(r.metadata.as_ref(), None);
                PolicyRoute {
                    rules: r
                        .rules
                        .iter()
                        .map(|rule| rule_from_proto(rule, &name))
                        .collect(),
                    name,
                }
            })
            .collect();
        let accrual = accrual.and_then(|a| match a.kind.as_ref()? {
            proto::failure_accrual::Kind::ConsecutiveFailures(c) => {
                let backoff = c.backoff.as_ref();
                Some(AccrualConfig {
                    max_failures: c.max_failures,
                    min_penalty: duration(backoff.and_then(|b| b.min_backoff))
                        .unwrap_or(Duration::from_secs(1)),
                    max_penalty: duration(backoff.and_then(|b| b.max_backoff))
                        .unwrap_or(Duration::from_secs(60)),
                    jitter: backoff.map(|b| b.jitter_ratio).unwrap_or(0.5),
                })
            }
            // Newer kinds this proxy does not implement: no accrual.
            _ => None,
        });
        Self { routes, accrual }
    }

    /// The best rule for a request over all routes (Gateway API precedence,
    /// as inbound), with its route's name.
    pub(crate) fn rule<B>(&self, req: &http::Request<B>) -> Option<(&str, &PolicyRule)> {
        let facts = RequestFacts::new(req);
        let mut best = None;
        for route in &self.routes {
            for rule in &route.rules {
                let score = if rule.matches.is_empty() {
                    Some(Default::default())
                } else {
                    rule.matches
                        .iter()
                        .filter_map(|m| http_score(m, &facts))
                        .max()
                };
                if let Some(s) = score
                    && best.as_ref().is_none_or(|(b, _, _)| s > *b)
                {
                    best = Some((s, route.name.as_str(), rule));
                }
            }
        }
        best.map(|(_, name, rule)| (name, rule))
    }
}

fn rule_from_proto(rule: &proto::http_route::Rule, route: &str) -> PolicyRule {
    use proto::http_route::distribution::Kind;
    use proto::http_route::{RouteBackend, WeightedRouteBackend};
    let authority = |b: Option<&RouteBackend>| -> Option<String> {
        use proto::backend::{Kind as B, endpoint_discovery::Kind as D};
        match b?.backend.as_ref()?.kind.as_ref()? {
            B::Balancer(p2c) => match p2c.discovery.as_ref()?.kind.as_ref()? {
                D::Dst(dst) => Some(dst.path.clone()),
            },
            B::Forward(_) => None,
        }
    };
    let backends = match rule.backends.as_ref().and_then(|d| d.kind.as_ref()) {
        Some(Kind::RandomAvailable(r)) => r
            .backends
            .iter()
            .filter_map(|WeightedRouteBackend { weight, backend }| {
                Some((*weight, authority(backend.as_ref())?))
            })
            .collect(),
        Some(Kind::FirstAvailable(f)) => f
            .backends
            .iter()
            .filter_map(|b| Some((1, authority(Some(b))?)))
            .take(1)
            .collect(),
        _ => vec![],
    };
    PolicyRule {
        // A match this proxy cannot read never matches (fail closed).
        matches: rule
            .matches
            .iter()
            .filter_map(|m| ztmesh_proxy_api::authz::http_match(m, route).ok())
            .collect(),
        backends,
        timeout: duration(rule.timeouts.as_ref().and_then(|t| t.request)),
        retry: rule.retry.as_ref().map(|r| RuleRetry {
            limit: r.max_retries.min(100),
            timeout: duration(r.timeout),
            statuses: match r.conditions.as_ref() {
                Some(c) if !c.status_ranges.is_empty() => c
                    .status_ranges
                    .iter()
                    .map(|s| {
                        (
                            u16::try_from(s.start).unwrap_or(u16::MAX),
                            u16::try_from(s.end).unwrap_or(u16::MAX),
                        )
                    })
                    .collect(),
                _ => vec![(500, 599)],
            },
        }),
    }
}

/// A backend chosen in proportion to the weights; `random` is uniform
/// below the total weight.
pub(crate) fn pick_backend(
    backends: &[(u32, String)],
    random: impl FnOnce(u64) -> u64,
) -> Option<&str> {
    let total: u64 = backends.iter().map(|(w, _)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut r = random(total);
    for (w, authority) in backends {
        if r < u64::from(*w) {
            return Some(authority);
        }
        r -= u64::from(*w);
    }
    None
}

/// OutboundPolicies streams, one per target, kept current while used
/// ([`IdleCache`]); targets without a policy are remembered for
/// [`NEGATIVE_TTL`].
pub(crate) struct Policies {
    client: OutboundPoliciesClient<Channel>,
    watching: IdleCache<Arc<OutboundPolicy>>,
    none: Negative,
}

impl Policies {
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            client: OutboundPoliciesClient::new(channel),
            watching: IdleCache::new(IDLE_TIMEOUT),
            none: Negative::default(),
        }
    }

    /// The target's policy, or None when the controller has none for it.
    pub(crate) async fn get(&self, target: &str) -> Option<Arc<OutboundPolicy>> {
        if let Some(policy) = self.watching.get(target) {
            return Some(policy);
        }
        if self.none.contains(target) {
            return None;
        }
        use proto::traffic_spec::Target;
        let spec = proto::TrafficSpec {
            source_workload: String::new(),
            target: Some(match target.parse::<SocketAddr>() {
                Ok(addr) => Target::Addr(addr.into()),
                Err(_) => Target::Authority(target.to_string()),
            }),
        };
        let mut client = self.client.clone();
        let stream = tokio::time::timeout(POLICY_TIMEOUT, client.watch(spec.clone())).await;
        let mut stream = match stream {
            Ok(Ok(s)) => s.into_inner(),
            Ok(Err(status)) => {
                // UNIMPLEMENTED and NOT_FOUND: the profile path applies.
                tracing::debug!(%target, code = ?status.code(), "no outbound policy");
                self.remember_none(target);
                return None;
            }
            Err(_) => {
                tracing::info!(%target, "the outbound policy service did not answer within {POLICY_TIMEOUT:?}");
                self.remember_none(target);
                return None;
            }
        };
        let first = match tokio::time::timeout(POLICY_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(p))) => p,
            _ => {
                self.remember_none(target);
                return None;
            }
        };
        let (tx, rx) = watch::channel(Arc::new(OutboundPolicy::from_proto(&first)));
        let policy = rx.borrow().clone();
        let client = self.client.clone();
        self.watching.insert(target, rx, |_| {
            follow(client, target.to_string(), spec, stream, tx)
        });
        Some(policy)
    }

    fn remember_none(&self, target: &str) {
        self.none.insert(target, NEGATIVE_TTL);
    }
}

/// Keeps a target's policy current. A stream that ends or fails keeps the
/// last policy in force while it is reopened with a backoff (a controller
/// outage changes no route); only NOT_FOUND or UNIMPLEMENTED from a
/// reopened stream drops it (the cache does as this ends), and the
/// profile path applies again.
async fn follow(
    mut client: OutboundPoliciesClient<Channel>,
    target: String,
    spec: proto::TrafficSpec,
    mut stream: tonic::Streaming<proto::OutboundPolicy>,
    tx: watch::Sender<Arc<OutboundPolicy>>,
) {
    let mut backoff = crate::backoff::Backoff::control_plane();
    loop {
        loop {
            match stream.message().await {
                Ok(Some(p)) => {
                    backoff.reset();
                    tx.send_replace(Arc::new(OutboundPolicy::from_proto(&p)));
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::info!(%target, code = ?status.code(), "the outbound policy stream failed; keeping the last policy while reconnecting");
                    break;
                }
            }
        }
        stream = loop {
            backoff.wait().await;
            match tokio::time::timeout(POLICY_TIMEOUT, client.watch(spec.clone())).await {
                Ok(Ok(s)) => break s.into_inner(),
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        tonic::Code::NotFound | tonic::Code::Unimplemented
                    ) =>
                {
                    tracing::info!(%target, "the target no longer has an outbound policy");
                    return;
                }
                _ => continue,
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_table() {
        let backends = vec![(90, "v1".to_string()), (10, "v2".to_string())];
        for (r, want) in [(0, "v1"), (89, "v1"), (90, "v2"), (99, "v2")] {
            assert_eq!(pick_backend(&backends, |_| r), Some(want), "r={r}");
        }
        assert_eq!(pick_backend(&[(0, "x".into())], |_| 0), None);
        assert_eq!(pick_backend(&[], |_| 0), None);
    }
}
