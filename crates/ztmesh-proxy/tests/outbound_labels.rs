//! Outbound request series and the server's proxy learn the logical name
//! a request was routed by, as linkerd2-proxy's do: `authority` is the
//! Service's name (never an address), absent for a bare address, and
//! `l5d-dst-canonical` carries the name to the server's proxy.

mod outbound_support;

use bytes::Bytes;
use outbound_support::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use ztmesh_proxy::metrics::{HttpMetrics, StatsCache, TcpMetrics};
use ztmesh_proxy::outbound::http::Dst;
use ztmesh_proxy::outbound::{InMemoryDiscovery, OutboundBuilder};

const SVC: &str = "authors.booksapp.svc.cluster.local:7001";

/// An HTTP backend keeping each request's `l5d-dst-canonical`.
async fn recording_backend() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let canonical = req
                        .headers()
                        .get("l5d-dst-canonical")
                        .map(|v| v.to_str().unwrap().to_string());
                    record.lock().unwrap().push(canonical);
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from("x")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn authority_is_the_logical_name_and_absent_for_an_address() {
    let (meshed, seen) = recording_backend().await;
    // A pod's address, asked for as such: meshed, but no name.
    let (pod, pod_seen) = recording_backend().await;
    let discovery = Arc::new(InMemoryDiscovery::default());
    discovery.set(SVC, resolution(meshed, None));
    discovery.set(&pod.to_string(), resolution(pod, None));
    // A Service's cluster IP: Destination names the Service.
    let (by_ip, by_ip_seen) = recording_backend().await;
    let cluster_ip = "10.233.0.100:7001";
    let mut service = resolution(by_ip, None);
    service.logical = Some(SVC.into());
    discovery.set(cluster_ip, service);
    let http = Arc::new(HttpMetrics::default());
    let pki = ztmesh_test_support::TestPki::new();
    let tls = Arc::new(ztmesh_proxy::outbound::connect::ClientTls::new(
        ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap(),
        ztmesh_tls::CredentialsStore::new(),
    ));
    let out = OutboundBuilder::new(discovery, tls)
        .metrics(
            Arc::new(TcpMetrics::default()),
            http.clone(),
            Arc::default(),
        )
        .build();
    for target in [SVC.to_string(), pod.to_string(), cluster_ip.to_string()] {
        let req = http::Request::builder()
            .uri(format!("http://{target}/books"))
            .body(empty())
            .unwrap();
        let rsp = out
            .http()
            .route(req, Dst::AbsoluteUri, &StatsCache::default())
            .await;
        assert_eq!(rsp.status(), 200, "{target}");
    }
    let mut text = String::new();
    http.encode(&mut text);
    let request_line = |addr: SocketAddr| {
        text.lines()
            .find(|l| {
                l.starts_with("request_total{") && l.contains(&format!("target_addr=\"{addr}\""))
            })
            .unwrap_or_else(|| panic!("no series for {addr} in\n{text}"))
            .to_string()
    };
    assert!(
        request_line(meshed).starts_with(&format!(
            "request_total{{direction=\"outbound\",authority=\"{SVC}\",target_addr="
        )),
        "{text}"
    );
    assert!(
        request_line(by_ip).starts_with(&format!(
            "request_total{{direction=\"outbound\",authority=\"{SVC}\",target_addr="
        )),
        "{text}"
    );
    assert!(
        request_line(pod).starts_with("request_total{direction=\"outbound\",target_addr="),
        "{text}"
    );
    // The name travels to the endpoint's proxy; an address names nothing.
    assert_eq!(*seen.lock().unwrap(), vec![Some(SVC.to_string())]);
    assert_eq!(*pod_seen.lock().unwrap(), vec![None]);
    assert_eq!(*by_ip_seen.lock().unwrap(), vec![Some(SVC.to_string())]);
}
