//! The webhook over real TLS on loopback: both endpoints answer reviews;
//! what is not a proper request gets its status (405, 413, 408) or is
//! cut off, never a hang; a new serving certificate written over the
//! files (as a Secret volume swaps them) is served to the next handshake.

use rustls_pki_types::ServerName;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ztmesh_webhook::test_util::{FixedNamespaces, TestInjector};
use ztmesh_webhook::{CertFiles, Limits, Metrics, NamespaceMeta, Webhook};

const HOST: &str = "127.0.20.1";
/// How long any answer may take here.
const DEADLINE: Duration = Duration::from_secs(10);

/// A CA and a serving certificate for HOST signed by it, written to
/// `dir/tls.crt` and `dir/tls.key` (by rename, as a Secret volume swaps
/// files); the CA's PEM.
fn write_cert(dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![HOST.to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    for (name, pem) in [("tls.crt", cert.pem()), ("tls.key", key.serialize_pem())] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, pem).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
    ca_cert.pem()
}

fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(ztmesh_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

struct Server {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &Path, limits: Limits) -> Server {
    let mut shop = NamespaceMeta::named("shop");
    shop.labels
        .insert("config.ztmesh.io/enforce-injection".into(), "true".into());
    shop.annotations
        .insert("linkerd.io/inject".into(), "enabled".into());
    let webhook = Webhook::new(
        Arc::new(TestInjector),
        Arc::new(FixedNamespaces::default().with(shop)),
        Metrics::default(),
    );
    let tls = CertFiles::from_dir(dir)
        .expect("cert")
        .server_config()
        .expect("config");
    let listener = tokio::net::TcpListener::bind((HOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ztmesh_webhook::serve(
        listener,
        tls,
        Arc::new(webhook),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Server { addr, _stop: stop }
}

/// Sends `head` then `body` over TLS (trusting `ca_pem`), and reads the
/// whole answer (the request says `Connection: close`).
async fn exchange(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    head: &str,
    body: &[u8],
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(HOST).expect("name");
    let mut tls = connector(ca_pem).connect(name, tcp).await?;
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    tls.flush().await?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out).await {
        // Closed without close_notify (a timeout's close): what came before stands.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        other => {
            other?;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn post(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

#[tokio::test]
async fn serves_reviews_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_cert(dir.path());
    let limits = Limits {
        max_body: 64 << 10,
        read: Duration::from_secs(1),
        handshake: Duration::from_secs(1),
    };
    let server = start(dir.path(), limits).await;
    let inject = fixture("inject-v1-pod-plain");
    let validate = fixture("validate-v1beta1-pod-plain");
    // (case, head, body, status line, body contains)
    let cases: Vec<(&str, String, Vec<u8>, &str, &str)> = vec![
        (
            "inject",
            post("/inject?timeout=10s", inject.len()),
            inject.clone(),
            "HTTP/1.1 200",
            "\"patchType\":\"JSONPatch\"",
        ),
        (
            "validate",
            post("/validate?timeout=10s", validate.len()),
            validate.clone(),
            "HTTP/1.1 200",
            "has no linkerd-proxy container",
        ),
        (
            "GET",
            format!("GET /inject HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
            vec![],
            "HTTP/1.1 405",
            "POST /inject",
        ),
        (
            "declared too large",
            post("/inject", 1 << 30),
            vec![],
            "HTTP/1.1 413",
            "larger than 65536 bytes",
        ),
        (
            "chunked too large",
            format!(
                "POST /inject HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            ),
            format!("{:x}\r\n{}\r\n0\r\n\r\n", 70_000, "x".repeat(70_000)).into_bytes(),
            "HTTP/1.1 413",
            "larger than",
        ),
        (
            "body cut short",
            post("/validate", 500),
            b"{\"apiVersion\":".to_vec(),
            "HTTP/1.1 408",
            "took too long",
        ),
        (
            "garbage",
            post("/validate", 7),
            b"garbage".to_vec(),
            "HTTP/1.1 400",
            "not JSON",
        ),
    ];
    for (case, head, body, status, needle) in cases {
        let answer = tokio::time::timeout(DEADLINE, exchange(server.addr, &ca, &head, &body))
            .await
            .unwrap_or_else(|_| panic!("{case}: no answer within {DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(answer.starts_with(status), "{case}: {answer}");
        assert!(answer.contains(needle), "{case}: {answer}");
    }

    // TLS, then nothing: closed once no request head came in time.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from(HOST).expect("name");
    let mut tls = connector(&ca).connect(name, tcp).await.expect("TLS");
    let mut sink = Vec::new();
    let read = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "an idle TLS connection was held");

    // A request kept alive, then nothing: closed too.
    let body = fixture("validate-v1-pod-delete");
    let head = post("/validate", body.len()).replace("Connection: close\r\n", "");
    let answer = tokio::time::timeout(DEADLINE, exchange(server.addr, &ca, &head, &body))
        .await
        .expect("an idle kept-alive connection was held")
        .expect("exchange");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Not TLS, or nothing at all: the connection is closed, not held.
    for (case, bytes) in [
        ("plaintext", &b"POST /inject HTTP/1.1\r\n\r\n"[..]),
        ("silent", &b""[..]),
    ] {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(bytes).await.expect("write");
        let mut sink = Vec::new();
        let read = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "{case}: the server held the connection");
    }
}

#[tokio::test]
async fn a_new_certificate_is_served_to_the_next_handshake() {
    let dir = tempfile::tempdir().expect("dir");
    let old_ca = write_cert(dir.path());
    let server = start(dir.path(), Limits::default()).await;
    let body = fixture("validate-v1-pod-delete");
    let head = post("/validate", body.len());
    let answer = exchange(server.addr, &old_ca, &head, &body)
        .await
        .expect("old certificate");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let new_ca = write_cert(dir.path());
    let answer = exchange(server.addr, &new_ca, &head, &body)
        .await
        .expect("the new certificate is served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let refused = exchange(server.addr, &old_ca, &head, &body).await;
    assert!(refused.is_err(), "the old CA still verifies: {refused:?}");

    // A broken pair is refused; the last good one stays.
    std::fs::write(dir.path().join("tls.key"), "not a key").expect("write");
    let answer = exchange(server.addr, &new_ca, &head, &body)
        .await
        .expect("the last good certificate stays");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_certificate_that_does_not_load_is_refused_with_the_reason() {
    let good = tempfile::tempdir().expect("dir");
    write_cert(good.path());
    let other = tempfile::tempdir().expect("dir");
    write_cert(other.path());
    let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    // (tls.crt, tls.key, error contains); None: the file is absent.
    let cases = [
        (None, None, "reading"),
        (
            Some("garbage".to_string()),
            Some(read(good.path(), "tls.key")),
            "no certificate",
        ),
        (
            Some(read(good.path(), "tls.crt")),
            Some("garbage".to_string()),
            "no private key",
        ),
        (
            Some(read(good.path(), "tls.crt")),
            Some(read(other.path(), "tls.key")),
            "not the key of the certificate",
        ),
    ];
    for (cert, key, needle) in cases {
        let dir = tempfile::tempdir().expect("dir");
        for (name, pem) in [("tls.crt", cert), ("tls.key", key)] {
            if let Some(pem) = pem {
                std::fs::write(dir.path().join(name), pem).expect("write");
            }
        }
        let error = CertFiles::from_dir(dir.path())
            .expect_err("refused")
            .to_string();
        assert!(error.contains(needle), "{needle:?} not in {error}");
    }
    assert!(CertFiles::from_dir(good.path()).is_ok());
}
