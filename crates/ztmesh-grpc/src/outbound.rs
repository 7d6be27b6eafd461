//! `io.linkerd.proxy.outbound.OutboundPolicies`: Get and Watch over the
//! outbound index, served on the policy port as Linkerd does. A target that
//! is not a Service port gets NOT_FOUND, on which linkerd2-proxy falls back
//! to `Destination.GetProfile`.

use crate::routes::{hosts, http_match, route_meta};
use futures::Stream;
use linkerd2_proxy_api::outbound::outbound_policies_server::{
    OutboundPolicies, OutboundPoliciesServer,
};
use linkerd2_proxy_api::outbound::{self as proto, TrafficSpec};
use linkerd2_proxy_api::{http_route as http_proto, meta};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};
use ztmesh_policy::RouteRef;
use ztmesh_policy::outbound::*;

pub type SharedOutbound = Arc<Mutex<OutboundIndex>>;

/// Linkerd's defaults for every backend.
const QUEUE_CAPACITY: u32 = 100;
const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);
const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
const EWMA_DECAY: Duration = Duration::from_secs(10);
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct OutboundPolicyService {
    index: SharedOutbound,
}

impl OutboundPolicyService {
    pub fn new(index: SharedOutbound) -> Self {
        Self { index }
    }

    pub fn into_server(self) -> OutboundPoliciesServer<Self> {
        OutboundPoliciesServer::new(self)
    }

    fn resolve(&self, spec: &TrafficSpec) -> Result<(String, String, u16), Status> {
        use proto::traffic_spec::Target;
        let target = match &spec.target {
            Some(Target::Authority(a)) => OutboundTarget::Authority(a.clone()),
            Some(Target::Addr(addr)) => {
                OutboundTarget::Addr(std::net::SocketAddr::try_from(*addr).map_err(|_| {
                    Status::invalid_argument("the target address is not a valid ip:port")
                })?)
            }
            None => {
                return Err(Status::invalid_argument(
                    "a target (authority or address) is required",
                ));
            }
        };
        self.index
            .lock()
            .expect("outbound index lock")
            .resolve(&target)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "{target:?} is not a Service port known to the control plane"
                ))
            })
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<proto::OutboundPolicy, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl OutboundPolicies for OutboundPolicyService {
    async fn get(
        &self,
        req: Request<TrafficSpec>,
    ) -> Result<Response<proto::OutboundPolicy>, Status> {
        let (ns, name, port) = self.resolve(req.get_ref())?;
        let policy = self
            .index
            .lock()
            .expect("outbound index lock")
            .policy(&ns, &name, port)
            .ok_or_else(|| Status::not_found(format!("Service {ns}/{name} is gone")))?;
        Ok(Response::new(to_proto(&policy)))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<TrafficSpec>) -> Result<Response<WatchStream>, Status> {
        let (ns, name, port) = self.resolve(req.get_ref())?;
        let rx = self
            .index
            .lock()
            .expect("outbound index lock")
            .watch(&ns, &name, port)
            .ok_or_else(|| Status::not_found(format!("Service {ns}/{name} is gone")))?;
        let stream = futures::StreamExt::map(tokio_stream::wrappers::WatchStream::new(rx), |p| {
            Ok(to_proto(&p))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn duration(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn service_meta(ns: &str, name: &str, port: u16) -> meta::Metadata {
    meta::Metadata {
        kind: Some(meta::metadata::Kind::Resource(meta::Resource {
            group: "core".into(),
            kind: "Service".into(),
            name: name.into(),
            namespace: ns.into(),
            port: port.into(),
            ..Default::default()
        })),
    }
}

fn backend(b: &Backend) -> proto::Backend {
    use proto::backend::{BalanceP2c, EndpointDiscovery, Kind, balance_p2c, endpoint_discovery};
    proto::Backend {
        metadata: Some(service_meta(&b.namespace, &b.name, b.port)),
        queue: Some(proto::Queue {
            capacity: QUEUE_CAPACITY,
            failfast_timeout: duration(FAILFAST_TIMEOUT),
        }),
        kind: Some(Kind::Balancer(BalanceP2c {
            discovery: Some(EndpointDiscovery {
                kind: Some(endpoint_discovery::Kind::Dst(
                    endpoint_discovery::DestinationGet {
                        path: b.authority.clone(),
                    },
                )),
            }),
            load: Some(balance_p2c::Load::PeakEwma(balance_p2c::PeakEwma {
                default_rtt: duration(EWMA_DEFAULT_RTT),
                decay: duration(EWMA_DECAY),
            })),
        })),
    }
}

fn http_route(r: &RouteRef, route: &OutboundRoute) -> proto::HttpRoute {
    use proto::http_route::{Distribution, RouteBackend, Rule, WeightedRouteBackend, distribution};
    proto::HttpRoute {
        metadata: Some(route_meta(r)),
        hosts: hosts(&route.hostnames),
        rules: route
            .rules
            .iter()
            .map(|rule| Rule {
                matches: rule.matches.iter().map(http_match).collect(),
                backends: Some(Distribution {
                    kind: Some(distribution::Kind::RandomAvailable(
                        distribution::RandomAvailable {
                            backends: rule
                                .backends
                                .iter()
                                .map(|b| WeightedRouteBackend {
                                    weight: b.weight,
                                    backend: Some(RouteBackend {
                                        backend: Some(backend(b)),
                                        ..Default::default()
                                    }),
                                })
                                .collect(),
                        },
                    )),
                }),
                timeouts: rule.request_timeout.map(|t| http_proto::Timeouts {
                    request: duration(t),
                    ..Default::default()
                }),
                retry: rule.retry.as_ref().map(retry),
                ..Default::default()
            })
            .collect(),
    }
}

/// Linkerd's retry annotations in the API's terms (5xx when no statuses).
fn retry(r: &RouteRetry) -> proto::http_route::Retry {
    use proto::http_route::retry::{Conditions, conditions::StatusRange};
    let ranges = if r.statuses.is_empty() {
        vec![(500, 599)]
    } else {
        r.statuses.clone()
    };
    proto::http_route::Retry {
        max_retries: r.limit,
        max_request_bytes: 64 * 1024,
        conditions: Some(Conditions {
            status_ranges: ranges
                .into_iter()
                .map(|(start, end)| StatusRange {
                    start: start.into(),
                    end: end.into(),
                })
                .collect(),
        }),
        timeout: r.timeout.and_then(duration),
        backoff: Some(proto::ExponentialBackoff {
            min_backoff: duration(Duration::from_millis(25)),
            max_backoff: duration(Duration::from_millis(250)),
            jitter_ratio: 1.0,
            respect_retry_after_hint: false,
        }),
    }
}

fn opaque_route(b: &Backend) -> proto::OpaqueRoute {
    use proto::opaque_route::{
        Distribution, RouteBackend, Rule, WeightedRouteBackend, distribution,
    };
    proto::OpaqueRoute {
        metadata: Some(route_meta(&RouteRef::Default("default"))),
        rules: vec![Rule {
            backends: Some(Distribution {
                kind: Some(distribution::Kind::RandomAvailable(
                    distribution::RandomAvailable {
                        backends: vec![WeightedRouteBackend {
                            weight: 1,
                            backend: Some(RouteBackend {
                                backend: Some(backend(b)),
                                filters: vec![],
                            }),
                        }],
                    },
                )),
            }),
            filters: vec![],
        }],
    }
}

pub fn to_proto(p: &OutboundPolicy) -> proto::OutboundPolicy {
    use proto::proxy_protocol::{Detect, Http1, Http2, Kind, Opaque};
    let parent = Backend {
        namespace: p.namespace.clone(),
        name: p.service.clone(),
        port: p.port,
        weight: 1,
        authority: p.authority.clone(),
    };
    let opaque = Opaque {
        routes: vec![opaque_route(&parent)],
    };
    let routes: Vec<proto::HttpRoute> = p
        .http_routes
        .iter()
        .map(|(r, route)| http_route(r, route))
        .collect();
    let accrual = p.failure_accrual.as_ref().map(|f| proto::FailureAccrual {
        ejection: None,
        kind: Some(proto::failure_accrual::Kind::ConsecutiveFailures(
            proto::failure_accrual::ConsecutiveFailures {
                max_failures: f.max_failures,
                backoff: Some(proto::ExponentialBackoff {
                    min_backoff: duration(f.min_penalty),
                    max_backoff: duration(f.max_penalty),
                    jitter_ratio: f.jitter,
                    respect_retry_after_hint: false,
                }),
            },
        )),
    });
    let kind = if p.opaque {
        Kind::Opaque(opaque)
    } else {
        Kind::Detect(Detect {
            timeout: duration(DETECT_TIMEOUT),
            opaque: Some(opaque),
            http1: Some(Http1 {
                routes: routes.clone(),
                failure_accrual: accrual,
            }),
            http2: Some(Http2 {
                routes,
                failure_accrual: accrual,
            }),
        })
    };
    proto::OutboundPolicy {
        metadata: Some(service_meta(&p.namespace, &p.service, p.port)),
        protocol: Some(proto::ProxyProtocol { kind: Some(kind) }),
    }
}
