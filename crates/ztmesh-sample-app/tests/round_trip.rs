//! The sample app against its own clients, directly on loopback.

use std::time::Duration;
use ztmesh_sample_app::{client, server};

#[tokio::test]
async fn every_protocol_round_trips() {
    let (http, tcp) = server::start(
        "127.0.0.1:0".parse().unwrap(),
        Some("127.0.0.1:0".parse().unwrap()),
        server::Behaviour {
            name: "books".into(),
            fail_rate: 0.0,
            delay: Duration::ZERO,
            fail_while: None,
        },
    )
    .await
    .unwrap();
    let reply = client::grpc_call(&http.to_string(), "/ztmesh.Echo/Say", b"hello")
        .await
        .unwrap();
    assert_eq!(reply.message, b"hello");
    assert_eq!(reply.grpc_status, "0");
    assert_eq!(reply.served_by.as_deref(), Some("books"));
    let echoed = client::websocket_echo(&http.to_string(), "/ws", "over websocket")
        .await
        .unwrap();
    assert_eq!(echoed, "over websocket");
    let echoed = client::tcp_echo(&tcp.unwrap().to_string(), b"opaque bytes")
        .await
        .unwrap();
    assert_eq!(echoed, b"books:opaque bytes");
}

#[tokio::test]
async fn failure_rate_one_always_fails_and_errors_name_the_cause() {
    let (http, _) = server::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        server::Behaviour {
            name: "flaky".into(),
            fail_rate: 1.0,
            delay: Duration::ZERO,
            fail_while: None,
        },
    )
    .await
    .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 500"), "{out}");
    assert!(out.ends_with("flaky:GET /api/users failed\n"), "{out}");
    // A client pointed at a closed port says which address failed.
    let err = client::grpc_call("127.0.0.1:1", "/x", b"")
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("connecting to 127.0.0.1:1"),
        "{err}"
    );
}
