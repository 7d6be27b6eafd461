//! Shared by the outbound tests: the outbound stack built over in-memory
//! discovery, loopback backends whose answers the test chooses, and
//! request helpers.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use ztmesh_proxy::outbound::discover::{Endpoint, Resolution};
use ztmesh_proxy::outbound::{InMemoryDiscovery, Outbound, OutboundBuilder};
use ztmesh_proxy::route_metrics::RouteMetrics;

/// The outbound stack over `discovery`, counting routes in `routes`.
pub fn outbound(discovery: Arc<InMemoryDiscovery>, routes: Arc<RouteMetrics>) -> Outbound {
    let pki = ztmesh_test_support::TestPki::new();
    let roots = ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap();
    let tls = Arc::new(ztmesh_proxy::outbound::connect::ClientTls::new(
        roots,
        ztmesh_tls::CredentialsStore::new(),
    ));
    OutboundBuilder::new(discovery, tls)
        .metrics(Arc::default(), Arc::default(), routes)
        .build()
}

/// A meshed-looking target (not outside the mesh) on plaintext endpoints.
pub fn resolution(
    addr: SocketAddr,
    profile: Option<ztmesh_proxy::outbound::profile::Profile>,
) -> Resolution {
    Resolution {
        endpoints: Arc::new(vec![Endpoint::plain(addr)]),
        opaque_protocol: false,
        profile: profile.map(Arc::new),
        accrual: None,
        outside_mesh: false,
        logical: None,
    }
}

/// A backend that waits `delay` and answers `status`, counting requests.
pub async fn backend(status: u16, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    backend_with(move |_| (status, delay)).await
}

/// A backend that answers the n-th request (from 0) as `answer(n)` says:
/// (status, delay).
pub async fn backend_with(
    answer: impl Fn(usize) -> (u16, Duration) + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (counter, answer) = (hits.clone(), Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (counter, answer) = (counter.clone(), answer.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let (status, delay) = answer(counter.fetch_add(1, Ordering::SeqCst));
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(Bytes::from("x")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// An empty request body, as the router takes it.
pub fn empty() -> http_body_util::combinators::BoxBody<Bytes, hyper::Error> {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}
