//! Tap events from the inbound stack: the client's real address (its
//! port too) as the source, and the request's logical authority (the
//! client proxy's `l5d-dst-canonical`) rather than the address the client
//! dialled.

mod support;

use linkerd2_proxy_api::tap::{TapEvent, tap_event};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use ztmesh_proxy::inbound::{DefaultPolicy, InboundBuilder, InboundTarget, Policies};
use ztmesh_proxy::tap::Taps;
use ztmesh_proxy::transport_header::ALPN;
use ztmesh_test_support::TestPki;
use ztmesh_tls::TlsVersions;

/// The next RequestInit's (source, authority).
async fn request_init(
    events: &mut tokio::sync::mpsc::Receiver<Result<TapEvent, tonic::Status>>,
) -> (std::net::SocketAddr, String) {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("a tap event within 5s")
            .expect("the stream is open")
            .expect("an event");
        let Some(tap_event::Event::Http(http)) = &e.event else {
            continue;
        };
        if let Some(tap_event::http::Event::RequestInit(init)) = &http.event {
            let source =
                std::net::SocketAddr::try_from(e.source.expect("a source")).expect("an address");
            return (source, init.authority.clone());
        }
    }
}

#[tokio::test]
async fn tap_reports_the_client_address_and_the_logical_authority() {
    let pki = TestPki::new();
    let (app, _) = app("app").await;
    let server = ztmesh_tls::mesh_server_config(
        creds(&pki, AUTHORS),
        ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap(),
        TlsVersions::Tls13Only,
        &[ALPN],
    )
    .unwrap();
    let policies = Policies::new(
        None,
        DefaultPolicy::AllUnauthenticated.server(&["127.0.0.0/8".parse().unwrap()]),
    );
    let taps = Arc::new(Taps::default());
    let mut events = taps.observe_all(10);
    let inbound = InboundBuilder::new(
        AUTHORS,
        tokio_rustls::TlsAcceptor::from(server),
        InboundTarget::App(app),
        Arc::new(policies),
    )
    .taps(taps)
    .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(inbound.serve(listener, ztmesh_proxy::drain::Watch::never()));

    let svc = "authors.booksapp.svc.cluster.local:7001";
    let cases = [
        // Routed by a client proxy: the Service's name, not its cluster IP.
        (
            format!("Host: 10.233.0.100:7001\r\nl5d-dst-canonical: {svc}\r\n"),
            svc,
        ),
        // No logical name: the request's own authority.
        ("Host: 10.0.0.7:7001\r\n".to_string(), "10.0.0.7:7001"),
    ];
    for (headers, want) in cases {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let local = client.local_addr().unwrap();
        client
            .write_all(
                format!("GET /books HTTP/1.1\r\n{headers}connection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let (source, authority) = request_init(&mut events).await;
        assert_eq!(source, local, "the client's address, port included");
        assert_eq!(authority, want);
    }
}
