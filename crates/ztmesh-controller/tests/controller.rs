//! The controller in process, through its builder: identity over real TLS
//! off loopback, policy from a manifests directory (and a change to it,
//! seen through the directory's watch), the last good content across a
//! restart, shutdown, and the errors `spawn` reports.

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::inbound::PortSpec;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use ztmesh_controller::{Builder, Error, Running};
use ztmesh_test_support::{TestPki, csr_for};

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

/// A Server `name` for the authors pod's port 7001, and the pod.
fn authors(name: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: {name}, namespace: booksapp}}\nspec: {{podSelector: {{matchLabels: {{app: authors}}}}, port: 7001, proxyProtocol: HTTP/1}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: authors, namespace: booksapp, labels: {{app: authors}}}}\nspec:\n  serviceAccountName: authors\n  containers: [{{name: app, image: authors, ports: [{{name: http, containerPort: 7001}}]}}]\n"
    )
}

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A controller over `pki` and `manifests`, every port ephemeral on loopback.
fn builder(pki: &TestPki, manifests: &Path, state: &Path) -> Builder {
    Builder::new(pki.dir())
        .identity_addr(loopback0())
        .manifests(manifests)
        .state_dir(state)
        .policy_addr(loopback0())
        .destination_addr(loopback0())
}

/// This host's address on its default route: not loopback, so the
/// controller serves TLS on it. No packet is sent.
fn host_ip() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("this test needs a non-loopback address (a default route)");
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "this test needs a non-loopback address, found {ip}"
    );
    ip
}

fn authors_port() -> PortSpec {
    PortSpec {
        workload: r#"{"ns":"booksapp","pod":"authors"}"#.into(),
        port: 7001,
    }
}

async fn policy_client(
    running: &Running,
) -> InboundServerPoliciesClient<tonic::transport::Channel> {
    let addr = running.addrs().policy.expect("a policy address");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    InboundServerPoliciesClient::new(channel)
}

/// Asks for authors:7001's Server until it is named `name`, failing after
/// `within` with what was answered last.
async fn until_authors_named(running: &Running, name: &str, within: Duration, what: &str) {
    let mut client = policy_client(running).await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = client
            .get_port(authors_port())
            .await
            .map(|s| s.into_inner().labels["name"].clone());
        if matches!(&seen, Ok(n) if n == name) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}: last answer {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A controller serving authors' Server from a manifests directory, ready,
/// its first answer checked; the PKI and the temporary directory live as
/// long as the caller keeps them.
async fn serving_authors() -> (TestPki, tempfile::TempDir, std::path::PathBuf, Running) {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("authors.yaml"), authors("authors")).unwrap();
    let running = builder(&pki, &manifests, &tmp.path().join("state"))
        .spawn()
        .await
        .unwrap();
    assert!(running.ready().await);
    assert_eq!(authors_server(&running).await.labels["name"], "authors");
    (pki, tmp, manifests, running)
}

/// The Server for authors:7001, as the policy service answers now.
async fn authors_server(running: &Running) -> linkerd2_proxy_api::inbound::Server {
    policy_client(running)
        .await
        .get_port(authors_port())
        .await
        .expect("a policy")
        .into_inner()
}

/// A WatchPort stream for authors:7001.
async fn watch_authors(running: &Running) -> tonic::Streaming<linkerd2_proxy_api::inbound::Server> {
    policy_client(running)
        .await
        .watch_port(authors_port())
        .await
        .expect("a policy stream")
        .into_inner()
}

async fn certify(
    addr: SocketAddr,
    server_name: &str,
    anchors: &[u8],
    pki: &TestPki,
) -> Result<linkerd2_proxy_api::identity::CertifyResponse, tonic::Status> {
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: server_name.into(),
        roots: Some(ztmesh_tls::roots_from_pem(anchors).unwrap()),
    })
    .unwrap();
    let (_key, csr) = csr_for(BOOKS);
    IdentityClient::new(channel)
        .certify(CertifyRequest {
            identity: BOOKS.into(),
            token: pki.token("booksapp", "books").into_bytes(),
            certificate_signing_request: csr,
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn certifies_over_tls_off_loopback_with_its_own_identity() {
    let pki = TestPki::new();
    let running = Builder::new(pki.dir())
        .identity_addr("0.0.0.0:0".parse().unwrap())
        .spawn()
        .await
        .unwrap();
    assert!(running.ready().await, "ready at once without manifests");
    let addr = SocketAddr::new(host_ip(), running.addrs().identity.port());
    let name = running.identity_name().to_string();
    assert_eq!(
        name,
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
    );

    let issued = certify(addr, &name, &pki.anchors_pem(), &pki)
        .await
        .unwrap();
    assert!(!issued.leaf_certificate.is_empty());
    assert_eq!(
        issued.intermediate_certificates,
        pki.issuer()
            .chain()
            .iter()
            .map(|c| c.to_vec())
            .collect::<Vec<_>>(),
        "signed by the install's issuer"
    );

    // TLS is really verified: under another install's anchors, or for
    // another name, the handshake fails.
    let other = TestPki::new();
    let err = certify(addr, &name, &other.anchors_pem(), &pki)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    let err = certify(addr, BOOKS, &pki.anchors_pem(), &pki)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn serves_policy_from_the_manifests_and_follows_a_change() {
    let (_pki, _tmp, manifests, running) = serving_authors().await;

    // An edit reaches a policy watch through the directory's watch, no timer.
    let mut watch = watch_authors(&running).await;
    let first = watch.message().await.unwrap().expect("a first policy");
    assert_eq!(first.labels["name"], "authors");
    std::fs::write(manifests.join("authors.yaml"), authors("authors-v2")).unwrap();
    // The write is not atomic: a scan may see the file empty first (the
    // Server gone, the default policy), so updates are read until the edit.
    let edited = async {
        loop {
            let update = watch.message().await.unwrap().expect("an update");
            if update.labels["name"] == "authors-v2" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), edited)
        .await
        .expect("the edit is picked up within 10s");
    drop(watch);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_with_a_refused_manifest_keeps_its_last_good_content() {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let (manifests, state) = (tmp.path().join("manifests"), tmp.path().join("state"));
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("authors.yaml"), authors("authors")).unwrap();
    let first = builder(&pki, &manifests, &state).spawn().await.unwrap();
    assert!(first.ready().await);
    let state_dir = first.state_dir().unwrap().to_path_buf();
    assert!(state_dir.starts_with(&state), "{}", state_dir.display());
    first.shutdown().await.unwrap();

    std::fs::write(manifests.join("authors.yaml"), "kind: Server\nspec: [").unwrap();
    let second = builder(&pki, &manifests, &state).spawn().await.unwrap();
    assert!(second.ready().await);
    assert_eq!(second.state_dir(), Some(state_dir.as_path()));
    assert_eq!(
        authors_server(&second).await.labels["name"],
        "authors",
        "the recorded last good content is in force"
    );
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_every_listener_and_frees_its_port() {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let running = builder(&pki, &manifests, &tmp.path().join("state"))
        .spawn()
        .await
        .unwrap();
    assert!(running.ready().await);
    let addrs = running.addrs().clone();
    let ports = [
        addrs.identity,
        addrs.policy.unwrap(),
        addrs.destination.unwrap(),
    ];
    let handle = running.shutdown_handle();
    handle.shutdown();
    tokio::time::timeout(ztmesh_controller::SHUTDOWN_GRACE, running.wait())
        .await
        .expect("stopped within the grace period")
        .unwrap();
    for addr in ports {
        tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("{addr} still taken after shutdown: {e}"));
    }
}

#[tokio::test]
async fn spawn_fails_naming_a_port_in_use_or_a_missing_issuer() {
    let pki = TestPki::new();
    let taken = tokio::net::TcpListener::bind(loopback0()).await.unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = builder(&pki, tmp.path(), &tmp.path().join("state"))
        .policy_addr(taken_addr)
        .spawn()
        .await
        .unwrap_err();
    match &err {
        Error::Bind { what, addr, .. } => {
            assert_eq!((*what, *addr), ("policy service", taken_addr))
        }
        other => panic!("expected a bind error, got {other:?}"),
    }

    let empty = tempfile::tempdir().unwrap();
    let err = Builder::new(empty.path())
        .identity_addr(loopback0())
        .spawn()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Issuer { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&empty.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifests_directory_made_after_start_is_read_by_polling() {
    // A directory that does not exist cannot be watched: the scanner falls
    // back to reading it on a timer, and so finds it once it is made.
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let manifests = tmp.path().join("later");
    let running = builder(&pki, &manifests, &tmp.path().join("state"))
        .spawn()
        .await
        .unwrap();
    assert!(running.ready().await);
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("authors.yaml"), authors("authors")).unwrap();
    // The fallback reads every 500ms.
    until_authors_named(
        &running,
        "authors",
        Duration::from_secs(10),
        "the manifests were not read",
    )
    .await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_manifests_directory_removed_and_made_again_is_watched_again() {
    // The watch follows the directory it was set up on; when that one is
    // removed, the scanner notices, polls until a new one exists, and
    // watches that. Within 5s: sooner than the 10s safety rescan.
    let (_pki, _tmp, manifests, running) = serving_authors().await;

    std::fs::remove_dir_all(&manifests).unwrap();
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("authors.yaml"), authors("authors-v2")).unwrap();
    until_authors_named(
        &running,
        "authors-v2",
        Duration::from_secs(5),
        "the remade directory was not read",
    )
    .await;

    // And it is watched again: a later edit arrives the same way.
    std::fs::write(manifests.join("authors.yaml"), authors("authors-v3")).unwrap();
    until_authors_named(
        &running,
        "authors-v3",
        Duration::from_secs(5),
        "an edit in the remade directory was not read",
    )
    .await;
    running.shutdown().await.unwrap();
}
