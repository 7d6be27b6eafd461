//! The controller fed by another store ([`Builder::store`], as the
//! Kubernetes store does): nothing is served before the store's first
//! complete listing, then its applies and deletes reach a policy watch; a
//! store that ends before listing fails the controller; a store that
//! watches EndpointSlices has Destination answer from them; the admin
//! server serves the caller's registry and the readiness.

use linkerd2_proxy_api::inbound::PortSpec;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use ztmesh_controller::{Builder, Error, StoreEvent, StoreFeed};
use ztmesh_test_support::TestPki;

const AUTHORS: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: authors, namespace: booksapp, labels: {app: authors}}\nspec:\n  containers: [{name: app, image: authors}]\n";

fn feed() -> (mpsc::Sender<StoreEvent>, StoreFeed) {
    let (tx, events) = mpsc::channel(16);
    let status = Arc::new(Mutex::new(serde_json::json!({"store": "test"})));
    (tx, StoreFeed { events, status })
}

fn builder(pki: &TestPki, feed: StoreFeed) -> Builder {
    let any = "127.0.0.1:0".parse().unwrap();
    Builder::new(pki.dir())
        .identity_addr(any)
        .policy_addr(any)
        .destination_addr(any)
        .store(feed)
}

#[tokio::test]
async fn serves_policy_from_a_store_feed_once_synced_and_follows_it() {
    let pki = TestPki::new();
    let (tx, feed) = feed();
    let running = builder(&pki, feed).spawn().await.unwrap();
    for r in ztmesh_resources::load_str(AUTHORS, "test").resources {
        tx.send(StoreEvent::Apply(Box::new(r))).await.unwrap();
    }
    // Not listed yet: not ready.
    let early = tokio::time::timeout(Duration::from_millis(200), running.ready()).await;
    assert!(early.is_err(), "ready before the store's first listing");
    tx.send(StoreEvent::Synced).await.unwrap();
    assert!(running.ready().await);

    let addr = running.addrs().policy.expect("a policy address");
    let mut client = InboundServerPoliciesClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let spec = PortSpec {
        workload: r#"{"ns":"booksapp","pod":"authors"}"#.into(),
        port: 7001,
    };
    let mut watch = client.watch_port(spec).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().expect("a policy");
    assert_eq!(first.labels["name"], "authors");

    let server = ztmesh_resources::load::ResourceKey {
        kind: "Server".into(),
        namespace: "booksapp".into(),
        name: "authors".into(),
    };
    tx.send(StoreEvent::Delete(server)).await.unwrap();
    let update = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the deletion reaches the watch")
        .unwrap()
        .expect("an update");
    assert_eq!(update.labels["kind"], "default", "{:?}", update.labels);
    drop(watch);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_store_that_ends_before_listing_fails_the_controller() {
    let pki = TestPki::new();
    let (tx, feed) = feed();
    let running = builder(&pki, feed).spawn().await.unwrap();
    drop(tx);
    assert!(!running.ready().await);
    let err = running.wait().await.unwrap_err();
    assert!(matches!(err, Error::StoreStopped), "{err}");
}

/// `GET path` from the admin server: (status code, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut rsp = String::new();
    tcp.read_to_string(&mut rsp).await.unwrap();
    let code = rsp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, rsp)
}

#[tokio::test]
async fn the_admin_server_serves_the_registry_and_readiness() {
    use prometheus_client::metrics::counter::Counter;
    let pki = TestPki::new();
    let (tx, feed) = feed();
    let mut registry = ztmesh_controller::Registry::default();
    let refused = Counter::<u64>::default();
    registry.register("objects_rejected", "refused", refused.clone());
    let running = builder(&pki, feed)
        .admin("127.0.0.1:0".parse().unwrap(), registry)
        .spawn()
        .await
        .unwrap();
    let admin = running.addrs().admin.expect("an admin address");
    // Not listed yet: not ready.
    assert_eq!(get(admin, "/ready").await.0, 503);
    tx.send(StoreEvent::Synced).await.unwrap();
    assert!(running.ready().await);
    assert_eq!(get(admin, "/ready").await.0, 200);
    refused.inc();
    let (code, body) = get(admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("objects_rejected_total 1"), "{body}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn destination_follows_endpoint_slices_from_the_store() {
    use linkerd2_proxy_api::destination::GetDestination;
    use linkerd2_proxy_api::destination::destination_client::DestinationClient;
    use linkerd2_proxy_api::destination::update::Update;
    let pki = TestPki::new();
    let (tx, feed) = feed();
    let running = builder(&pki, feed).spawn().await.unwrap();
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: books, namespace: booksapp}\nspec:\n  selector: {app: books}\n  ports: [{name: http, port: 7002, targetPort: 7002}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: selected, namespace: booksapp, labels: {app: books}}\nspec: {containers: [{name: app, image: books}]}\nstatus: {podIP: 10.0.0.9}\n";
    tx.send(StoreEvent::EndpointsFromSlices).await.unwrap();
    for r in ztmesh_resources::load_str(svc, "test").resources {
        tx.send(StoreEvent::Apply(Box::new(r))).await.unwrap();
    }
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "books-x", "namespace": "booksapp",
                     "labels": {"kubernetes.io/service-name": "books"}},
        "ports": [{"name": "http", "port": 7002}],
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}}],
    });
    tx.send(StoreEvent::EndpointSlice(Box::new(
        serde_json::from_value(slice).unwrap(),
    )))
    .await
    .unwrap();
    tx.send(StoreEvent::Synced).await.unwrap();
    assert!(running.ready().await);
    let addr = running.addrs().destination.expect("a destination address");
    let mut client = DestinationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut stream = client
        .get(GetDestination {
            path: "books.booksapp.svc.cluster.local:7002".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let update = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update in time")
        .unwrap()
        .expect("an update");
    // The slice's endpoint, not the pod the selector matches.
    let Some(Update::Add(set)) = update.update else {
        panic!("not an Add: {update:?}");
    };
    let addrs: Vec<String> = set
        .addrs
        .iter()
        .filter_map(|a| a.addr.as_ref())
        .map(|a| format!("{a:?}"))
        .collect();
    assert_eq!(set.addrs.len(), 1, "{addrs:?}");
    let ip = set.addrs[0].addr.as_ref().unwrap();
    assert_eq!(ip.port, 7002);
    assert_eq!(
        format!("{:?}", ip.ip),
        format!(
            "{:?}",
            Some(linkerd2_proxy_api::net::IpAddress::from(
                "10.0.0.5".parse::<std::net::IpAddr>().unwrap()
            ))
        )
    );
    running.shutdown().await.unwrap();
}
