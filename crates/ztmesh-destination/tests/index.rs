//! The destination index: endpoints with identities and hints, profiles.

use std::time::Duration;
use ztmesh_destination::*;
use ztmesh_resources::load_str;

fn apply(index: &mut Index, yaml: &str) {
    let loaded = load_str(yaml, "test.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    for r in loaded.resources {
        index.apply(r);
    }
}

fn pod(name: &str, ip: &str, labels: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: my-app, labels: {{{labels}}}, annotations: {{{annotations}}}}}\nspec: {{serviceAccountName: {name}, containers: [{{name: app, ports: [{{name: http, containerPort: 8080}}]}}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: api-server, namespace: my-app}\nspec: {selector: {app: api-server}, clusterIP: 10.96.0.10, ports: [{port: 80, targetPort: http}, {port: 5432, targetPort: 5432}]}\n";
const MESHED: &str = "linkerd.io/inject: enabled";

fn seed_profile() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/seeds/seed002-service-profile.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn endpoints_carry_identity_and_hints() {
    let mut index = Index::new(DestinationCluster::default());
    apply(&mut index, SERVICE);
    apply(&mut index, &pod("a", "10.1.0.1", "app: api-server", MESHED));
    apply(&mut index, &pod("b", "10.1.0.2", "app: api-server", ""));
    apply(&mut index, &pod("c", "10.1.0.3", "app: other", MESHED));
    apply(
        &mut index,
        &pod(
            "d",
            "10.1.0.4",
            "app: api-server",
            "linkerd.io/inject: enabled, config.linkerd.io/opaque-ports: '5432'",
        ),
    );
    apply(
        &mut index,
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {name: vm, namespace: my-app, labels: {app: api-server}, annotations: {config.ztmesh.io/proxy-mode: explicit, config.ztmesh.io/inbound-port: '14143'}}\nspec:\n  meshTLS: {identity: spiffe://cluster.local/ns/my-app/sa/vm, serverName: vm.my-app.serviceaccount.identity.linkerd.cluster.local}\n  workloadIPs: [{ip: 127.0.1.9}]\n  ports: [{port: 8080, name: http}]\n",
    );

    let set = index.endpoints("my-app", "api-server", 80);
    assert!(set.exists);
    assert_eq!(set.labels["service"], "api-server");
    let addrs: Vec<String> = set.endpoints.keys().map(|a| a.to_string()).collect();
    assert_eq!(
        addrs,
        vec![
            "10.1.0.1:8080",
            "10.1.0.2:8080",
            "10.1.0.4:8080",
            "127.0.1.9:8080"
        ]
    );
    let e = |a: &str| set.endpoints[&a.parse().unwrap()].clone();
    let a = e("10.1.0.1:8080");
    assert_eq!(
        a.tls.unwrap().identity,
        "a.my-app.serviceaccount.identity.linkerd.cluster.local"
    );
    assert!(a.h2 && a.opaque_transport_port.is_none());
    assert_eq!(a.labels["pod"], "a");
    let b = e("10.1.0.2:8080");
    assert!(
        b.tls.is_none() && !b.h2,
        "not meshed: plaintext, no upgrade"
    );
    let vm = e("127.0.1.9:8080");
    assert_eq!(
        vm.tls.unwrap().identity,
        "spiffe://cluster.local/ns/my-app/sa/vm"
    );
    assert_eq!(
        vm.opaque_transport_port,
        Some(14143),
        "explicit mode: dial the inbound port"
    );

    // The opaque port of d: no HTTP/2 hint, opaque transport on 4143.
    let db = index.endpoints("my-app", "api-server", 5432);
    let d = &db.endpoints[&"10.1.0.4:5432".parse().unwrap()];
    assert!(!d.h2);
    assert_eq!(d.opaque_transport_port, Some(4143));

    assert!(!index.endpoints("my-app", "nope", 80).exists);
    let no_port = index.endpoints("my-app", "api-server", 9999);
    assert!(no_port.exists && no_port.endpoints.is_empty());
}

#[test]
fn endpoint_watches_follow_workloads() {
    let mut index = Index::new(DestinationCluster::default());
    let mut rx = index.watch_endpoints("my-app", "api-server", 80);
    assert!(!rx.borrow_and_update().exists);
    apply(&mut index, SERVICE);
    assert!(rx.has_changed().unwrap());
    assert!(rx.borrow_and_update().endpoints.is_empty());
    apply(&mut index, &pod("a", "10.1.0.1", "app: api-server", MESHED));
    assert_eq!(rx.borrow_and_update().endpoints.len(), 1);
    // A pod in another namespace changes nothing here.
    apply(
        &mut index,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: z, namespace: elsewhere, labels: {app: api-server}}\nspec: {containers: []}\nstatus: {podIP: 10.2.0.1}\n",
    );
    assert!(!rx.has_changed().unwrap());
    index.delete(&ztmesh_resources::load::ResourceKey {
        kind: "Pod".into(),
        namespace: "my-app".into(),
        name: "a".into(),
    });
    assert!(rx.borrow_and_update().endpoints.is_empty());
    index.delete(&ztmesh_resources::load::ResourceKey {
        kind: "Service".into(),
        namespace: "my-app".into(),
        name: "api-server".into(),
    });
    assert!(!rx.borrow_and_update().exists);
}

#[test]
fn seed_service_profile_routes() {
    let mut index = Index::new(DestinationCluster::default());
    apply(&mut index, SERVICE);
    apply(&mut index, &seed_profile());
    let target = index
        .parse_target("api-server.my-app.svc.cluster.local:80")
        .unwrap();
    let profile = index.profile(&target);
    assert_eq!(
        profile.fully_qualified_name,
        "api-server.my-app.svc.cluster.local"
    );
    assert_eq!(profile.retry_budget, Some(RetryBudget::default()));
    let routes: Vec<_> = profile
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.is_retryable, r.timeout))
        .collect();
    assert_eq!(
        routes,
        vec![
            ("GET /api/users", true, Some(Duration::from_secs(5))),
            ("POST /api/orders", false, Some(Duration::from_secs(10)))
        ]
    );
    // Conditions: method AND anchored path regex.
    let users = &profile.routes[0].condition;
    assert!(users.matches("GET", "/api/users"));
    assert!(!users.matches("POST", "/api/users"));
    assert!(!users.matches("GET", "/api/users/7"));
    assert!(profile.routes[1].condition.matches("POST", "/api/orders"));

    // By cluster IP: the same profile.
    let by_ip = index.profile(&index.parse_target("10.96.0.10:80").unwrap());
    assert_eq!(by_ip.routes.len(), 2);
}

#[test]
fn profile_by_pod_address_names_the_endpoint() {
    let mut index = Index::new(DestinationCluster::default());
    apply(&mut index, &pod("a", "10.1.0.1", "app: api-server", MESHED));
    let mut rx = index.watch_profile(&index.parse_target("10.1.0.1:8080").unwrap());
    let endpoint = rx.borrow_and_update().endpoint.clone().unwrap();
    assert_eq!(
        endpoint.tls.unwrap().server_name,
        "a.my-app.serviceaccount.identity.linkerd.cluster.local"
    );
    assert!(endpoint.h2);
    assert!(
        index
            .profile(&index.parse_target("10.9.9.9:80").unwrap())
            .endpoint
            .is_none(),
        "unknown address: no endpoint"
    );
    index.delete(&ztmesh_resources::load::ResourceKey {
        kind: "Pod".into(),
        namespace: "my-app".into(),
        name: "a".into(),
    });
    assert!(rx.borrow_and_update().endpoint.is_none());
    assert!(index.parse_target("nonsense").is_err());
}
