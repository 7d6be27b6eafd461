//! The decision as a table: the seeds' policies (booksapp authors, the
//! api-server ServerAuthorization, namespace default deny), Linkerd's
//! default policies, networks with exceptions, identities and suffixes,
//! route matching and precedence, gRPC routes, audit.

use std::sync::Arc;
use ztmesh_authz::policy::{Authorizations, HostMatch};
use ztmesh_authz::*;

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TRAFFIC: &str = "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEB_FRONTEND: &str = "web-frontend.my-app.serviceaccount.identity.linkerd.cluster.local";
const LEGACY: &str = "legacy-service.legacy.serviceaccount.identity.linkerd.cluster.local";
const CLUSTER: [&str; 5] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fd00::/8",
];

fn nets(cidrs: &[&str]) -> Vec<Network> {
    cidrs
        .iter()
        .map(|c| Network {
            net: c.parse().unwrap(),
            except: vec![],
        })
        .collect()
}

fn all() -> Vec<Network> {
    nets(&["0.0.0.0/0", "::/0"])
}

fn authz(kind: &str, name: &str, networks: Vec<Network>, auth: Authentication) -> Authorization {
    Authorization {
        kind: kind.into(),
        name: name.into(),
        networks,
        authentication: auth,
    }
}

fn ids(list: &[&str]) -> Authentication {
    Authentication::TlsAuthenticated(list.iter().map(|i| IdentityMatch::parse(i)).collect())
}

fn server(name: &str, protocol: Protocol, authzs: Vec<Authorization>) -> ServerPolicy {
    ServerPolicy {
        kind: "server".into(),
        name: name.into(),
        protocol,
        authorizations: Arc::new(Authorizations::new(authzs)),
        http_routes: vec![Route::default_http()],
        grpc_routes: vec![Route::default_grpc()],
    }
}

fn route(name: &str, rules: Vec<Vec<HttpMatch>>, authzs: Vec<Authorization>) -> Route<HttpMatch> {
    Route {
        kind: "httproute".into(),
        name: name.into(),
        hostnames: vec![],
        rules: rules
            .into_iter()
            .map(|matches| RouteMatches { matches })
            .collect(),
        authorizations: Arc::new(Authorizations::new(authzs)),
    }
}

fn get_prefix(p: &str) -> HttpMatch {
    HttpMatch {
        path: Some(PathMatch::prefix(p)),
        method: Some(http::Method::GET),
        ..Default::default()
    }
}

/// seed003: only books and webapp may GET the authors routes.
fn booksapp_authors() -> ServerPolicy {
    let mut s = server("authors", Protocol::Http1, vec![]);
    s.http_routes = vec![route(
        "authors-get-route",
        vec![vec![get_prefix("/authors.json"), get_prefix("/authors/")]],
        vec![authz(
            "authorizationpolicy",
            "authors-get-policy",
            all(),
            ids(&[BOOKS, WEBAPP]),
        )],
    )];
    s
}

/// seed002: Server api-server (HTTP/2) and ServerAuthorization
/// allow-web-to-api for the web-frontend service account (legacy
/// semantics: no networks means the cluster networks).
fn api_server() -> ServerPolicy {
    server(
        "api-server",
        Protocol::Http2,
        vec![authz(
            "serverauthorization",
            "allow-web-to-api",
            nets(&CLUSTER),
            ids(&[WEB_FRONTEND]),
        )],
    )
}

/// seed002: a Server with no authorization denies everything.
fn default_deny() -> ServerPolicy {
    server("default-deny", Protocol::Detect, vec![])
}

/// Linkerd's default policies, as the controller sends them.
fn default_policy(name: &str) -> ServerPolicy {
    let (networks, auth) = match name {
        "all-unauthenticated" | "audit" => (all(), Authentication::Unauthenticated),
        "all-authenticated" => (all(), ids(&["*"])),
        "cluster-unauthenticated" => (nets(&CLUSTER), Authentication::Unauthenticated),
        "cluster-authenticated" => (nets(&CLUSTER), ids(&["*"])),
        "deny" => return ServerPolicy::default_policy(name, vec![]),
        _ => unreachable!(),
    };
    ServerPolicy::default_policy(name, vec![authz("default", name, networks, auth)])
}

fn networks_with_except() -> ServerPolicy {
    server(
        "db",
        Protocol::Opaque,
        vec![authz(
            "authorizationpolicy",
            "internal-only",
            vec![Network {
                net: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.9.0.0/16".parse().unwrap()],
            }],
            Authentication::Unauthenticated,
        )],
    )
}

fn tls_unauthenticated() -> ServerPolicy {
    server(
        "tls-any",
        Protocol::Detect,
        vec![authz(
            "serverauthorization",
            "any-tls",
            all(),
            Authentication::TlsUnauthenticated,
        )],
    )
}

fn suffix() -> ServerPolicy {
    server(
        "booksapp-only",
        Protocol::Detect,
        vec![authz(
            "authorizationpolicy",
            "same-namespace",
            all(),
            ids(&["*.booksapp.serviceaccount.identity.linkerd.cluster.local"]),
        )],
    )
}

/// Routes of every match kind; the server admits anyone meshed.
fn matching() -> ServerPolicy {
    let mut s = server(
        "api",
        Protocol::Http1,
        vec![authz("authorizationpolicy", "meshed", all(), ids(&["*"]))],
    );
    let public = vec![authz(
        "authorizationpolicy",
        "public",
        all(),
        Authentication::Unauthenticated,
    )];
    s.http_routes = vec![
        route("prefix-api", vec![vec![get_prefix("/api")]], vec![]),
        route(
            "prefix-api-public",
            vec![vec![get_prefix("/api/public")]],
            public.clone(),
        ),
        route(
            "exact-health",
            vec![vec![HttpMatch {
                path: Some(PathMatch::Exact("/healthz".into())),
                ..Default::default()
            }]],
            public.clone(),
        ),
        route(
            "regex-orders",
            vec![vec![HttpMatch {
                path: Some(PathMatch::regex("/orders/[0-9]+")),
                ..Default::default()
            }]],
            public.clone(),
        ),
        route(
            "header-canary",
            vec![vec![HttpMatch {
                path: Some(PathMatch::prefix("/api")),
                headers: vec![ValueMatch::exact("x-canary", "true")],
                method: Some(http::Method::GET),
                ..Default::default()
            }]],
            public.clone(),
        ),
        route(
            "query-debug",
            vec![vec![HttpMatch {
                path: Some(PathMatch::prefix("/debug")),
                query_params: vec![ValueMatch::regex("level", "[0-9]")],
                ..Default::default()
            }]],
            public.clone(),
        ),
        Route {
            hostnames: vec![HostMatch::parse("*.example.com")],
            ..route("host-example", vec![vec![get_prefix("/site")]], public)
        },
    ];
    s
}

fn grpc() -> ServerPolicy {
    let mut s = server("grpc", Protocol::Grpc, vec![]);
    s.grpc_routes = vec![
        Route {
            kind: "grpcroute".into(),
            name: "echo-say".into(),
            hostnames: vec![],
            rules: vec![RouteMatches {
                matches: vec![GrpcMatch {
                    service: Some("ztmesh.sample.Echo".into()),
                    method: Some("Say".into()),
                    headers: vec![],
                }],
            }],
            authorizations: Arc::new(Authorizations::new(vec![authz(
                "authorizationpolicy",
                "webapp-only",
                all(),
                ids(&[WEBAPP]),
            )])),
        },
        Route {
            kind: "grpcroute".into(),
            name: "echo-any".into(),
            hostnames: vec![],
            rules: vec![RouteMatches {
                matches: vec![GrpcMatch {
                    service: Some("ztmesh.sample.Echo".into()),
                    method: None,
                    headers: vec![],
                }],
            }],
            authorizations: Arc::new(Authorizations::new(vec![authz(
                "authorizationpolicy",
                "books-only",
                all(),
                ids(&[BOOKS]),
            )])),
        },
    ];
    s
}

/// A server that admits webapp, with Server accessPolicy audit behind it.
fn audited() -> ServerPolicy {
    server(
        "audited",
        Protocol::Detect,
        vec![
            authz("authorizationpolicy", "webapp", all(), ids(&[WEBAPP])),
            authz("default", "audit", all(), Authentication::Unauthenticated),
        ],
    )
}

#[derive(Clone, Copy)]
enum Ask {
    /// (method, path-and-query, extra header)
    Http(
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
    ),
    Host(&'static str, &'static str),
    Tcp,
}

#[derive(Debug, PartialEq, Eq)]
enum Want {
    /// (route name or "", authorization name)
    Allow(&'static str, &'static str),
    Audit,
    Unauthenticated,
    Unauthorized,
    NotFound,
}

fn run(policy: &ServerPolicy, ip: &str, tls: bool, identity: Option<&str>, ask: Ask) -> Want {
    let client = Client {
        ip: ip.parse().unwrap(),
        tls,
        identity,
    };
    let result = match ask {
        Ask::Tcp => decide_connection(policy, client, None),
        Ask::Http(method, path, header) => {
            let mut b = http::Request::builder().method(method).uri(path);
            if let Some((k, v)) = header {
                b = b.header(k, v);
            }
            decide_request(policy, client, &b.body(()).unwrap(), None)
        }
        Ask::Host(host, path) => {
            let req = http::Request::get(path)
                .header("host", host)
                .body(())
                .unwrap();
            decide_request(policy, client, &req, None)
        }
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    match result {
        Ok(p) if p.audit() => Want::Audit,
        Ok(p) => Want::Allow(
            leak(p.route_name().to_string()),
            leak(p.authorization.name.clone()),
        ),
        Err(Denial::RouteNotFound { .. }) => Want::NotFound,
        Err(Denial::Unauthenticated { .. }) => Want::Unauthenticated,
        Err(Denial::Unauthorized { .. }) => Want::Unauthorized,
    }
}

#[test]
fn decision_table() {
    use Ask::*;
    use Want::*;
    let (authors, api, deny_all) = (booksapp_authors(), api_server(), default_deny());
    let (except, tls_any, sfx, m, g, audit) = (
        networks_with_except(),
        tls_unauthenticated(),
        suffix(),
        matching(),
        grpc(),
        audited(),
    );
    let defaults: Vec<ServerPolicy> = [
        "all-unauthenticated",
        "all-authenticated",
        "cluster-unauthenticated",
        "cluster-authenticated",
        "deny",
        "audit",
    ]
    .into_iter()
    .map(default_policy)
    .collect();
    let get = |p| Http("GET", p, None);
    #[rustfmt::skip]
    let cases: Vec<(&str, &ServerPolicy, &str, bool, Option<&str>, Ask, Want)> = vec![
        // seed003: booksapp authors.
        ("books GETs authors.json", &authors, "10.1.0.5", true, Some(BOOKS), get("/authors.json"), Allow("authors-get-route", "authors-get-policy")),
        ("webapp GETs an author", &authors, "10.1.0.6", true, Some(WEBAPP), get("/authors/12.json"), Allow("authors-get-route", "authors-get-policy")),
        ("query strings do not matter", &authors, "10.1.0.6", true, Some(WEBAPP), get("/authors.json?page=2"), Allow("authors-get-route", "authors-get-policy")),
        ("the prefix /authors/ covers /authors", &authors, "10.1.0.6", true, Some(WEBAPP), get("/authors"), Allow("authors-get-route", "authors-get-policy")),
        ("traffic may not GET authors", &authors, "10.1.0.7", true, Some(TRAFFIC), get("/authors.json"), Unauthorized),
        ("plaintext may not GET authors", &authors, "10.1.0.8", false, None, get("/authors.json"), Unauthenticated),
        ("TLS without identity may not", &authors, "10.1.0.8", true, None, get("/authors.json"), Unauthenticated),
        ("POST matches no route", &authors, "10.1.0.6", true, Some(WEBAPP), Http("POST", "/authors.json", None), NotFound),
        ("DELETE matches no route", &authors, "10.1.0.5", true, Some(BOOKS), Http("DELETE", "/authors/1.json", None), NotFound),
        ("other paths match no route", &authors, "10.1.0.6", true, Some(WEBAPP), get("/books.json"), NotFound),
        ("prefixes match whole segments", &authors, "10.1.0.6", true, Some(WEBAPP), get("/authors.jsonx"), NotFound),
        ("opaque connections use server authorizations (none)", &authors, "10.1.0.6", true, Some(WEBAPP), Tcp, Unauthorized),
        // seed002: api-server and its ServerAuthorization.
        ("web-frontend reaches api-server", &api, "10.2.0.4", true, Some(WEB_FRONTEND), get("/api/users"), Allow("default", "allow-web-to-api")),
        ("web-frontend over TCP", &api, "10.2.0.4", true, Some(WEB_FRONTEND), Tcp, Allow("", "allow-web-to-api")),
        ("legacy-service (unmeshed) is denied", &api, "10.3.0.9", false, None, get("/api/users"), Unauthenticated),
        ("legacy-service with another identity is denied", &api, "10.3.0.9", true, Some(LEGACY), get("/api/users"), Unauthorized),
        ("legacy semantics: only cluster networks", &api, "203.0.113.5", true, Some(WEB_FRONTEND), get("/api/users"), Unauthorized),
        // seed002: namespace default deny.
        ("default deny: meshed", &deny_all, "10.2.0.4", true, Some(WEB_FRONTEND), get("/"), Unauthorized),
        ("default deny: plaintext", &deny_all, "10.2.0.5", false, None, get("/"), Unauthorized),
        ("default deny: TCP", &deny_all, "10.2.0.4", true, Some(WEB_FRONTEND), Tcp, Unauthorized),
        // Linkerd's default policies.
        ("all-unauthenticated admits plaintext anywhere", &defaults[0], "203.0.113.9", false, None, get("/"), Allow("default", "all-unauthenticated")),
        ("all-authenticated wants an identity", &defaults[1], "10.0.0.1", false, None, get("/"), Unauthenticated),
        ("all-authenticated admits any identity", &defaults[1], "203.0.113.9", true, Some(LEGACY), Tcp, Allow("", "all-authenticated")),
        ("cluster-unauthenticated admits the cluster", &defaults[2], "172.16.4.4", false, None, get("/"), Allow("default", "cluster-unauthenticated")),
        ("cluster-unauthenticated refuses the internet", &defaults[2], "203.0.113.9", false, None, get("/"), Unauthorized),
        ("cluster-authenticated: in cluster, meshed", &defaults[3], "10.9.9.9", true, Some(BOOKS), get("/"), Allow("default", "cluster-authenticated")),
        ("cluster-authenticated: in cluster, plaintext", &defaults[3], "10.9.9.9", false, None, get("/"), Unauthenticated),
        ("cluster-authenticated: outside, meshed", &defaults[3], "8.8.8.8", true, Some(BOOKS), get("/"), Unauthorized),
        ("cluster networks include IPv6 ULAs", &defaults[3], "fd00::12", true, Some(BOOKS), Tcp, Allow("", "cluster-authenticated")),
        ("deny admits no one", &defaults[4], "10.0.0.1", true, Some(BOOKS), get("/"), Unauthorized),
        ("audit admits everyone, flagged", &defaults[5], "203.0.113.9", false, None, get("/"), Audit),
        // Networks with exceptions.
        ("inside the network", &except, "10.1.2.3", false, None, Tcp, Allow("", "internal-only")),
        ("inside the exception", &except, "10.9.2.3", false, None, Tcp, Unauthorized),
        ("outside the network", &except, "192.168.1.1", false, None, Tcp, Unauthorized),
        // Any TLS.
        ("unauthenticated TLS: TLS without identity", &tls_any, "10.0.0.1", true, None, Tcp, Allow("", "any-tls")),
        ("unauthenticated TLS: plaintext", &tls_any, "10.0.0.1", false, None, Tcp, Unauthenticated),
        // Identity suffixes.
        ("suffix admits the namespace", &sfx, "10.0.0.1", true, Some(BOOKS), get("/"), Allow("default", "same-namespace")),
        ("suffix refuses another namespace", &sfx, "10.0.0.1", true, Some(WEB_FRONTEND), get("/"), Unauthorized),
        // Route matching and precedence.
        ("the longer prefix wins", &m, "10.0.0.1", false, None, get("/api/public/x"), Allow("prefix-api-public", "public")),
        ("the shorter prefix, meshed only", &m, "10.0.0.1", false, None, get("/api/private"), Unauthenticated),
        ("server authorizations follow the route's", &m, "10.0.0.1", true, Some(BOOKS), get("/api/private"), Allow("prefix-api", "meshed")),
        ("exact path", &m, "10.0.0.1", false, None, get("/healthz"), Allow("exact-health", "public")),
        ("exact is exact", &m, "10.0.0.1", false, None, get("/healthz/x"), NotFound),
        ("regex path, whole path", &m, "10.0.0.1", false, None, get("/orders/42"), Allow("regex-orders", "public")),
        ("regex path, anchored", &m, "10.0.0.1", false, None, get("/orders/42/items"), NotFound),
        ("a header match outranks the same prefix", &m, "10.0.0.1", false, None, Http("GET", "/api/x", Some(("x-canary", "true"))), Allow("header-canary", "public")),
        ("the header must match", &m, "10.0.0.1", false, None, Http("GET", "/api/x", Some(("x-canary", "false"))), Unauthenticated),
        ("query parameter by regex", &m, "10.0.0.1", false, None, get("/debug?level=3"), Allow("query-debug", "public")),
        ("query parameter must be present", &m, "10.0.0.1", false, None, get("/debug"), NotFound),
        ("hostname suffix", &m, "10.0.0.1", false, None, Host("www.example.com", "/site/x"), Allow("host-example", "public")),
        ("hostname must match", &m, "10.0.0.1", false, None, Host("www.example.org", "/site/x"), NotFound),
        // gRPC routes.
        ("gRPC method route for webapp", &g, "10.0.0.1", true, Some(WEBAPP), Http("POST", "/ztmesh.sample.Echo/Say", None), Allow("echo-say", "webapp-only")),
        ("gRPC method route refuses books", &g, "10.0.0.1", true, Some(BOOKS), Http("POST", "/ztmesh.sample.Echo/Say", None), Unauthorized),
        ("gRPC service route for books", &g, "10.0.0.1", true, Some(BOOKS), Http("POST", "/ztmesh.sample.Echo/Shout", None), Allow("echo-any", "books-only")),
        ("gRPC unknown service", &g, "10.0.0.1", true, Some(BOOKS), Http("POST", "/other.Svc/Call", None), NotFound),
        // Audit behind a real authorization.
        ("audit: the real authorization still names itself", &audit, "10.0.0.1", true, Some(WEBAPP), get("/"), Allow("default", "webapp")),
        ("audit: what would be denied is let through", &audit, "10.0.0.1", true, Some(BOOKS), get("/"), Audit),
    ];
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for (name, policy, ip, tls, id, ask, want) in cases {
        let got = run(policy, ip, tls, id, ask);
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn traces_explain_each_candidate() {
    let authors = booksapp_authors();
    let client = Client {
        ip: "10.1.0.7".parse().unwrap(),
        tls: true,
        identity: Some(TRAFFIC),
    };
    let req = http::Request::get("/authors.json").body(()).unwrap();
    let mut trace = Vec::new();
    let denial = decide_request(&authors, client, &req, Some(&mut trace)).unwrap_err();
    assert_eq!(
        denial.to_string(),
        "server/authors, httproute/authors-get-route: no authorization admits the client"
    );
    assert_eq!(
        trace,
        vec![
            "server/authors: GET /authors.json takes route httproute/authors-get-route".to_string(),
            format!(
                "authorization authorizationpolicy/authors-get-policy: does not list identity {TRAFFIC}"
            ),
        ]
    );
    let req = http::Request::post("/authors.json").body(()).unwrap();
    let mut trace = Vec::new();
    decide_request(&authors, client, &req, Some(&mut trace)).unwrap_err();
    assert_eq!(
        trace,
        vec![
            "server/authors: no HTTP route matches POST /authors.json (routes: httproute/authors-get-route)"
        ]
    );
}

/// A permit's key names the route and the authorization by position, so
/// callers can cache per permit without comparing addresses.
#[test]
fn permit_keys_name_route_and_authorization_positions() {
    let policy = matching();
    let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
    fn client(ip: std::net::IpAddr, identity: Option<&str>) -> Client<'_> {
        Client {
            ip,
            tls: identity.is_some(),
            identity,
        }
    }
    let get = |path: &str| http::Request::get(path).body(()).unwrap();
    let cases = [
        ("/api/public/x", None, Some(1), (AuthzList::Route, 0)),
        ("/api/x", Some(WEBAPP), Some(0), (AuthzList::Server, 0)),
        ("/healthz", None, Some(2), (AuthzList::Route, 0)),
        ("/healthz", Some(WEBAPP), Some(2), (AuthzList::Route, 0)),
    ];
    for (path, identity, route, authorization) in cases {
        let permit = decide_request(&policy, client(ip, identity), &get(path), None).unwrap();
        assert_eq!(
            permit.key,
            PermitKey {
                route,
                authorization
            },
            "{path} {identity:?}"
        );
        let (want_route, want_authz) = (
            &policy.http_routes[route.unwrap()].name,
            match authorization.0 {
                AuthzList::Route => &policy.http_routes[route.unwrap()].authorizations,
                AuthzList::Server => &policy.authorizations,
            }
            .list()[authorization.1]
                .name
                .clone(),
        );
        assert_eq!(permit.route_name(), want_route);
        assert_eq!(permit.authorization.name, want_authz);
    }
    let permit = decide_connection(&policy, client(ip, Some(WEBAPP)), None).unwrap();
    assert_eq!(
        permit.key,
        PermitKey {
            route: None,
            authorization: (AuthzList::Server, 0)
        }
    );
}
