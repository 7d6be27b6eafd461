//! `io.linkerd.proxy.destination.Destination`: Get (endpoint updates) and
//! GetProfile over the destination index.
//!
//! Get streams, per destination.proto: first the whole set as `add` (or
//! `no_endpoints` when empty: `exists` says whether the Service is known),
//! then differences: `remove` for addresses that left, `add` for addresses
//! that joined or whose metadata changed, and `no_endpoints` when the set
//! becomes empty.

use futures::Stream;
use linkerd2_proxy_api::destination::destination_server::{Destination, DestinationServer};
use linkerd2_proxy_api::destination::{self as proto, GetDestination};
use linkerd2_proxy_api::{meta, net};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use ztmesh_destination::*;

pub type SharedIndex = Arc<Mutex<Index>>;

pub struct DestinationService {
    index: SharedIndex,
}

impl DestinationService {
    pub fn new(index: SharedIndex) -> Self {
        Self { index }
    }

    pub fn into_server(self) -> DestinationServer<Self> {
        DestinationServer::new(self)
    }

    fn target(&self, req: &GetDestination) -> Result<Target, Status> {
        if !req.scheme.is_empty() && req.scheme != "k8s" {
            return Err(Status::invalid_argument(format!(
                "scheme {:?} is not supported (use k8s)",
                req.scheme
            )));
        }
        self.index
            .lock()
            .expect("destination index lock")
            .parse_target(&req.path)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<proto::Update, Status>> + Send + 'static>>;
type ProfileStream =
    Pin<Box<dyn Stream<Item = Result<proto::DestinationProfile, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Destination for DestinationService {
    type GetStream = UpdateStream;

    async fn get(&self, req: Request<GetDestination>) -> Result<Response<UpdateStream>, Status> {
        let target = self.target(req.get_ref())?;
        let Target::Service {
            namespace,
            name,
            port,
        } = target
        else {
            // An address is not a service: the proxy falls back to it directly.
            let update = no_endpoints(false);
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(update)]))));
        };
        let rx = self
            .index
            .lock()
            .expect("destination index lock")
            .watch_endpoints(&namespace, &name, port);
        let state = (
            rx,
            None::<EndpointSet>,
            std::collections::VecDeque::<proto::Update>::new(),
        );
        let stream = futures::stream::unfold(state, |(mut rx, mut prev, mut pending)| async move {
            loop {
                if let Some(update) = pending.pop_front() {
                    return Some((Ok(update), (rx, prev, pending)));
                }
                if prev.is_some() {
                    // The index is gone (controller stopping): end the stream.
                    rx.changed().await.ok()?;
                }
                let current = rx.borrow_and_update().clone();
                pending.extend(diff(prev.as_ref(), &current));
                prev = Some(current);
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type GetProfileStream = ProfileStream;

    async fn get_profile(
        &self,
        req: Request<GetDestination>,
    ) -> Result<Response<ProfileStream>, Status> {
        let target = self.target(req.get_ref())?;
        let rx = self
            .index
            .lock()
            .expect("destination index lock")
            .watch_profile(&target);
        let stream = tokio_stream::wrappers::WatchStream::new(rx);
        let stream = futures::StreamExt::map(stream, |p| Ok(profile(&p)));
        Ok(Response::new(Box::pin(stream)))
    }
}

fn no_endpoints(exists: bool) -> proto::Update {
    proto::Update {
        update: Some(proto::update::Update::NoEndpoints(proto::NoEndpoints {
            exists,
        })),
    }
}

/// The updates that take a client from `prev` (None: nothing sent yet) to `current`.
pub fn diff(prev: Option<&EndpointSet>, current: &EndpointSet) -> Vec<proto::Update> {
    use proto::update::Update as U;
    if current.endpoints.is_empty() {
        let was_empty = prev.is_some_and(|p| p.endpoints.is_empty() && p.exists == current.exists);
        return if was_empty {
            vec![]
        } else {
            vec![no_endpoints(current.exists)]
        };
    }
    let mut out = Vec::new();
    let removed: Vec<net::TcpAddress> = prev
        .into_iter()
        .flat_map(|p| p.endpoints.keys())
        .filter(|a| !current.endpoints.contains_key(a))
        .map(|a| (*a).into())
        .collect();
    if !removed.is_empty() {
        out.push(proto::Update {
            update: Some(U::Remove(proto::AddrSet { addrs: removed })),
        });
    }
    let added: Vec<proto::WeightedAddr> = current
        .endpoints
        .iter()
        .filter(|(a, e)| prev.and_then(|p| p.endpoints.get(a)) != Some(e))
        .map(|(_, e)| weighted_addr(e))
        .collect();
    if !added.is_empty() {
        out.push(proto::Update {
            update: Some(U::Add(proto::WeightedAddrSet {
                addrs: added,
                metric_labels: current.labels.clone().into_iter().collect(),
            })),
        });
    }
    out
}

/// Linkerd's default weight for every endpoint.
const WEIGHT: u32 = 10_000;

pub fn weighted_addr(e: &Endpoint) -> proto::WeightedAddr {
    use proto::tls_identity::{DnsLikeIdentity, Strategy, UriLikeIdentity};
    let tls_identity = e.tls.as_ref().map(|tls| proto::TlsIdentity {
        strategy: Some(if tls.identity.starts_with("spiffe://") {
            Strategy::UriLikeIdentity(UriLikeIdentity {
                uri: tls.identity.clone(),
            })
        } else {
            Strategy::DnsLikeIdentity(DnsLikeIdentity {
                name: tls.identity.clone(),
            })
        }),
        server_name: Some(DnsLikeIdentity {
            name: tls.server_name.clone(),
        }),
    });
    let protocol_hint = (e.h2 || e.opaque_transport_port.is_some()).then(|| proto::ProtocolHint {
        protocol: e.h2.then_some(proto::protocol_hint::Protocol::H2(
            proto::protocol_hint::H2 {},
        )),
        opaque_transport: e
            .opaque_transport_port
            .map(|p| proto::protocol_hint::OpaqueTransport {
                inbound_port: p.into(),
            }),
    });
    proto::WeightedAddr {
        addr: Some(e.addr.into()),
        weight: WEIGHT,
        metric_labels: e.labels.clone().into_iter().collect::<HashMap<_, _>>(),
        tls_identity,
        protocol_hint,
        ..Default::default()
    }
}

pub fn profile(p: &Profile) -> proto::DestinationProfile {
    proto::DestinationProfile {
        fully_qualified_name: p.fully_qualified_name.clone(),
        opaque_protocol: p.opaque_protocol,
        routes: p
            .routes
            .iter()
            .map(|r| proto::Route {
                condition: Some(request_match(&r.condition)),
                response_classes: r
                    .response_classes
                    .iter()
                    .map(|c| proto::ResponseClass {
                        condition: Some(response_match(&c.condition)),
                        is_failure: c.is_failure,
                    })
                    .collect(),
                metrics_labels: HashMap::from([("route".to_string(), r.name.clone())]),
                is_retryable: r.is_retryable,
                timeout: r
                    .timeout
                    .and_then(|t| prost_types::Duration::try_from(t).ok()),
            })
            .collect(),
        retry_budget: p.retry_budget.as_ref().map(|b| proto::RetryBudget {
            retry_ratio: b.retry_ratio,
            min_retries_per_second: b.min_retries_per_second,
            ttl: prost_types::Duration::try_from(b.ttl).ok(),
        }),
        dst_overrides: vec![],
        endpoint: p.endpoint.as_ref().map(weighted_addr),
        parent_ref: None,
        profile_ref: p.profile_ref.as_ref().map(|(ns, name)| meta::Metadata {
            kind: Some(meta::metadata::Kind::Resource(meta::Resource {
                group: "linkerd.io".into(),
                kind: "ServiceProfile".into(),
                name: name.clone(),
                namespace: ns.clone(),
                ..Default::default()
            })),
        }),
    }
}

fn request_match(m: &RequestMatch) -> proto::RequestMatch {
    use proto::request_match::{Match, Seq};
    let kind = match m {
        RequestMatch::All(ms) => Match::All(Seq {
            matches: ms.iter().map(request_match).collect(),
        }),
        RequestMatch::Any(ms) => Match::Any(Seq {
            matches: ms.iter().map(request_match).collect(),
        }),
        RequestMatch::Not(m) => Match::Not(Box::new(request_match(m))),
        RequestMatch::PathRegex(re) => Match::Path(proto::PathMatch { regex: re.clone() }),
        RequestMatch::Method(method) => match http::Method::from_bytes(method.as_bytes()) {
            Ok(m) => Match::Method(m.into()),
            // Validation refuses unknown methods; never match one.
            Err(_) => Match::Any(Seq { matches: vec![] }),
        },
    };
    proto::RequestMatch {
        r#match: Some(kind),
    }
}

fn response_match(m: &ResponseMatch) -> proto::ResponseMatch {
    use proto::response_match::{Match, Seq};
    let kind = match m {
        ResponseMatch::All(ms) => Match::All(Seq {
            matches: ms.iter().map(response_match).collect(),
        }),
        ResponseMatch::Any(ms) => Match::Any(Seq {
            matches: ms.iter().map(response_match).collect(),
        }),
        ResponseMatch::Not(m) => Match::Not(Box::new(response_match(m))),
        ResponseMatch::Status { min, max } => Match::Status(proto::HttpStatusRange {
            min: (*min).into(),
            max: (*max).into(),
        }),
    };
    proto::ResponseMatch {
        r#match: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::update::Update as U;
    use std::collections::BTreeMap;

    fn set(exists: bool, eps: &[(&str, Option<&str>)]) -> EndpointSet {
        EndpointSet {
            exists,
            endpoints: eps
                .iter()
                .map(|(a, id)| {
                    let addr: std::net::SocketAddr = a.parse().unwrap();
                    let tls = id.map(|i| TlsIdentity {
                        identity: i.into(),
                        server_name: i.into(),
                    });
                    (
                        addr,
                        Endpoint {
                            addr,
                            h2: tls.is_some(),
                            tls,
                            opaque_transport_port: None,
                            labels: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            labels: BTreeMap::new(),
        }
    }

    fn kinds(updates: &[proto::Update]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u.update.as_ref().unwrap() {
                U::Add(s) => format!("add {}", s.addrs.len()),
                U::Remove(s) => format!("remove {}", s.addrs.len()),
                U::NoEndpoints(n) => format!("none exists={}", n.exists),
            })
            .collect()
    }

    #[test]
    fn diff_table() {
        let a = (
            "10.0.0.1:80",
            Some("a.ns.serviceaccount.identity.linkerd.cluster.local"),
        );
        let a2 = (
            "10.0.0.1:80",
            Some("z.ns.serviceaccount.identity.linkerd.cluster.local"),
        );
        let b = ("10.0.0.2:80", None);
        let cases: Vec<(Option<EndpointSet>, EndpointSet, Vec<&str>)> = vec![
            (None, EndpointSet::unknown(), vec!["none exists=false"]),
            (None, set(true, &[]), vec!["none exists=true"]),
            (None, set(true, &[a, b]), vec!["add 2"]),
            (Some(set(true, &[a, b])), set(true, &[a, b]), vec![]),
            (Some(set(true, &[a, b])), set(true, &[a]), vec!["remove 1"]),
            (Some(set(true, &[a])), set(true, &[a2, b]), vec!["add 2"]),
            (
                Some(set(true, &[a])),
                set(true, &[b]),
                vec!["remove 1", "add 1"],
            ),
            (
                Some(set(true, &[a])),
                set(true, &[]),
                vec!["none exists=true"],
            ),
            (Some(set(true, &[])), set(true, &[]), vec![]),
            (
                Some(set(true, &[a])),
                EndpointSet::unknown(),
                vec!["none exists=false"],
            ),
        ];
        for (i, (prev, cur, want)) in cases.into_iter().enumerate() {
            assert_eq!(kinds(&diff(prev.as_ref(), &cur)), want, "case {i}");
        }
    }

    #[test]
    fn weighted_addr_carries_identity_and_hints() {
        let mut e = set(
            true,
            &[("127.0.1.2:7001", Some("spiffe://cluster.local/ns/a/sa/b"))],
        )
        .endpoints
        .into_values()
        .next()
        .unwrap();
        e.opaque_transport_port = Some(4143);
        let w = weighted_addr(&e);
        let tls = w.tls_identity.unwrap();
        assert!(matches!(
            tls.strategy,
            Some(proto::tls_identity::Strategy::UriLikeIdentity(_))
        ));
        let hint = w.protocol_hint.unwrap();
        assert_eq!(hint.opaque_transport.unwrap().inbound_port, 4143);
        assert!(matches!(
            hint.protocol,
            Some(proto::protocol_hint::Protocol::H2(_))
        ));
    }
}
