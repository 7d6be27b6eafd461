//! Stage: may this client connect, may it send this request? The decision
//! itself is ztmesh-authz's pure function over the port's policy (from the
//! controller, see [`super::policy`]); this stage holds the default policy
//! (`LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`) as a server for ports the
//! controller never answered for, and the one mapping from a denial to
//! what the client sees.

use crate::authz_metrics::{AuthzLabels, AuthzMetrics, Family};
use crate::inbound::http::Body;
use crate::metrics::{PolicyLabels, TlsLabel};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use ipnet::IpNet;
use std::sync::Arc;
use ztmesh_authz::policy::{Authentication, Authorization, IdentityMatch, Network};
use ztmesh_authz::{Denial, ServerPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultPolicy {
    AllUnauthenticated,
    AllAuthenticated,
    ClusterUnauthenticated,
    ClusterAuthenticated,
    Deny,
    Audit,
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

impl DefaultPolicy {
    /// The default policy as a server, the way Linkerd's controller states
    /// it: one authorization named after the policy (none for `deny`),
    /// admitting all networks or only the cluster's, with or without an
    /// identity; `audit` admits everyone and is flagged as such.
    pub fn server(self, cluster_networks: &[IpNet]) -> ServerPolicy {
        let all: Vec<IpNet> = vec![
            "0.0.0.0/0".parse().expect("valid"),
            "::/0".parse().expect("valid"),
        ];
        let (networks, authentication) = match self {
            Self::Deny => return ServerPolicy::default_policy(self.name(), vec![]),
            Self::AllUnauthenticated | Self::Audit => (all, Authentication::Unauthenticated),
            Self::AllAuthenticated => (all, any_identity()),
            Self::ClusterUnauthenticated => {
                (cluster_networks.to_vec(), Authentication::Unauthenticated)
            }
            Self::ClusterAuthenticated => (cluster_networks.to_vec(), any_identity()),
        };
        ServerPolicy::default_policy(
            self.name(),
            vec![Authorization {
                kind: "default".into(),
                name: self.name().into(),
                networks: networks
                    .into_iter()
                    .map(|net| Network {
                        net,
                        except: vec![],
                    })
                    .collect(),
                authentication,
            }],
        )
    }
}

fn any_identity() -> Authentication {
    Authentication::TlsAuthenticated(vec![IdentityMatch::parse("*")])
}

/// The one place where a denial becomes what the client sees: 404 for no
/// route, 403 otherwise; gRPC callers get HTTP 200 with `grpc-status` 5
/// (NOT_FOUND) or 7 (PERMISSION_DENIED). Meshed clients also get the
/// reason in `l5d-proxy-error`; others only the status.
pub fn denied_response(denial: &Denial, grpc: bool, meshed: bool) -> Response<Body> {
    let (status, grpc_status) = match denial {
        Denial::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "5"),
        Denial::Unauthenticated { .. } | Denial::Unauthorized { .. } => {
            (StatusCode::FORBIDDEN, "7")
        }
    };
    let reason = denial.to_string();
    let mut rsp = if grpc {
        let mut r = Response::new(empty());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static(grpc_status));
        if let Ok(v) = http::HeaderValue::from_str(&reason) {
            r.headers_mut().insert("grpc-message", v);
        }
        r
    } else {
        let mut r = Response::new(full(format!(
            "{}\n",
            status.canonical_reason().unwrap_or("")
        )));
        *r.status_mut() = status;
        r
    };
    if meshed && let Ok(v) = http::HeaderValue::from_str(&reason) {
        rsp.headers_mut().insert("l5d-proxy-error", v);
    }
    rsp
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

fn full(s: String) -> Body {
    http_body_util::Full::new(bytes::Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

/// One connection's authorization: the port's current policy (re-read
/// for every request, so updates apply without reconnecting), the client,
/// and where decisions are counted and logged.
pub struct ConnectionAuthz {
    pub policy: tokio::sync::watch::Receiver<super::policy::PortPolicy>,
    pub ip: std::net::IpAddr,
    /// The proxy terminated TLS (with or without a client certificate).
    pub tls: bool,
    pub identity: Option<String>,
    pub tls_label: TlsLabel,
    pub target: std::net::SocketAddr,
    pub metrics: Arc<AuthzMetrics>,
    /// The last permit's labels for the request metrics, reused while the
    /// same server, route and authorization admit this connection's
    /// requests.
    pub permit_labels: std::sync::Mutex<Option<PermitLabels>>,
}

/// Request-metric labels of a permit, keyed by what produced them: the
/// policy (held, so the addresses below stay valid) and the addresses of
/// the route's name and of the authorization within it.
pub struct PermitLabels {
    server: Arc<ServerPolicy>,
    route: usize,
    authz: usize,
    labels: Arc<PolicyLabels>,
}

impl ConnectionAuthz {
    fn client(&self) -> ztmesh_authz::Client<'_> {
        ztmesh_authz::Client {
            ip: self.ip,
            tls: self.tls,
            identity: self.identity.as_deref(),
        }
    }

    fn labels<'a>(
        &'a self,
        server: &'a ServerPolicy,
        route: (&'a str, &'a str),
        authz: (&'a str, &'a str),
    ) -> AuthzLabels<'a> {
        AuthzLabels {
            target: self.target,
            server: (&server.kind, &server.name),
            route,
            authz,
            tls: &self.tls_label,
        }
    }

    /// An HTTP request: the permit's labels for the request metrics
    /// (server, route, authorization) to forward it, or the response to send.
    pub fn check_request<B>(
        &self,
        req: &http::Request<B>,
    ) -> Result<Arc<PolicyLabels>, Box<Response<Body>>> {
        let server = self.policy.borrow().server.clone();
        match ztmesh_authz::decide_request(&server, self.client(), req, None) {
            Ok(permit) => {
                let (rk, rn) = permit.route.unwrap_or(("", ""));
                let a = permit.authorization;
                if permit.audit() {
                    tracing::info!(server = %server.label(), route = %format!("{rk}/{rn}"), client = self.identity.as_deref().unwrap_or("-"), client_ip = %self.ip, method = %req.method(), path = req.uri().path(), "request allowed by audit; it would be denied");
                }
                self.metrics.record(
                    Family::HttpAllow,
                    &self.labels(&server, (rk, rn), (&a.kind, &a.name)),
                );
                let (route, authz) = (rn.as_ptr() as usize, a as *const Authorization as usize);
                let mut cached = self.permit_labels.lock().expect("permit labels lock");
                if let Some(c) = cached.as_ref()
                    && Arc::ptr_eq(&c.server, &server)
                    && (c.route, c.authz) == (route, authz)
                {
                    return Ok(c.labels.clone());
                }
                // A request no route names goes by linkerd's default route.
                let route_labels = if rn.is_empty() {
                    ("default", "default")
                } else {
                    (rk, rn)
                };
                let labels: Arc<PolicyLabels> = crate::metrics::permit_labels(
                    (&server.kind, &server.name),
                    self.target.port(),
                    route_labels,
                    (&a.kind, &a.name),
                )
                .into();
                *cached = Some(PermitLabels {
                    server: server.clone(),
                    route,
                    authz,
                    labels: labels.clone(),
                });
                Ok(labels)
            }
            Err(denial) => {
                let route = denial.route().unwrap_or("");
                let (rk, rn) = route.split_once('/').unwrap_or(("", ""));
                let family = match denial {
                    Denial::RouteNotFound { .. } => Family::HttpRouteNotFound,
                    _ => Family::HttpDeny,
                };
                self.metrics
                    .record(family, &self.labels(&server, (rk, rn), ("", "")));
                tracing::info!(server = %server.label(), route = %route, client = self.identity.as_deref().unwrap_or("-"), client_ip = %self.ip, method = %req.method(), path = req.uri().path(), reason = %denial, "request denied");
                let grpc = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                Err(Box::new(denied_response(
                    &denial,
                    grpc,
                    self.identity.is_some(),
                )))
            }
        }
    }

    /// An opaque connection: counted and logged either way.
    pub fn check_connection(&self, family_on_deny: Family) -> Result<(), Denial> {
        let server = self.policy.borrow().server.clone();
        match ztmesh_authz::decide_connection(&server, self.client(), None) {
            Ok(permit) => {
                if family_on_deny == Family::TcpDeny {
                    let a = permit.authorization;
                    self.metrics.record(
                        Family::TcpAllow,
                        &self.labels(&server, ("", ""), (&a.kind, &a.name)),
                    );
                }
                Ok(())
            }
            Err(denial) => {
                self.metrics
                    .record(family_on_deny, &self.labels(&server, ("", ""), ("", "")));
                let what = if family_on_deny == Family::TcpTerminate {
                    "connection terminated: the policy no longer admits it"
                } else {
                    "connection denied"
                };
                tracing::info!(server = %server.label(), client = self.identity.as_deref().unwrap_or("-"), client_ip = %self.ip, target = %self.target, reason = %denial, "{what}");
                Err(denial)
            }
        }
    }

    /// Resolves when a policy update revokes this (opaque) connection.
    pub async fn revoked(&mut self) {
        loop {
            if self.policy.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self.check_connection(Family::TcpTerminate).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn denials_as_clients_see_them() {
        let server = "server/authors".to_string();
        let route = Some("httproute/authors-get-route".to_string());
        let cases = [
            (
                Denial::RouteNotFound {
                    server: server.clone(),
                },
                false,
                true,
                404,
                None,
            ),
            (
                Denial::Unauthorized {
                    server: server.clone(),
                    route: route.clone(),
                },
                false,
                true,
                403,
                None,
            ),
            (
                Denial::Unauthenticated {
                    server: server.clone(),
                    route: route.clone(),
                },
                false,
                false,
                403,
                None,
            ),
            (
                Denial::Unauthorized {
                    server: server.clone(),
                    route,
                },
                true,
                true,
                200,
                Some("7"),
            ),
            (
                Denial::RouteNotFound { server },
                true,
                false,
                200,
                Some("5"),
            ),
        ];
        for (denial, grpc, meshed, status, grpc_status) in cases {
            let rsp = denied_response(&denial, grpc, meshed);
            assert_eq!(rsp.status().as_u16(), status, "{denial}");
            assert_eq!(
                rsp.headers()
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap()),
                grpc_status,
                "{denial}"
            );
            assert_eq!(
                rsp.headers().contains_key("l5d-proxy-error"),
                meshed,
                "only meshed clients learn why: {denial}"
            );
        }
    }

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
        for (policy, identity, ip, allowed) in cases {
            let server = policy.server(&cluster);
            let client = ztmesh_authz::Client {
                ip,
                tls: identity.is_some(),
                identity,
            };
            assert_eq!(
                ztmesh_authz::decide_connection(&server, client, None).is_ok(),
                allowed,
                "{policy:?} {identity:?} {ip}"
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
