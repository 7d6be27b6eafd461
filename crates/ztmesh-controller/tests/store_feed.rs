//! The controller fed by another store ([`Builder::store`], as the
//! Kubernetes store does): nothing is served before the store's first
//! complete listing, then its applies and deletes reach a policy watch; a
//! store that ends before listing fails the controller.

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
