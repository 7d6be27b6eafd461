//! `io.linkerd.proxy.inbound.InboundServerPolicies`: GetPort and WatchPort
//! over the policy index, with Linkerd's labels (`name`, `kind`, `group`)
//! on every Server, Authz and route, since linkerd2-proxy requires them.

use crate::routes::{hosts, http_match, route_meta};
use futures::Stream;
use linkerd2_proxy_api::inbound::inbound_server_policies_server::{
    InboundServerPolicies, InboundServerPoliciesServer,
};
use linkerd2_proxy_api::inbound::{self as proto, PortSpec};
use linkerd2_proxy_api::{grpc_route as grpc_proto, http_route as http_proto, meta};
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use ztmesh_policy::index::LookupError;
use ztmesh_policy::*;

/// The index the service reads; the store writes it.
pub type SharedIndex = Arc<Mutex<Index>>;

pub struct InboundPolicyService {
    index: SharedIndex,
}

impl InboundPolicyService {
    pub fn new(index: SharedIndex) -> Self {
        Self { index }
    }

    pub fn into_server(self) -> InboundServerPoliciesServer<Self> {
        InboundServerPoliciesServer::new(self)
    }

    fn lookup(&self, spec: &PortSpec) -> Result<(String, WorkloadRef, u16), Status> {
        let (ns, workload) =
            parse_workload(&spec.workload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let port = u16::try_from(spec.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("port {} is not a TCP port", spec.port))
            })?;
        Ok((ns, workload, port))
    }
}

/// A workload string in none of the forms [`parse_workload`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "workload {0:?} is not {{\"ns\":\"…\",\"pod\":\"…\"}}, {{\"ns\":\"…\",\"external_workload\":\"…\"}} or ns:pod"
)]
pub struct BadWorkload(pub String);

/// Accepts the forms Linkerd's policy controller accepts:
/// `{"ns":"…","pod":"…"}`, `{"ns":"…","external_workload":"…"}`, and `ns:pod`.
pub fn parse_workload(s: &str) -> Result<(String, WorkloadRef), BadWorkload> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Json {
        ns: String,
        #[serde(default)]
        pod: Option<String>,
        #[serde(default)]
        external_workload: Option<String>,
    }
    let bad = || BadWorkload(s.to_string());
    let (ns, workload) = if s.trim_start().starts_with('{') {
        let json: Json = serde_json::from_str(s).map_err(|_| bad())?;
        match (json.pod, json.external_workload) {
            (Some(pod), None) => (json.ns, WorkloadRef::Pod(pod)),
            (None, Some(ext)) => (json.ns, WorkloadRef::External(ext)),
            _ => return Err(bad()),
        }
    } else {
        let (ns, pod) = s.split_once(':').ok_or_else(bad)?;
        (ns.to_string(), WorkloadRef::Pod(pod.to_string()))
    };
    let name = match &workload {
        WorkloadRef::Pod(n) | WorkloadRef::External(n) => n,
    };
    if ns.is_empty() || name.is_empty() || name.contains(':') {
        return Err(bad());
    }
    Ok((ns, workload))
}

fn lookup_status(e: LookupError) -> Status {
    match e {
        LookupError::UnknownWorkload { .. } => Status::not_found(e.to_string()),
        LookupError::PortZero => Status::invalid_argument(e.to_string()),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::Server, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl InboundServerPolicies for InboundPolicyService {
    async fn get_port(&self, req: Request<PortSpec>) -> Result<Response<proto::Server>, Status> {
        let (ns, workload, port) = self.lookup(req.get_ref())?;
        let server = self
            .index
            .lock()
            .expect("policy index lock")
            .server(&ns, &workload, port)
            .map_err(lookup_status)?;
        Ok(Response::new(to_proto(&server)))
    }

    type WatchPortStream = WatchStream;

    async fn watch_port(&self, req: Request<PortSpec>) -> Result<Response<WatchStream>, Status> {
        let (ns, workload, port) = self.lookup(req.get_ref())?;
        let rx = self
            .index
            .lock()
            .expect("policy index lock")
            .watch(&ns, &workload, port)
            .map_err(lookup_status)?;
        tracing::debug!(%ns, ?workload, port, "watching inbound policy");
        let stream = tokio_stream::wrappers::WatchStream::new(rx);
        let stream = futures::StreamExt::map(stream, |server| Ok(to_proto(&server)));
        Ok(Response::new(Box::pin(stream)))
    }
}

fn labels(group: &str, kind: &str, name: &str) -> HashMap<String, String> {
    HashMap::from([
        ("group".to_string(), group.to_string()),
        ("kind".to_string(), kind.to_string()),
        ("name".to_string(), name.to_string()),
    ])
}

/// The domain policy as linkerd2-proxy-api's `Server`.
pub fn to_proto(srv: &InboundServer) -> proto::Server {
    use proto::proxy_protocol::Kind;
    let http = || {
        srv.http_routes
            .iter()
            .map(|(r, route)| http_route(r, route))
            .collect::<Vec<_>>()
    };
    let kind = match &srv.protocol {
        ProxyProtocol::Detect { timeout } => Kind::Detect(proto::proxy_protocol::Detect {
            timeout: prost_types::Duration::try_from(*timeout).ok(),
            http_routes: http(),
            http_local_rate_limit: None,
        }),
        ProxyProtocol::Http1 => Kind::Http1(proto::proxy_protocol::Http1 {
            routes: http(),
            local_rate_limit: None,
        }),
        ProxyProtocol::Http2 => Kind::Http2(proto::proxy_protocol::Http2 {
            routes: http(),
            local_rate_limit: None,
        }),
        ProxyProtocol::Grpc => Kind::Grpc(proto::proxy_protocol::Grpc {
            routes: srv
                .grpc_routes
                .iter()
                .map(|(r, route)| grpc_route(r, route))
                .collect(),
        }),
        ProxyProtocol::Opaque => Kind::Opaque(proto::proxy_protocol::Opaque {}),
        ProxyProtocol::Tls => Kind::Tls(proto::proxy_protocol::Tls {}),
    };
    let labels = match &srv.reference {
        ServerRef::Default(name) => labels("", "default", name),
        ServerRef::Server(name) => labels("policy.linkerd.io", "server", name),
    };
    proto::Server {
        protocol: Some(proto::ProxyProtocol { kind: Some(kind) }),
        server_ips: srv.server_ips.iter().map(|ip| (*ip).into()).collect(),
        authorizations: authorizations(&srv.authorizations),
        labels,
    }
}

fn authorizations(authzs: &BTreeMap<AuthorizationRef, ClientAuthorization>) -> Vec<proto::Authz> {
    authzs.iter().map(|(r, a)| authz(r, a)).collect()
}

fn authz(reference: &AuthorizationRef, authz: &ClientAuthorization) -> proto::Authz {
    let (kind, labels) = match reference {
        AuthorizationRef::Default(name) => (
            meta::metadata::Kind::Default(name.to_string()),
            labels("", "default", name),
        ),
        AuthorizationRef::ServerAuthorization(name) => (
            resource("policy.linkerd.io", "serverauthorization", name),
            labels("policy.linkerd.io", "serverauthorization", name),
        ),
        AuthorizationRef::AuthorizationPolicy(name) => (
            resource("policy.linkerd.io", "authorizationpolicy", name),
            labels("policy.linkerd.io", "authorizationpolicy", name),
        ),
    };
    use proto::authn::{Permit, PermitMeshTls, PermitUnauthenticated, permit_mesh_tls};
    let permit = match &authz.authentication {
        ClientAuthentication::Unauthenticated => Permit::Unauthenticated(PermitUnauthenticated {}),
        ClientAuthentication::TlsUnauthenticated => Permit::MeshTls(PermitMeshTls {
            clients: Some(permit_mesh_tls::Clients::Unauthenticated(
                PermitUnauthenticated {},
            )),
        }),
        ClientAuthentication::TlsAuthenticated(ids) => Permit::MeshTls(PermitMeshTls {
            clients: Some(permit_mesh_tls::Clients::Identities(
                permit_mesh_tls::PermitClientIdentities {
                    identities: ids
                        .iter()
                        .filter_map(|i| match i {
                            IdentityMatch::Exact(name) => {
                                Some(proto::Identity { name: name.clone() })
                            }
                            IdentityMatch::Suffix(_) => None,
                        })
                        .collect(),
                    suffixes: ids
                        .iter()
                        .filter_map(|i| match i {
                            IdentityMatch::Suffix(parts) => Some(proto::IdentitySuffix {
                                parts: parts.clone(),
                            }),
                            IdentityMatch::Exact(_) => None,
                        })
                        .collect(),
                },
            )),
        }),
    };
    proto::Authz {
        metadata: Some(meta::Metadata { kind: Some(kind) }),
        labels,
        networks: authz
            .networks
            .iter()
            .map(|n| proto::Network {
                net: Some(n.net.into()),
                except: n.except.iter().map(|e| (*e).into()).collect(),
            })
            .collect(),
        authentication: Some(proto::Authn {
            permit: Some(permit),
        }),
    }
}

fn resource(group: &str, kind: &str, name: &str) -> meta::metadata::Kind {
    meta::metadata::Kind::Resource(meta::Resource {
        group: group.into(),
        kind: kind.into(),
        name: name.into(),
        ..Default::default()
    })
}

fn header(v: &ValueMatch) -> http_proto::HeaderMatch {
    use http_proto::header_match::Value;
    match v {
        ValueMatch::Exact { name, value } => http_proto::HeaderMatch {
            name: name.clone(),
            value: Some(Value::Exact(value.clone().into_bytes())),
        },
        ValueMatch::Regex { name, value } => http_proto::HeaderMatch {
            name: name.clone(),
            value: Some(Value::Regex(value.clone())),
        },
    }
}

fn http_route(r: &RouteRef, route: &HttpRoute) -> proto::HttpRoute {
    proto::HttpRoute {
        metadata: Some(route_meta(r)),
        hosts: hosts(&route.hostnames),
        authorizations: authorizations(&route.authorizations),
        rules: route
            .rules
            .iter()
            .map(|matches| proto::http_route::Rule {
                matches: matches.iter().map(http_match).collect(),
                filters: vec![],
            })
            .collect(),
    }
}

fn grpc_route(r: &RouteRef, route: &GrpcRoute) -> proto::GrpcRoute {
    let rules = route
        .rules
        .iter()
        .map(|matches| proto::grpc_route::Rule {
            matches: matches
                .iter()
                .map(|m| grpc_proto::GrpcRouteMatch {
                    rpc: (m.service.is_some() || m.method.is_some()).then(|| {
                        grpc_proto::GrpcRpcMatch {
                            service: m.service.clone().unwrap_or_default(),
                            method: m.method.clone().unwrap_or_default(),
                        }
                    }),
                    headers: m.headers.iter().map(header).collect(),
                })
                .collect(),
            filters: vec![],
        })
        .collect();
    proto::GrpcRoute {
        metadata: Some(route_meta(r)),
        hosts: hosts(&route.hostnames),
        authorizations: authorizations(&route.authorizations),
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_forms() {
        let ok = [
            (
                r#"{"ns":"booksapp","pod":"authors-1"}"#,
                "booksapp",
                WorkloadRef::Pod("authors-1".into()),
            ),
            (
                r#"{"ns":"a","external_workload":"vm1"}"#,
                "a",
                WorkloadRef::External("vm1".into()),
            ),
            (
                "booksapp:authors-1",
                "booksapp",
                WorkloadRef::Pod("authors-1".into()),
            ),
        ];
        for (s, ns, w) in ok {
            assert_eq!(parse_workload(s), Ok((ns.to_string(), w)), "{s}");
        }
        for bad in [
            "",
            "authors",
            ":x",
            "ns:",
            "a:b:c",
            r#"{"ns":"a"}"#,
            r#"{"ns":"a","pod":"p","external_workload":"e"}"#,
            r#"{"ns":"a","pod":"p","extra":1}"#,
            r#"{"ns":"a","pod":"#,
        ] {
            let err = parse_workload(bad).unwrap_err();
            assert_eq!(err, BadWorkload(bad.to_string()));
            assert!(err.to_string().contains("is not"), "{bad}: {err}");
        }
    }
}
