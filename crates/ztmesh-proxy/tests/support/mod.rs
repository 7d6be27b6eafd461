//! Shared by the inbound tests: a test PKI's credentials, small
//! applications, the inbound stack on loopback and rustls clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use ztmesh_proxy::inbound::{DefaultPolicy, InboundBuilder, InboundTarget, Policies, Targets};
use ztmesh_proxy::metrics::TcpMetrics;
use ztmesh_proxy::transport_header::ALPN;
use ztmesh_test_support::{TestPki, csr_for};
use ztmesh_tls::{CredentialsStore, TlsVersions};

pub const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
pub const WEB: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";

pub fn creds(pki: &TestPki, name: &str) -> Arc<CredentialsStore> {
    let id = ztmesh_identity::IdentityName::parse_dns(name).unwrap();
    let (key, csr) = csr_for(name);
    let csr = ztmesh_identity::csr::validate(&csr, &id).unwrap();
    let issued = pki
        .ca(Duration::from_secs(3600))
        .issue(&id, csr.public_key(), std::time::SystemTime::now())
        .unwrap();
    let store = CredentialsStore::new();
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    store
        .set(
            chain,
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    store
}

/// An application: reads until the client half-closes, then answers
/// `{tag}:{request}` (so half-close must be propagated). Counts accepts.
pub async fn app(tag: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut req = Vec::new();
                if s.read_to_end(&mut req).await.is_ok() {
                    let _ = s
                        .write_all(format!("{tag}:{}", String::from_utf8_lossy(&req)).as_bytes())
                        .await;
                }
            });
        }
    });
    (addr, accepted)
}

/// An application that speaks first.
pub async fn greeter() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"220 hello\r\n").await;
        }
    });
    addr
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub metrics: Arc<TcpMetrics>,
    pub http: Arc<ztmesh_proxy::metrics::HttpMetrics>,
}

pub async fn proxy(
    pki: &TestPki,
    target: SocketAddr,
    policy: DefaultPolicy,
    detect: Duration,
) -> Proxy {
    proxy_with_opaque_ports(pki, target, policy, detect, &[]).await
}

pub async fn proxy_with_opaque_ports(
    pki: &TestPki,
    target: SocketAddr,
    policy: DefaultPolicy,
    detect: Duration,
    opaque_ports: &[u16],
) -> Proxy {
    proxy_with(pki, target, policy, detect, opaque_ports, None).await
}

pub async fn proxy_with(
    pki: &TestPki,
    target: SocketAddr,
    policy: DefaultPolicy,
    detect: Duration,
    opaque_ports: &[u16],
    tracer: Option<Arc<ztmesh_proxy::trace::Tracer>>,
) -> Proxy {
    proxy_with_targets(
        pki,
        target,
        policy,
        detect,
        opaque_ports,
        tracer,
        Targets::default(),
    )
    .await
}

/// A proxy with the pod's addresses and the proxy's own ports set.
pub async fn proxy_with_targets(
    pki: &TestPki,
    target: SocketAddr,
    policy: DefaultPolicy,
    detect: Duration,
    opaque_ports: &[u16],
    tracer: Option<Arc<ztmesh_proxy::trace::Tracer>>,
    targets: Targets,
) -> Proxy {
    let server = ztmesh_tls::mesh_server_config(
        creds(pki, AUTHORS),
        ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap(),
        TlsVersions::Tls13Only,
        &[ALPN],
    )
    .unwrap();
    let metrics = Arc::new(TcpMetrics::default());
    let http = Arc::new(ztmesh_proxy::metrics::HttpMetrics::default());
    let policies = Policies::new(None, policy.server(&["127.0.0.0/8".parse().unwrap()]));
    let inbound = InboundBuilder::new(
        AUTHORS,
        tokio_rustls::TlsAcceptor::from(server),
        InboundTarget::App(target),
        Arc::new(policies),
    )
    .detect_timeout(detect)
    .opaque_ports(opaque_ports.iter().copied())
    .targets(targets)
    .metrics(metrics.clone(), http.clone())
    .tracer(tracer)
    .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(inbound.serve(listener, ztmesh_proxy::drain::Watch::never()));
    Proxy {
        addr,
        metrics,
        http,
    }
}

pub fn client_tls(
    pki: &TestPki,
    identity: Option<&str>,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let roots = ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap();
    let creds = identity.map(|name| creds(pki, name));
    tokio_rustls::TlsConnector::from(
        ztmesh_tls::client_config(roots, creds, TlsVersions::Tls13Only, alpn).unwrap(),
    )
}

/// Sends `req`, half-closes, returns the whole answer.
pub async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> String {
    s.write_all(req).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer within 5s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn metrics_text(p: &Proxy) -> String {
    let mut s = String::new();
    p.metrics.encode(&mut s);
    s
}

/// An HTTP/1 application that answers each request with the
/// `l5d-client-id` header lines it received (`none` when there are none).
pub async fn client_id_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let ids: Vec<&str> = head
                            .lines()
                            .filter(|l| l.to_ascii_lowercase().starts_with("l5d-client-id:"))
                            .map(|l| l["l5d-client-id:".len()..].trim())
                            .collect();
                        let body = if ids.is_empty() {
                            "none".to_string()
                        } else {
                            ids.join(",")
                        };
                        let rsp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(rsp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Like [`exchange`], for a peer that may close first: write errors are
/// ignored and whatever arrived before the close is returned.
pub async fn exchange_lenient<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> String {
    let _ = s.write_all(req).await;
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer or a close within 5s");
    String::from_utf8_lossy(&out).into_owned()
}
