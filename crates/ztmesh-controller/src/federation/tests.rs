//! The federation loop against a real HTTPS endpoint in process: a bundle
//! fetched and written for the proxies, kept through a failed fetch,
//! dropped on a malformed one (fail closed) and back with a good one;
//! `trustDomainBundle` standing in while the endpoint is unreachable; the
//! local domain refused; a removed resource un-federates at once.

use super::{Sources, bundle, domains, fetch};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use ztmesh_resources::Resource;

/// What the test endpoint answers, and how many requests it served.
#[derive(Default)]
struct Answer {
    reply: Mutex<(u16, String)>,
    served: AtomicUsize,
}

fn ca_and_serving(ip: &str) -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![rcgen::SanType::IpAddress(ip.parse().unwrap())];
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    let creds = ztmesh_tls::CredentialsStore::new();
    creds
        .set(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let tls = ztmesh_tls::server_config(creds, ztmesh_tls::TlsVersions::AllowTls12, &[]).unwrap();
    (ca_cert.pem(), tls)
}

async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, answer: Arc<Answer>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let (acceptor, answer) = (acceptor.clone(), answer.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |_req| {
                answer.served.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answer.reply.lock().unwrap().clone();
                let rsp = hyper::Response::builder()
                    .status(status)
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                    .unwrap();
                std::future::ready(Ok::<_, std::convert::Infallible>(rsp))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn anchor() -> rustls_pki_types::CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().clone()
}

fn cftd(name: &str, domain: &str, url: &str, initial: Option<&str>) -> Resource {
    let initial = initial
        .map(|b| format!("  trustDomainBundle: '{b}'\n"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: spire.spiffe.io/v1alpha1\nkind: ClusterFederatedTrustDomain\nmetadata: {{name: {name}}}\nspec:\n  trustDomain: {domain}\n  bundleEndpointURL: {url}\n  bundleEndpointProfile: {{type: https_web}}\n{initial}"
    );
    let loaded = ztmesh_resources::load_str(&text, "f.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.resources.into_iter().next().unwrap()
}

/// The federated domains and their PEM, as the proxies' file holds them.
fn written(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["trust_domain"], "a.example");
    Some(v["trust_domains"].clone())
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bundles_are_followed_kept_on_failure_and_dropped_when_malformed() {
    let listener = TcpListener::bind("127.0.24.3:0").await.unwrap();
    let url = format!("https://{}/bundle", listener.local_addr().unwrap());
    let (ca_pem, tls) = ca_and_serving("127.0.24.3");
    let answer = Arc::new(Answer::default());
    let (first, second) = (anchor(), anchor());
    let good = |a: &rustls_pki_types::CertificateDer<'_>| {
        (
            200,
            bundle::encode(std::slice::from_ref(a), 1, Duration::from_secs(1)),
        )
    };
    *answer.reply.lock().unwrap() = good(&first);
    tokio::spawn(serve(listener, tls, answer.clone()));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("federated.json");
    let sources = Sources::new();
    let roots = ztmesh_tls::roots_from_pem(ca_pem.as_bytes()).unwrap();
    let run = domains::Domains {
        local: "a.example".into(),
        sources: sources.0.subscribe(),
        tls: fetch::client_tls(roots),
        file: Some(file.clone()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run.run(async {
        let _ = stopped.await;
    }));
    let pem_of =
        |c: &rustls_pki_types::CertificateDer<'_>| ztmesh_identity::pem::encode("CERTIFICATE", c);
    until("an empty bundle set is written", || {
        written(&file) == Some(serde_json::json!({}))
    })
    .await;

    sources.apply(&cftd("b", "b.example", &url, None));
    sources.apply(&cftd("local", "a.example", &url, None));
    until("b.example's bundle is written", || {
        written(&file).map(|d| d["b.example"] == pem_of(&first).as_str()) == Some(true)
    })
    .await;
    assert!(
        written(&file).unwrap().get("a.example").is_none(),
        "the local domain is refused"
    );

    *answer.reply.lock().unwrap() = (500, "down".into());
    let served = answer.served.load(Ordering::SeqCst);
    until("a failed fetch", || {
        answer.served.load(Ordering::SeqCst) > served
    })
    .await;
    assert_eq!(
        written(&file).unwrap()["b.example"],
        pem_of(&first).as_str(),
        "the last good bundle stays"
    );

    *answer.reply.lock().unwrap() = (200, "{\"keys\": [{\"use\": \"x509-svid\"}]}".into());
    until("a malformed bundle trusts nothing of b.example", || {
        written(&file) == Some(serde_json::json!({}))
    })
    .await;

    *answer.reply.lock().unwrap() = good(&second);
    until("a good bundle again", || {
        written(&file).map(|d| d["b.example"] == pem_of(&second).as_str()) == Some(true)
    })
    .await;

    // trustDomainBundle stands in while the endpoint is unreachable.
    let doc = bundle::encode(std::slice::from_ref(&first), 1, Duration::from_secs(60));
    let compact =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&doc).unwrap()).unwrap();
    sources.apply(&cftd(
        "c",
        "c.example",
        "https://127.0.24.3:1/",
        Some(&compact),
    ));
    until("c.example from its trustDomainBundle", || {
        written(&file).map(|d| d["c.example"] == pem_of(&first).as_str()) == Some(true)
    })
    .await;

    sources.delete(&cftd("b", "b.example", &url, None).key());
    until("b.example un-federated", || {
        written(&file).map(|d| d.get("b.example").is_none()) == Some(true)
    })
    .await;
    drop(stop);
}

/// The bundle endpoint serves `ca.crt` as a bundle document that the
/// fetcher reads back, and a changed `ca.crt` at the next request.
#[tokio::test]
async fn the_bundle_endpoint_serves_the_anchors_as_they_are_now() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, _) = ca_and_serving("127.0.24.4");
    // A serving pair under a CA of our own, written as files.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let web_ca = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.24.4".parse().unwrap())];
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let anchors = dir.path().join("ca.crt");
    std::fs::write(&anchors, &ca_pem).unwrap();

    let (creds, tls) = super::endpoint::server_tls(&cert_file, &key_file).unwrap();
    let listener = TcpListener::bind("127.0.24.4:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let endpoint = super::endpoint::Endpoint {
        listener,
        tls,
        creds,
        cert: cert_file,
        key: key_file,
        anchors: anchors.clone(),
        refresh_hint: Duration::from_secs(42),
    };
    tokio::spawn(super::endpoint::serve(endpoint, std::future::pending()));
    let client = fetch::client_tls(ztmesh_tls::roots_from_pem(web_ca.pem().as_bytes()).unwrap());
    let got = bundle::parse(&fetch::get(&url, client.clone()).await.unwrap()).unwrap();
    let want = ztmesh_identity::pem::certificates(ca_pem.as_bytes(), "ca").unwrap();
    assert_eq!(got.x509_authorities, want);
    assert_eq!(got.refresh_hint, Some(Duration::from_secs(42)));
    assert!(got.sequence.is_some_and(|s| s > 0));

    let second = ztmesh_identity::pem::encode("CERTIFICATE", &anchor());
    std::fs::write(&anchors, format!("{ca_pem}{second}")).unwrap();
    let got = bundle::parse(&fetch::get(&url, client.clone()).await.unwrap()).unwrap();
    assert_eq!(
        got.x509_authorities.len(),
        2,
        "a rotation is served at once"
    );

    // A client that does not trust the serving certificate's CA is refused.
    let stranger = fetch::client_tls(ztmesh_tls::roots_from_pem(ca_pem.as_bytes()).unwrap());
    let err = fetch::get(&url, stranger).await.unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}
