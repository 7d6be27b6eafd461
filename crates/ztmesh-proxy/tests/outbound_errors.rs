//! The outbound error edge, end to end: each way a request fails here
//! reaches the application as one status with `l5d-proxy-error` (gRPC
//! callers: HTTP 200 with `grpc-status`), through the whole router over
//! in-memory discovery, and, for CONNECT, through the listener.

mod outbound_support;

use outbound_support::{backend, empty, outbound, resolution};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztmesh_proxy::metrics::StatsCache;
use ztmesh_proxy::outbound::InMemoryDiscovery;
use ztmesh_proxy::outbound::discover::Resolution;
use ztmesh_proxy::outbound::http::Dst;

const NAME: &str = "web.ns.svc.cluster.local:80";

/// A loopback port nothing listens on.
async fn closed_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn failures_answer_one_status_each() {
    let discovery = Arc::new(InMemoryDiscovery::default());
    let out = outbound(discovery.clone(), Arc::default());
    discovery.set("empty.ns.svc.cluster.local:80", Resolution::default());
    discovery.set(NAME, resolution(closed_port().await, None));
    // (uri, content-type, status, grpc-status, reason)
    let cases: [(&str, Option<&str>, u16, Option<&str>, &str); 7] = [
        ("/x", None, 400, None, "is not absolute-form"),
        (
            "http://empty.ns.svc.cluster.local:80/",
            None,
            503,
            None,
            "has no endpoints",
        ),
        (
            "http://nowhere.ns.svc.cluster.local:80/",
            None,
            502,
            None,
            "not a service the control plane knows",
        ),
        (
            "http://127.0.0.1:9/",
            None,
            403,
            None,
            "loopback address outside the mesh",
        ),
        (
            "http://web.ns.svc.cluster.local:80/",
            None,
            502,
            None,
            "the request to 127.0.0.1:",
        ),
        (
            "http://empty.ns.svc.cluster.local:80/svc.Api/Get",
            Some("application/grpc"),
            200,
            Some("14"),
            "has no endpoints",
        ),
        (
            "http://127.0.0.1:9/svc.Api/Get",
            Some("application/grpc+proto"),
            200,
            Some("7"),
            "loopback address outside the mesh",
        ),
    ];
    for (uri, content_type, status, grpc, reason) in cases {
        let mut req = http::Request::get(uri);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let rsp = out
            .http()
            .route(
                req.body(empty()).unwrap(),
                Dst::AbsoluteUri,
                &StatsCache::default(),
            )
            .await;
        assert_eq!(rsp.status(), status, "{uri}");
        assert_eq!(
            rsp.headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap()),
            grpc,
            "{uri}"
        );
        let header = rsp.headers()["l5d-proxy-error"].to_str().unwrap();
        assert!(header.contains(reason), "{uri}: {header}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_grpc_request_past_its_route_timeout_gets_deadline_exceeded() {
    let (addr, _) = backend(200, Duration::from_secs(60)).await;
    let discovery = Arc::new(InMemoryDiscovery::default());
    let out = outbound(discovery.clone(), Arc::default());
    let profile = ztmesh_proxy::outbound::profile::Profile::from_proto(
        &ztmesh_test_support::profiles::seed002(0.2, 10, vec![]),
    );
    discovery.set(NAME, resolution(addr, Some(profile)));
    let req = http::Request::get(format!("http://{NAME}/api/users"))
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap();
    let rsp = out
        .http()
        .route(req, Dst::AbsoluteUri, &StatsCache::default())
        .await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.headers()["grpc-status"], "4");
    assert!(
        rsp.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("timed out after 5s")
    );
}

/// Sends `head` on a fresh connection to `addr`; the whole answer.
async fn exchange(addr: std::net::SocketAddr, head: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_refused_connect_is_answered_and_the_connection_closed() {
    let discovery = Arc::new(InMemoryDiscovery::default());
    discovery.set(NAME, resolution(closed_port().await, None));
    let out = Arc::new(outbound(discovery, Arc::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(out.serve(listener, false, ztmesh_proxy::drain::Watch::never()));

    let cases = [
        (
            "127.0.0.1:9",
            "HTTP/1.1 403",
            "loopback address outside the mesh",
        ),
        (NAME, "HTTP/1.1 502", "connecting to 127.0.0.1:"),
        (
            "nowhere.ns.svc.cluster.local:80",
            "HTTP/1.1 502",
            "not a service the control plane knows",
        ),
    ];
    for (target, status, reason) in cases {
        let rsp = exchange(
            addr,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        )
        .await;
        assert!(rsp.starts_with(status), "{target}: {rsp}");
        let lower = rsp.to_ascii_lowercase();
        assert!(lower.contains("connection: close"), "{target}: {rsp}");
        assert!(lower.contains("l5d-proxy-error:"), "{target}: {rsp}");
        assert!(rsp.contains(reason), "{target}: {rsp}");
    }
}
