//! Stage: may this client connect, may it send this request? The decision
//! itself is ztmesh-authz's pure function over the port's policy (from the
//! controller, see [`super::policy`]) and the client as the TLS stage saw
//! it ([`super::tls::ClientTls`]); this stage holds the default policy
//! (`LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`) as a server for ports the
//! controller never answered for, and the one mapping from a denial to
//! what the client sees.

use super::tls::{ClientId, ClientTls};
use crate::authz_metrics::{AuthzLabels, AuthzMetrics, Family};
use crate::metrics::{PolicyLabels, TlsLabel};
use crate::proxy_http::{Body, empty, full};
use http::{Response, StatusCode};
use ipnet::IpNet;
use std::sync::Arc;
use ztmesh_authz::policy::{Authentication, Authorization, IdentityMatch, Network};
use ztmesh_authz::{Denial, PermitKey, ServerPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultPolicy {
    AllUnauthenticated,
    AllAuthenticated,
    ClusterUnauthenticated,
    ClusterAuthenticated,
    Deny,
    Audit,
}

/// A default policy name that is none of Linkerd's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a default policy (all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit)"
)]
pub struct UnknownDefaultPolicy(String);

impl std::str::FromStr for DefaultPolicy {
    type Err = UnknownDefaultPolicy;

    fn from_str(s: &str) -> Result<Self, UnknownDefaultPolicy> {
        Ok(match s {
            "all-unauthenticated" => Self::AllUnauthenticated,
            "all-authenticated" => Self::AllAuthenticated,
            "cluster-unauthenticated" => Self::ClusterUnauthenticated,
            "cluster-authenticated" => Self::ClusterAuthenticated,
            "deny" => Self::Deny,
            "audit" => Self::Audit,
            _ => return Err(UnknownDefaultPolicy(s.to_string())),
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
pub(crate) fn denied_response(denial: &Denial, grpc: bool, meshed: bool) -> Response<Body> {
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

/// One connection's authorization: the port's current policy (re-read
/// for every request, so updates apply without reconnecting), the client
/// as the TLS stage saw it, and where decisions are counted and logged.
pub(crate) struct ConnectionAuthz {
    policy: tokio::sync::watch::Receiver<super::policy::PortPolicy>,
    ip: std::net::IpAddr,
    tls: ClientTls,
    /// `tls`'s metric labels, made once per connection.
    tls_label: TlsLabel,
    target: std::net::SocketAddr,
    metrics: Arc<AuthzMetrics>,
    /// The last permit's labels for the request metrics, reused while the
    /// same server, route and authorization admit this connection's
    /// requests.
    permit_labels: std::sync::Mutex<Option<PermitLabels>>,
    /// A client verified under a federated trust domain's bundle: its
    /// identity counts only while that domain stays federated.
    federated: Option<FederatedClient>,
}

/// How often an open opaque connection from a federated client checks
/// that its trust domain is still federated.
pub(crate) const FEDERATION_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct FederatedClient {
    trust: Arc<ztmesh_tls::Trust>,
    domain: String,
}

impl FederatedClient {
    fn still_federated(&self) -> bool {
        self.trust
            .federation()
            .is_some_and(|f| f.is_federated(&self.domain))
    }
}

/// Request-metric labels of a permit, keyed by what produced them: the
/// policy value and the permit's route and authorization positions in it.
struct PermitLabels {
    server: Arc<ServerPolicy>,
    key: PermitKey,
    labels: Arc<PolicyLabels>,
}

impl ConnectionAuthz {
    pub(crate) fn new(
        policy: tokio::sync::watch::Receiver<super::policy::PortPolicy>,
        ip: std::net::IpAddr,
        tls: ClientTls,
        target: std::net::SocketAddr,
        metrics: Arc<AuthzMetrics>,
    ) -> Self {
        Self {
            policy,
            ip,
            tls_label: tls.metric_label(),
            tls,
            target,
            metrics,
            permit_labels: Default::default(),
            federated: None,
        }
    }

    /// Judges the client's identity against `trust`'s federation at every
    /// request: a client of a federated trust domain that is no longer
    /// federated counts as unauthenticated from then on, on its open
    /// connection too (new handshakes from it are refused by the verifier).
    pub(crate) fn with_federation(mut self, trust: Option<&Arc<ztmesh_tls::Trust>>) -> Self {
        let domain = self
            .client_id()
            .and_then(|id| ztmesh_tls::federation::trust_domain_of(id.as_str()));
        if let (Some(trust), Some(domain)) = (trust, domain)
            && let Some(federation) = trust.federation()
            && domain != federation.local_domain()
        {
            self.federated = Some(FederatedClient {
                trust: trust.clone(),
                domain: domain.to_string(),
            });
        }
        self
    }

    /// The client as policy sees it now.
    fn authz_client(&self) -> ztmesh_authz::Client<'_> {
        let mut client = self.tls.authz_client(self.ip);
        if let Some(f) = &self.federated
            && !f.still_federated()
        {
            client.identity = None;
        }
        client
    }

    /// The client's TLS, as the TLS stage saw it.
    pub(crate) fn client(&self) -> &ClientTls {
        &self.tls
    }

    /// The client's verified identity, if it proved one.
    pub(crate) fn client_id(&self) -> Option<&ClientId> {
        self.tls.client_id()
    }

    /// The client's TLS labels for metrics.
    pub(crate) fn tls_label(&self) -> &TlsLabel {
        &self.tls_label
    }

    fn client_name(&self) -> &str {
        self.client_id().map_or("-", ClientId::as_str)
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
    pub(crate) fn check_request<B>(
        &self,
        req: &http::Request<B>,
    ) -> Result<Arc<PolicyLabels>, Box<Response<Body>>> {
        let server = self.policy.borrow().server.clone();
        match ztmesh_authz::decide_request(&server, self.authz_client(), req, None) {
            Ok(permit) => {
                let (rk, rn) = permit.route.unwrap_or(("", ""));
                let a = permit.authorization;
                if permit.audit() {
                    tracing::info!(server = %server.label(), route = %format!("{rk}/{rn}"), client = self.client_name(), client_ip = %self.ip, method = %req.method(), path = req.uri().path(), "request allowed by audit; it would be denied");
                }
                // A request no route names goes by linkerd's default route.
                let route_labels = if rn.is_empty() {
                    ("default", "default")
                } else {
                    (rk, rn)
                };
                self.metrics.record(
                    Family::HttpAllow,
                    &self.labels(&server, route_labels, (&a.kind, &a.name)),
                );
                let mut cached = self.permit_labels.lock().expect("permit labels lock");
                if let Some(c) = cached.as_ref()
                    && Arc::ptr_eq(&c.server, &server)
                    && c.key == permit.key
                {
                    return Ok(c.labels.clone());
                }
                let labels: Arc<PolicyLabels> = crate::metrics::permit_labels(
                    (&server.kind, &server.name),
                    self.target.port(),
                    route_labels,
                    (&a.kind, &a.name),
                )
                .into();
                *cached = Some(PermitLabels {
                    server: server.clone(),
                    key: permit.key,
                    labels: labels.clone(),
                });
                Ok(labels)
            }
            Err(denial) => {
                let route = denial.route().unwrap_or("");
                let (rk, rn) = route.split_once('/').unwrap_or(("", ""));
                // As linkerd2-proxy's: a denial names its route (the
                // default one when no route matched by name), a request
                // no route takes names none.
                let (family, route_labels) = match denial {
                    Denial::RouteNotFound { .. } => (Family::HttpRouteNotFound, ("", "")),
                    _ if rn.is_empty() => (Family::HttpDeny, ("default", "default")),
                    _ => (Family::HttpDeny, (rk, rn)),
                };
                self.metrics
                    .record(family, &self.labels(&server, route_labels, ("", "")));
                tracing::info!(server = %server.label(), route = %route, client = self.client_name(), client_ip = %self.ip, method = %req.method(), path = req.uri().path(), reason = %denial, "request denied");
                let grpc = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                Err(Box::new(denied_response(
                    &denial,
                    grpc,
                    self.client_id().is_some(),
                )))
            }
        }
    }

    /// An opaque connection: counted and logged either way.
    pub(crate) fn check_connection(&self, family_on_deny: Family) -> Result<(), Denial> {
        let server = self.policy.borrow().server.clone();
        match ztmesh_authz::decide_connection(&server, self.authz_client(), None) {
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
                tracing::info!(server = %server.label(), client = self.client_name(), client_ip = %self.ip, target = %self.target, reason = %denial, "{what}");
                Err(denial)
            }
        }
    }

    /// Resolves when a policy update revokes this (opaque) connection, or,
    /// for a federated client, when its trust domain stops being federated
    /// (looked at every [`FEDERATION_RECHECK`]).
    pub(crate) async fn revoked(&mut self) {
        let mut policy_open = true;
        let mut tick = tokio::time::interval(FEDERATION_RECHECK);
        loop {
            tokio::select! {
                r = self.policy.changed(), if policy_open => policy_open = r.is_ok(),
                _ = tick.tick(), if self.federated.is_some() => {}
                () = std::future::pending(), if !policy_open && self.federated.is_none() => {}
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

    #[test]
    fn permit_labels_are_cached_per_route_and_authorization() {
        use super::super::policy::PortPolicy;
        use super::super::tls::NoTlsReason;
        let mut server = DefaultPolicy::AllUnauthenticated.server(&[]);
        let mut books = ztmesh_authz::policy::Route::default_http();
        books.kind = "httproute".into();
        books.name = "books".into();
        books.rules[0].matches[0].path = Some(ztmesh_authz::policy::PathMatch::prefix("/books"));
        server.http_routes.push(books);
        let port = |server| PortPolicy {
            server: Arc::new(server),
            from_controller: true,
        };
        let (tx, rx) = tokio::sync::watch::channel(port(server));
        let authz = ConnectionAuthz::new(
            rx,
            "10.0.0.1".parse().unwrap(),
            ClientTls::Plaintext(NoTlsReason::NotTls),
            "127.0.0.1:8080".parse().unwrap(),
            Arc::default(),
        );
        let check = |path: &str| {
            authz
                .check_request(&http::Request::get(path).body(()).unwrap())
                .unwrap()
        };
        let (a, a2) = (check("/a"), check("/b"));
        assert!(Arc::ptr_eq(&a, &a2), "same permit, same labels: {a:?}");
        assert_eq!(a.route_name(), Some("default"), "{a:?}");
        let (b, b2) = (check("/books/1"), check("/books/2"));
        assert!(Arc::ptr_eq(&b, &b2), "{b:?}");
        assert_eq!(b.route_name(), Some("books"), "{b:?}");
        assert_eq!(a.authz_name(), Some("all-unauthenticated"), "{a:?}");
        // A new policy value: the same positions name other things.
        tx.send_replace(port(DefaultPolicy::Audit.server(&[])));
        let c = check("/a");
        assert_eq!(c.authz_name(), Some("audit"), "{c:?}");
    }
}
