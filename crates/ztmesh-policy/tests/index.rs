//! The policy index against the seed scenarios, as tables: apply manifests,
//! ask for a workload port, assert on the computed policy and its updates.

use ztmesh_policy::*;
use ztmesh_resources::load_str;

fn seed(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/seeds")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} (the repository's own copy of the seeds' YAML): {e}",
            path.display()
        )
    })
}

fn apply(index: &mut Index, yaml: &str) {
    let loaded = load_str(yaml, "test.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    for r in loaded.resources {
        index.apply(r);
    }
}

fn pod(ns: &str, name: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}{extra}}}\nspec:\n  serviceAccountName: {name}\n  containers: [{{name: app, image: x, ports: [{{name: http, containerPort: 8080}}, {{name: admin, containerPort: 9990}}]}}]\n"
    )
}

fn id(ns: &str, sa: &str) -> String {
    format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local")
}

fn p(name: &str) -> WorkloadRef {
    WorkloadRef::Pod(name.into())
}

fn route(name: &str) -> RouteRef {
    RouteRef::Resource {
        group: "policy.linkerd.io".into(),
        kind: "HTTPRoute".into(),
        name: name.into(),
    }
}

fn cluster_networks() -> Vec<NetworkMatch> {
    ClusterInfo::default()
        .networks
        .into_iter()
        .map(NetworkMatch::all)
        .collect()
}

const AUTHORS_SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n";

#[test]
fn booksapp_authors_routes() {
    let mut index = Index::new(ClusterInfo::default());
    apply(&mut index, AUTHORS_SERVER);
    apply(&mut index, &seed("seed003-booksapp-authors.yaml"));
    apply(&mut index, &pod("booksapp", "authors", "app: authors", ""));
    let srv = index.server("booksapp", &p("authors"), 7001).unwrap();
    assert_eq!(srv.reference, ServerRef::Server("authors".into()));
    assert_eq!(srv.protocol, ProxyProtocol::Http1);
    assert!(
        srv.authorizations.is_empty(),
        "the policy targets the route, not the server"
    );
    assert_eq!(srv.http_routes.len(), 1);
    let r = &srv.http_routes[&route("authors-get-route")];
    let get = |path: &str| HttpRouteMatch {
        path: Some(PathMatch::Prefix(path.into())),
        method: Some("GET".into()),
        ..Default::default()
    };
    assert_eq!(r.rules, vec![vec![get("/authors.json"), get("/authors/")]]);
    let authz =
        &r.authorizations[&AuthorizationRef::AuthorizationPolicy("authors-get-policy".into())];
    assert_eq!(
        authz.authentication,
        ClientAuthentication::TlsAuthenticated(vec![
            IdentityMatch::Exact(id("booksapp", "books")),
            IdentityMatch::Exact(id("booksapp", "webapp"))
        ])
    );
    assert_eq!(authz.networks.len(), 2, "all networks: 0.0.0.0/0 and ::/0");
}

#[test]
fn web_frontend_to_api_server_legacy_authorization() {
    let mut index = Index::new(ClusterInfo::default());
    apply(&mut index, &seed("seed002-server-authorization.yaml"));
    apply(&mut index, &pod("my-app", "api", "app: my-api", ""));
    let srv = index.server("my-app", &p("api"), 8080).unwrap();
    assert_eq!(srv.reference, ServerRef::Server("api-server".into()));
    assert_eq!(srv.protocol, ProxyProtocol::Http2);
    let authz =
        &srv.authorizations[&AuthorizationRef::ServerAuthorization("allow-web-to-api".into())];
    assert_eq!(
        authz.authentication,
        ClientAuthentication::TlsAuthenticated(vec![IdentityMatch::Exact(id(
            "my-app",
            "web-frontend"
        ))])
    );
    assert_eq!(
        authz.networks,
        cluster_networks(),
        "a ServerAuthorization without networks means the cluster networks"
    );
    assert_eq!(
        srv.http_routes.keys().collect::<Vec<_>>(),
        vec![&RouteRef::Default("default")]
    );
}

#[test]
fn api_server_to_db_proxy_opaque_tcp() {
    let mut index = Index::new(ClusterInfo::default());
    apply(
        &mut index,
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: db-proxy, namespace: my-app}\nspec: {podSelector: {matchLabels: {app: db-proxy}}, port: 5432, proxyProtocol: opaque}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: db-from-api, namespace: my-app}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: db-proxy}\n  requiredAuthenticationRefs: [{kind: ServiceAccount, name: api-server}]\n",
    );
    apply(&mut index, &pod("my-app", "db", "app: db-proxy", ""));
    let srv = index.server("my-app", &p("db"), 5432).unwrap();
    assert_eq!(srv.protocol, ProxyProtocol::Opaque);
    assert_eq!(
        srv.authorizations[&AuthorizationRef::AuthorizationPolicy("db-from-api".into())]
            .authentication,
        ClientAuthentication::TlsAuthenticated(vec![IdentityMatch::Exact(id(
            "my-app",
            "api-server"
        ))])
    );
}

#[test]
fn default_deny_server_and_default_policies_table() {
    let deny_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: locked, annotations: {config.linkerd.io/default-inbound-policy: deny}}\n";
    let cluster_auth = ClusterInfo {
        default_policy: "cluster-authenticated".parse().unwrap(),
        ..Default::default()
    };
    // (cluster, manifests, ns, pod, port, expected server ref, number of authorizations)
    type Case = (
        ClusterInfo,
        Vec<String>,
        &'static str,
        &'static str,
        u16,
        ServerRef,
        usize,
    );
    let cases: Vec<Case> = vec![
        // The seed's Server selects every pod on 8080 and authorizes no one.
        (
            ClusterInfo::default(),
            vec![
                seed("seed002-default-deny.yaml"),
                pod("my-app", "x", "app: x", ""),
            ],
            "my-app",
            "x",
            8080,
            ServerRef::Server("default-deny".into()),
            0,
        ),
        // Other ports fall back to the cluster default.
        (
            ClusterInfo::default(),
            vec![
                seed("seed002-default-deny.yaml"),
                pod("my-app", "x", "app: x", ""),
            ],
            "my-app",
            "x",
            9990,
            ServerRef::Default("all-unauthenticated"),
            1,
        ),
        (
            cluster_auth.clone(),
            vec![pod("a", "x", "", "")],
            "a",
            "x",
            8080,
            ServerRef::Default("cluster-authenticated"),
            1,
        ),
        // Namespace annotation overrides the cluster default.
        (
            ClusterInfo::default(),
            vec![deny_ns.into(), pod("locked", "x", "", "")],
            "locked",
            "x",
            8080,
            ServerRef::Default("deny"),
            0,
        ),
        // Workload annotation overrides both.
        (
            ClusterInfo::default(),
            vec![
                deny_ns.into(),
                pod(
                    "locked",
                    "x",
                    "",
                    ", annotations: {config.linkerd.io/default-inbound-policy: audit}",
                ),
            ],
            "locked",
            "x",
            8080,
            ServerRef::Default("audit"),
            1,
        ),
        // An invalid annotation is ignored (with a warning).
        (
            ClusterInfo::default(),
            vec![pod(
                "a",
                "x",
                "",
                ", annotations: {config.linkerd.io/default-inbound-policy: sometimes}",
            )],
            "a",
            "x",
            8080,
            ServerRef::Default("all-unauthenticated"),
            1,
        ),
    ];
    for (i, (cluster, manifests, ns, pod, port, reference, authz_count)) in
        cases.into_iter().enumerate()
    {
        let mut index = Index::new(cluster);
        for m in &manifests {
            apply(&mut index, m);
        }
        let srv = index.server(ns, &p(pod), port).unwrap();
        assert_eq!(srv.reference, reference, "case {i}");
        assert_eq!(
            srv.authorizations.len(),
            authz_count,
            "case {i}: {:?}",
            srv.authorizations
        );
    }
}

#[test]
fn watches_follow_applies_and_deletes() {
    let mut index = Index::new(ClusterInfo::default());
    apply(&mut index, &pod("booksapp", "authors", "app: authors", ""));
    let mut rx = index.watch("booksapp", &p("authors"), 7001).unwrap();
    assert_eq!(
        rx.borrow_and_update().reference,
        ServerRef::Default("all-unauthenticated")
    );

    apply(&mut index, AUTHORS_SERVER);
    assert!(rx.has_changed().unwrap());
    assert_eq!(
        rx.borrow_and_update().reference,
        ServerRef::Server("authors".into())
    );

    // Unrelated changes elsewhere publish nothing.
    apply(&mut index, &pod("other", "x", "", ""));
    assert!(!rx.has_changed().unwrap());

    apply(&mut index, &seed("seed003-booksapp-authors.yaml"));
    assert!(rx.has_changed().unwrap());
    assert!(
        rx.borrow_and_update()
            .http_routes
            .contains_key(&route("authors-get-route"))
    );

    // The MeshTLSAuthentication goes away: the policy is now invalid and ignored.
    index.delete(&ztmesh_resources::load::ResourceKey {
        kind: "MeshTLSAuthentication".into(),
        namespace: "booksapp".into(),
        name: "authors-get-authn".into(),
    });
    assert!(rx.has_changed().unwrap());
    assert!(
        rx.borrow_and_update().http_routes[&route("authors-get-route")]
            .authorizations
            .is_empty()
    );

    index.delete(&ztmesh_resources::load::ResourceKey {
        kind: "Server".into(),
        namespace: "booksapp".into(),
        name: "authors".into(),
    });
    assert_eq!(
        rx.borrow_and_update().reference,
        ServerRef::Default("all-unauthenticated")
    );

    let err = index.watch("booksapp", &p("nobody"), 80).unwrap_err();
    assert!(
        err.to_string()
            .contains("no workload pod/nobody in namespace booksapp"),
        "{err}"
    );
}

#[test]
fn oldest_server_wins_then_name() {
    let server = |name: &str, ts: Option<&str>| {
        let ts = ts
            .map(|t| format!(", creationTimestamp: '{t}'"))
            .unwrap_or_default();
        format!(
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: {name}, namespace: a{ts}}}\nspec: {{podSelector: {{}}, port: http}}\n"
        )
    };
    let cases = [
        (
            vec![
                server("b", Some("2024-01-01T00:00:00Z")),
                server("a", Some("2024-06-01T00:00:00Z")),
            ],
            "b",
        ),
        (
            vec![server("b", Some("2024-01-01T00:00:00Z")), server("z", None)],
            "z",
        ),
        (vec![server("b", None), server("a", None)], "a"),
    ];
    for (manifests, winner) in cases {
        let mut index = Index::new(ClusterInfo::default());
        apply(&mut index, &pod("a", "x", "", ""));
        for m in &manifests {
            apply(&mut index, m);
        }
        // The named port "http" resolves to 8080 through the pod's container ports.
        assert_eq!(
            index.server("a", &p("x"), 8080).unwrap().reference,
            ServerRef::Server(winner.into())
        );
        assert_eq!(
            index.server("a", &p("x"), 9990).unwrap().reference,
            ServerRef::Default("all-unauthenticated")
        );
    }
}

#[test]
fn authentications_networks_and_access_policy() {
    let mut index = Index::new(ClusterInfo::default());
    apply(
        &mut index,
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web, namespace: a, labels: {tier: front}}\nspec: {podSelector: {}, port: 8080, accessPolicy: cluster-authenticated}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: office, namespace: a}\nspec: {networks: [{cidr: 10.0.0.0/8, except: [10.9.0.0/16]}]}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: ns-b, namespace: a}\nspec: {identityRefs: [{kind: Namespace, name: b}]}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: from-b-in-office, namespace: a}\nspec:\n  targetRef: {kind: Namespace, name: a}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: ns-b}, {group: policy.linkerd.io, kind: NetworkAuthentication, name: office}]\n---\napiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: by-label, namespace: a}\nspec: {server: {selector: {matchLabels: {tier: front}}}, client: {meshTLS: {unauthenticatedTLS: true}, networks: [{cidr: 192.168.1.7}]}}\n",
    );
    apply(&mut index, &pod("a", "x", "", ""));
    let srv = index.server("a", &p("x"), 8080).unwrap();
    let keys: Vec<_> = srv.authorizations.keys().cloned().collect();
    assert_eq!(
        keys,
        vec![
            AuthorizationRef::Default("cluster-authenticated"),
            AuthorizationRef::ServerAuthorization("by-label".into()),
            AuthorizationRef::AuthorizationPolicy("from-b-in-office".into()),
        ]
    );
    let ap = &srv.authorizations[&AuthorizationRef::AuthorizationPolicy("from-b-in-office".into())];
    assert_eq!(
        ap.networks,
        vec![NetworkMatch {
            net: "10.0.0.0/8".parse().unwrap(),
            except: vec!["10.9.0.0/16".parse().unwrap()]
        }]
    );
    let ClientAuthentication::TlsAuthenticated(ids) = &ap.authentication else {
        panic!()
    };
    // As the proxy matches it (ztmesh-authz reads the served pattern).
    let served = ztmesh_authz::IdentityMatch::parse(&ids[0].to_string());
    assert!(served.matches(&id("b", "anyone")) && !served.matches(&id("a", "anyone")));
    let saz = &srv.authorizations[&AuthorizationRef::ServerAuthorization("by-label".into())];
    assert_eq!(saz.authentication, ClientAuthentication::TlsUnauthenticated);
    assert_eq!(
        saz.networks,
        vec![NetworkMatch::all("192.168.1.7/32".parse().unwrap())]
    );
}

#[test]
fn probes_and_opaque_ports_on_default_servers() {
    let mut index = Index::new(ClusterInfo::default());
    apply(
        &mut index,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: a, annotations: {config.linkerd.io/opaque-ports: '5432,6000-6002'}}\nspec:\n  containers:\n  - name: app\n    ports: [{name: http, containerPort: 8080}]\n    livenessProbe: {httpGet: {path: /live, port: http}}\n    readinessProbe: {httpGet: {path: /ready, port: 8080}}\n",
    );
    let srv = index.server("a", &p("x"), 8080).unwrap();
    let probe = &srv.http_routes[&RouteRef::Default("probe")];
    let paths: Vec<_> = probe.rules[0]
        .iter()
        .map(|m| m.path.clone().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            PathMatch::Exact("/live".into()),
            PathMatch::Exact("/ready".into())
        ]
    );
    assert!(
        probe
            .authorizations
            .contains_key(&AuthorizationRef::Default("probe"))
    );
    for port in [5432, 6001] {
        assert_eq!(
            index.server("a", &p("x"), port).unwrap().protocol,
            ProxyProtocol::Opaque,
            "{port}"
        );
    }
    assert!(matches!(
        index.server("a", &p("x"), 7000).unwrap().protocol,
        ProxyProtocol::Detect { .. }
    ));
}

#[test]
fn external_workloads_use_their_own_selector() {
    let mut index = Index::new(ClusterInfo::default());
    apply(
        &mut index,
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {name: vm1, namespace: a, labels: {app: api}}\nspec:\n  meshTLS: {identity: spiffe://cluster.local/ns/a/sa/api, serverName: api.a.serviceaccount.identity.linkerd.cluster.local}\n  workloadIPs: [{ip: 127.0.1.1}]\n  ports: [{port: 8080, name: http}]\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: pods-only, namespace: a}\nspec: {podSelector: {matchLabels: {app: api}}, port: 8080}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: vms, namespace: a}\nspec: {externalWorkloadSelector: {matchLabels: {app: api}}, port: http}\n",
    );
    let srv = index
        .server("a", &WorkloadRef::External("vm1".into()), 8080)
        .unwrap();
    assert_eq!(srv.reference, ServerRef::Server("vms".into()));
}

#[test]
fn cross_object_findings() {
    let mut index = Index::new(ClusterInfo::default());
    apply(
        &mut index,
        "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: orphan, namespace: a}\nspec: {server: {name: nope}, client: {unauthenticated: true}}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: a}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: web}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: missing}]\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web, namespace: a}\nspec: {podSelector: {}, port: 8080}\n---\napiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web2, namespace: a}\nspec: {podSelector: {}, port: http}\n",
    );
    apply(&mut index, &pod("a", "x", "", ""));
    let found: Vec<String> = ztmesh_policy::references::findings(&index)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("AuthorizationPolicy a/ap: spec.requiredAuthenticationRefs[0]: MeshTLSAuthentication a/missing does not exist"), "{}", found[0]);
    assert!(
        found[1].starts_with(
            "Server a/web2: pod/x port 8080 is already selected by the older Server web"
        ),
        "{}",
        found[1]
    );
    assert!(
        found[2].starts_with(
            "ServerAuthorization a/orphan: spec.server.name: Server a/nope does not exist"
        ),
        "{}",
        found[2]
    );

    // The seed fixtures reference each other correctly except the booksapp
    // route's parent Server, which the seed leaves to the user.
    let mut index = Index::new(ClusterInfo::default());
    apply(&mut index, &seed("seed003-booksapp-authors.yaml"));
    let found: Vec<String> = ztmesh_policy::references::findings(&index)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        found,
        vec![
            "HTTPRoute.policy.linkerd.io booksapp/authors-get-route: spec.parentRefs[0]: Server booksapp/authors does not exist"
        ]
    );
}
