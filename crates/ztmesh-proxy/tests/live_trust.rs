//! A changed trust bundle while the proxy runs, with real rustls on
//! loopback: the proxy's inbound stack (verifying clients) and a mesh
//! client (verifying the proxy) each over a `Trust`. An HTTP connection
//! made before the change keeps serving requests; a new handshake under a
//! removed anchor fails, and under an added one succeeds. Every wait is
//! bounded by a deadline.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::Duration;
use support::{client_id_echo, creds};
use ztmesh_proxy::inbound::{DefaultPolicy, InboundBuilder, InboundTarget, Policies};
use ztmesh_test_support::TestPki;
use ztmesh_tls::{TlsVersions, Trust};

const WEB: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const DEADLINE: Duration = Duration::from_secs(10);

fn trust(pkis: &[&TestPki]) -> Arc<rustls::RootCertStore> {
    let pem: Vec<u8> = pkis.iter().flat_map(|p| p.anchors_pem()).collect();
    ztmesh_tls::roots_from_pem(&pem).unwrap()
}

/// The inbound stack as WEB (certified under `a`), verifying clients
/// against `server_trust`; all-authenticated.
async fn inbound(a: &TestPki, server_trust: Arc<Trust>) -> std::net::SocketAddr {
    let server = ztmesh_tls::mesh_server_config_live(
        creds(a, WEB),
        server_trust,
        TlsVersions::Tls13Only,
        &[ztmesh_proxy::transport_header::ALPN],
    )
    .unwrap();
    let policy = DefaultPolicy::AllAuthenticated.server(&[]);
    let inbound = InboundBuilder::new(
        WEB,
        tokio_rustls::TlsAcceptor::from(server),
        InboundTarget::App(client_id_echo().await),
        Arc::new(Policies::new(None, policy)),
    )
    .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(inbound.serve(listener, ztmesh_proxy::drain::Watch::never()));
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A mesh TLS connection as BOOKS (certified under `b`), verifying the
/// server against `client_trust`, with HTTP/1 on top.
async fn connect(
    addr: std::net::SocketAddr,
    b: &TestPki,
    client_trust: &Arc<Trust>,
) -> Result<Sender, String> {
    let config = ztmesh_tls::mesh_client_config_live(
        client_trust.clone(),
        creds(b, BOOKS),
        WEB,
        TlsVersions::Tls13Only,
        &[],
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio::time::timeout(
        DEADLINE,
        tokio_rustls::TlsConnector::from(config)
            .connect(ztmesh_tls::server_name(WEB).unwrap(), tcp),
    )
    .await
    .expect("handshake within the deadline")
    .map_err(|e| format!("handshake: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request on `sender`: the client id the app saw.
async fn get(sender: &mut Sender) -> Result<String, String> {
    let req = http::Request::builder()
        .uri("/")
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    let rsp = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("an answer within the deadline")
        .map_err(|e| format!("request: {e}"))?;
    if rsp.status() != 200 {
        return Err(format!("status {}", rsp.status()));
    }
    let body = rsp.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// A new connection and one request on it.
async fn fresh(
    addr: std::net::SocketAddr,
    b: &TestPki,
    client_trust: &Arc<Trust>,
) -> Result<String, String> {
    let mut sender = connect(addr, b, client_trust).await?;
    get(&mut sender).await
}

#[tokio::test]
async fn the_inbound_follows_its_bundle_without_dropping_connections() {
    let (a, b) = (TestPki::new(), TestPki::new());
    let server_trust = Trust::new(trust(&[&a, &b])).unwrap();
    let client_trust = Trust::new(trust(&[&a])).unwrap();
    let addr = inbound(&a, server_trust.clone()).await;
    let mut established = connect(addr, &b, &client_trust).await.unwrap();
    assert_eq!(get(&mut established).await.unwrap(), BOOKS);

    // The server drops the client's anchor: the open connection goes on,
    // a new one is refused.
    server_trust.set(trust(&[&a])).unwrap();
    assert_eq!(get(&mut established).await.unwrap(), BOOKS);
    let refused = fresh(addr, &b, &client_trust).await;
    assert!(
        refused.is_err(),
        "a client under a removed anchor: {refused:?}"
    );
    assert_eq!(get(&mut established).await.unwrap(), BOOKS);

    // Added back: new connections are admitted again.
    server_trust.set(trust(&[&a, &b])).unwrap();
    assert_eq!(fresh(addr, &b, &client_trust).await.unwrap(), BOOKS);
}

#[tokio::test]
async fn the_client_follows_its_bundle_without_dropping_connections() {
    let (a, b) = (TestPki::new(), TestPki::new());
    let server_trust = Trust::new(trust(&[&a, &b])).unwrap();
    let client_trust = Trust::new(trust(&[&b])).unwrap();
    let addr = inbound(&a, server_trust).await;
    // The server's anchor is not trusted yet.
    let refused = fresh(addr, &b, &client_trust).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.starts_with("handshake")),
        "the client refuses a server under an unknown anchor: {refused:?}"
    );
    client_trust.set(trust(&[&a, &b])).unwrap();
    let mut established = connect(addr, &b, &client_trust).await.unwrap();
    assert_eq!(get(&mut established).await.unwrap(), BOOKS);

    // The server's anchor removed: the open connection goes on.
    client_trust.set(trust(&[&b])).unwrap();
    assert_eq!(get(&mut established).await.unwrap(), BOOKS);
    assert!(fresh(addr, &b, &client_trust).await.is_err());
}
