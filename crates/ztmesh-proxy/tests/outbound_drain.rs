//! SIGTERM's drain on the outbound side, in process with the drain watch
//! `run` holds: once draining begins, the listener stops accepting, a
//! request already in flight completes (200), and the drain ends when its
//! connection closes; a request that outlives the grace period does not
//! hold the drain past it.

mod outbound_support;

use outbound_support::{outbound, resolution};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use ztmesh_proxy::outbound::InMemoryDiscovery;

const SLOW: &str = "slow.ns.svc.cluster.local:80";

/// A backend that reports each request's arrival and answers 200 once
/// `release` says so.
async fn held_backend(
    arrived: mpsc::UnboundedSender<()>,
    release: watch::Receiver<bool>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (arrived, release) = (arrived.clone(), release.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let (arrived, mut release) = (arrived.clone(), release.clone());
                    async move {
                        let _ = arrived.send(());
                        let _ = release.wait_for(|r| *r).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from("done")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// The outbound listener (explicit mode) serving under `watch`.
async fn listen(
    backend: std::net::SocketAddr,
    watch: ztmesh_proxy::drain::Watch,
) -> std::net::SocketAddr {
    let discovery = Arc::new(InMemoryDiscovery::default());
    discovery.set(SLOW, resolution(backend, None));
    let out = Arc::new(outbound(discovery, Arc::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(out.serve(listener, false, watch));
    addr
}

/// Sends a request for SLOW; the task yields the whole answer.
async fn request(proxy: std::net::SocketAddr) -> tokio::task::JoinHandle<String> {
    let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(format!("GET http://{SLOW}/ HTTP/1.1\r\nHost: {SLOW}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Waits until connecting to `addr` is refused.
async fn until_refused(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts while draining"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn draining_finishes_the_request_in_flight_and_refuses_new_connections() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (release, release_rx) = watch::channel(false);
    let backend = held_backend(arrived_tx, release_rx).await;
    let (drain, watch) = ztmesh_proxy::drain::channel();
    let proxy = listen(backend, watch).await;

    let answer = request(proxy).await;
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("the request reaches the backend");

    // SIGTERM: draining begins with the request in flight.
    let drained = tokio::spawn(drain.drain(Duration::from_secs(30)));
    until_refused(proxy).await;
    assert!(!drained.is_finished(), "the drain waits for the request");

    release.send_replace(true);
    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("the answer comes")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    let drained = tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the drain ends once the connection closes")
        .unwrap();
    assert!(drained, "every connection closed within the grace period");
}

#[tokio::test]
async fn a_request_past_the_grace_period_does_not_hold_the_drain() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (_release, release_rx) = watch::channel(false);
    let backend = held_backend(arrived_tx, release_rx).await;
    let (drain, watch) = ztmesh_proxy::drain::channel();
    let proxy = listen(backend, watch).await;
    let _answer = request(proxy).await;
    tokio::time::timeout(Duration::from_secs(10), arrived.recv())
        .await
        .expect("the request reaches the backend");

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    assert!(!drain.drain(grace).await, "the request is still in flight");
    let took = started.elapsed();
    assert!(took >= grace && took < Duration::from_secs(5), "{took:?}");
}
