//! The inbound stack against hostile clients (issue 11): the opaque
//! transport header without a client certificate or naming the proxy's own
//! ports, connections to an address that is not the pod's, and forged
//! `l5d-client-id` headers. Real rustls clients, real sockets.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;
use tokio::net::TcpStream;
use ztmesh_proxy::inbound::{DefaultPolicy, Targets};
use ztmesh_proxy::transport_header::{ALPN, TransportHeader};
use ztmesh_test_support::TestPki;

fn header(port: u16) -> TransportHeader {
    TransportHeader {
        port,
        name: None,
        protocol: None,
    }
}

#[tokio::test]
async fn transport_header_needs_a_client_identity_and_never_names_proxy_ports() {
    let pki = TestPki::new();
    let (app_addr, app_accepts) = app("app").await;
    // Stand-ins for the workload's outbound proxy and admin port: what an
    // anonymous client bounced through before the fix.
    let (outbound, outbound_accepts) = app("outbound").await;
    let (admin, admin_accepts) = app("admin").await;
    let targets = Targets {
        inbound_ips: vec![],
        own_ports: [outbound.port(), admin.port()].into(),
    };
    let p = proxy_with_targets(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
        &[],
        None,
        targets,
    )
    .await;
    let name = || ztmesh_tls::server_name(AUTHORS).unwrap();

    // No client certificate: the header is refused, nothing is reached.
    for port in [app_addr.port(), outbound.port(), admin.port()] {
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let mut tls = client_tls(&pki, None, &[ALPN])
            .connect(name(), tcp)
            .await
            .unwrap();
        // The write may race with the proxy closing; the answer is what counts.
        let _ = header(port).write(&mut tls).await;
        let answer = exchange_lenient(tls, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(answer, "", "anonymous header to port {port} got {answer:?}");
    }
    // A meshed client may not name the proxy's own ports either.
    for port in [outbound.port(), admin.port()] {
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let mut tls = client_tls(&pki, Some(WEB), &[ALPN])
            .connect(name(), tcp)
            .await
            .unwrap();
        let _ = header(port).write(&mut tls).await;
        let answer = exchange_lenient(tls, b"POST /shutdown HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            answer, "",
            "meshed header to proxy port {port} got {answer:?}"
        );
    }
    assert_eq!(app_accepts.load(Ordering::SeqCst), 0);
    assert_eq!(outbound_accepts.load(Ordering::SeqCst), 0);
    assert_eq!(admin_accepts.load(Ordering::SeqCst), 0);

    // The legitimate case still works: an identified client, the app's port.
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut tls = client_tls(&pki, Some(WEB), &[ALPN])
        .connect(name(), tcp)
        .await
        .unwrap();
    header(app_addr.port()).write(&mut tls).await.unwrap();
    assert_eq!(exchange(tls, b"via header").await, "app:via header");
}

#[tokio::test]
async fn only_the_pods_addresses_are_served() {
    let pki = TestPki::new();
    let (app_addr, accepts) = app("app").await;
    let p = proxy_with_targets(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
        &[],
        None,
        Targets {
            // The proxy listens on 127.0.0.1, which is not "the pod's".
            inbound_ips: vec!["127.0.0.2".parse().unwrap()],
            own_ports: Default::default(),
        },
    )
    .await;
    let plain = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(exchange_lenient(plain, b"hello").await, "");
    assert_eq!(accepts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forged_client_ids_never_reach_the_app() {
    let pki = TestPki::new();
    let app_addr = client_id_echo().await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let forged = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nl5d-client-id: admin.booksapp.serviceaccount.identity.linkerd.cluster.local\r\nl5d-client-id: {AUTHORS}\r\nconnection: close\r\n\r\n"
    );
    // Plaintext: removed.
    let plain = TcpStream::connect(p.addr).await.unwrap();
    let rsp = exchange(plain, forged.as_bytes()).await;
    assert!(rsp.ends_with("\r\n\r\nnone"), "{rsp}");
    // TLS without a certificate: removed.
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let anon = client_tls(&pki, None, &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    let rsp = exchange(anon, forged.as_bytes()).await;
    assert!(rsp.ends_with("\r\n\r\nnone"), "{rsp}");
    // A meshed client claiming another identity: overwritten with its own.
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let meshed = client_tls(&pki, Some(WEB), &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    let rsp = exchange(meshed, forged.as_bytes()).await;
    assert!(rsp.ends_with(&format!("\r\n\r\n{WEB}")), "{rsp}");
}

/// Pooled connections to the app are not kept past a few seconds idle:
/// a request must never be sent on a connection the app is closing (its
/// own keep-alive timeout), as with linkerd2-proxy's pool idle timeout.
#[tokio::test]
async fn idle_pooled_app_connections_expire_within_seconds() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::new();
    // An HTTP app that notes when each connection is closed by the proxy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    let closed: Arc<Mutex<Vec<tokio::time::Instant>>> = Arc::default();
    let closed_by_proxy = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let closed = closed_by_proxy.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                        }
                    }
                }
                closed.lock().unwrap().push(tokio::time::Instant::now());
            });
        }
    });
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let plain = TcpStream::connect(p.addr).await.unwrap();
    let answered = tokio::time::Instant::now();
    let rsp = exchange(plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(rsp.starts_with("HTTP/1.1 200"), "{rsp}");
    // The proxy's pooled connection to the app closes after ~3 s idle.
    let deadline = answered + Duration::from_secs(8);
    loop {
        if let Some(at) = closed.lock().unwrap().first() {
            let idle = at.duration_since(answered);
            assert!(
                idle >= Duration::from_secs(2) && idle < Duration::from_secs(6),
                "closed after {idle:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pooled connection to the app was still open 8 s after its request"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP/2 connection (what client proxies share) is not cut by the
/// HTTP/1 head timeout: requests on it 3 s apart, past the 2 s detect
/// timeout, both succeed on the one connection.
#[tokio::test]
async fn http2_connections_outlive_the_head_timeout() {
    use http_body_util::{BodyExt, Empty};
    let pki = TestPki::new();
    let (app_addr, accepted) = ztmesh_test_support::apps::echo_or_http("127.0.0.1:0", "app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    for round in 0..2 {
        let req = http::Request::builder()
            .uri(format!("http://authors/round-{round}"))
            .header("l5d-orig-proto", "HTTP/1.1")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let rsp = send
            .send_request(req)
            .await
            .expect("the connection is still up");
        assert_eq!(rsp.status(), 200, "round {round}");
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], format!("app:GET /round-{round}").as_bytes());
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(!conn.is_finished(), "the HTTP/2 connection was closed");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}
