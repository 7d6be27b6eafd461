//! The proxy's identity daemon against the real Identity service: on a
//! paused clock (in process) for timing, and over gRPC on loopback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use ztmesh_proxy::identity::daemon::InProcess;
use ztmesh_proxy::identity::{
    Documents, IdentityConfig, IdentityDaemon, IdentityMetrics, IdentityStatus,
};
use ztmesh_test_support::TestPki;
use ztmesh_test_support::control_plane::{SwitchableIdentity, serve_identity};

const NAME: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

struct Fixture {
    pki: TestPki,
    token_file: tempfile::NamedTempFile,
}

impl Fixture {
    fn new() -> Self {
        let pki = TestPki::new();
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), pki.token("booksapp", "books")).unwrap();
        Self { pki, token_file }
    }

    fn env(&self, svc_addr: &str) -> HashMap<String, String> {
        [
            (
                "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
                String::from_utf8(self.pki.anchors_pem()).unwrap(),
            ),
            (
                "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
                self.token_file.path().display().to_string(),
            ),
            ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", svc_addr.to_string()),
            (
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
                    .to_string(),
            ),
            ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", NAME.to_string()),
            ("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "1s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn config(&self) -> IdentityConfig {
        IdentityConfig::from_env(&self.env("127.0.0.1:8080")).unwrap()
    }
}

struct Running {
    status: watch::Receiver<IdentityStatus>,
    metrics: Arc<IdentityMetrics>,
    store: Arc<ztmesh_tls::CredentialsStore>,
}

fn start(config: &IdentityConfig, service: &Arc<SwitchableIdentity>) -> Running {
    let daemon = IdentityDaemon::new(
        config,
        Documents::generate(&config.local_name).unwrap(),
        InProcess(service.clone()),
    )
    .unwrap();
    let running = Running {
        status: daemon.status(),
        metrics: daemon.metrics(),
        store: daemon.store(),
    };
    tokio::spawn(daemon.run());
    running
}

fn leaf(store: &ztmesh_tls::CredentialsStore) -> Vec<u8> {
    store.get().expect("a certificate is installed").cert[0].to_vec()
}

/// Sleeps on the paused clock; timers due in between fire in order.
async fn at(secs_from: tokio::time::Instant, secs: f64) {
    tokio::time::sleep_until(secs_from + Duration::from_secs_f64(secs)).await;
}

/// Seconds between consecutive calls, and from `t0` to the first.
fn gaps(t0: tokio::time::Instant, times: &[tokio::time::Instant]) -> Vec<f64> {
    let mut prev = t0;
    times
        .iter()
        .map(|t| {
            let gap = t.duration_since(prev).as_secs_f64();
            prev = *t;
            gap
        })
        .collect()
}

/// A leaf of `ttl` seconds has `ttl - 1` to `ttl` left when it arrives
/// (notAfter is whole seconds), so the renewal is due 70% of that later.
fn assert_renewal_gap(gap: f64, ttl: f64) {
    let due = (0.7 * (ttl - 1.0) - 0.001)..=(0.7 * ttl + 0.001);
    assert!(
        due.contains(&gap),
        "renewal {gap}s after issuance; expected {due:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn renews_at_seventy_percent() {
    let fx = Fixture::new();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let t0 = tokio::time::Instant::now();
    let run = start(&fx.config(), &service);
    at(t0, 1.0).await;
    assert!(matches!(*run.status.borrow(), IdentityStatus::Ready { .. }));
    let first = leaf(&run.store);
    at(t0, 75.0).await;
    let g = gaps(t0, &service.call_times());
    assert_eq!(g.len(), 2, "one issuance, one renewal: {g:?}");
    assert_eq!(g[0], 0.0);
    assert_renewal_gap(g[1], 100.0);
    assert_ne!(leaf(&run.store), first, "the new certificate is installed");
    assert_eq!(run.metrics.refreshes_ok(), 2);
    assert_eq!(run.metrics.refreshes_error(), 0);
}

#[tokio::test(start_paused = true)]
async fn backs_off_while_the_ca_is_down_then_recovers() {
    let fx = Fixture::new();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(200));
    let t0 = tokio::time::Instant::now();
    let run = start(&fx.config(), &service);
    at(t0, 1.0).await;
    let first = leaf(&run.store);
    let expiry = run.metrics.expiration_timestamp();
    let refreshed = run.metrics.refresh_timestamp();
    service.set_down(true);

    // The renewal (~140s) fails; retries follow 1s, 2s, 4s, 8s later, then
    // 16s: all before the leaf expires at ~200s.
    at(t0, 140.0 + 1.0 + 2.0 + 4.0 + 8.0 + 1.0).await;
    let g = gaps(t0, &service.call_times());
    assert_eq!(g.len(), 6, "{g:?}");
    assert_renewal_gap(g[1], 200.0);
    assert_eq!(g[2..], [1.0, 2.0, 4.0, 8.0], "exponential backoff");
    assert_eq!(run.metrics.refreshes_error(), 5);
    assert_eq!(
        leaf(&run.store),
        first,
        "the current certificate stays in use"
    );
    assert!(matches!(*run.status.borrow(), IdentityStatus::Ready { .. }));
    assert_eq!(run.metrics.expiration_timestamp(), expiry);

    // Recovery: the next retry, 16s after the last, succeeds.
    service.set_down(false);
    let last = *service.call_times().last().unwrap();
    tokio::time::sleep_until(last + Duration::from_secs_f64(16.5)).await;
    let g = gaps(t0, &service.call_times());
    assert_eq!(g.len(), 7, "{g:?}");
    assert_eq!(g[6], 16.0);
    assert_ne!(leaf(&run.store), first);
    assert!(run.metrics.expiration_timestamp() >= expiry);
    assert!(run.metrics.refresh_timestamp() > refreshed);
    assert_eq!(run.metrics.refreshes_ok(), 2);
}

#[tokio::test(start_paused = true)]
async fn reports_expiry_and_becomes_ready_again() {
    let fx = Fixture::new();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(20));
    let t0 = tokio::time::Instant::now();
    let mut run = start(&fx.config(), &service);
    at(t0, 0.5).await;
    service.set_down(true);
    // Renewal at ~14s fails; retries every 1, 2, 4s; the leaf expires by 20s.
    at(t0, 21.0).await;
    assert!(
        matches!(
            *run.status.borrow_and_update(),
            IdentityStatus::Expired { .. }
        ),
        "{:?}",
        *run.status.borrow()
    );
    service.set_down(false);
    tokio::time::timeout(
        Duration::from_secs(120),
        run.status
            .wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
    )
    .await
    .expect("ready again after the CA recovers")
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn rereads_the_token_at_each_renewal() {
    let fx = Fixture::new();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let t0 = tokio::time::Instant::now();
    let run = start(&fx.config(), &service);
    at(t0, 1.0).await;
    // Now the token file holds another service account's token.
    std::fs::write(fx.token_file.path(), fx.pki.token("booksapp", "webapp")).unwrap();
    while run.metrics.refreshes_error() == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        run.metrics.refreshes_ok(),
        1,
        "the new token was read and refused"
    );
    std::fs::write(fx.token_file.path(), fx.pki.token("booksapp", "books")).unwrap();
    // The retry 1s later reads the good token again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(run.metrics.refreshes_ok(), 2);
    assert_eq!(run.metrics.refreshes_error(), 1);
}

#[tokio::test(start_paused = true)]
async fn refuses_a_chain_from_other_anchors() {
    let fx = Fixture::new();
    let other = TestPki::new();
    let mut env = fx.env("127.0.0.1:8080");
    env.insert(
        "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS".into(),
        String::from_utf8(other.anchors_pem()).unwrap(),
    );
    let config = IdentityConfig::from_env(&env).unwrap();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let mut daemon = IdentityDaemon::new(
        &config,
        Documents::generate(NAME).unwrap(),
        InProcess(service.clone()),
    )
    .unwrap();
    let err = daemon.refresh().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not chain to the trust anchors"),
        "{err}"
    );
    assert!(!daemon.store().is_ready());
    assert_eq!(*daemon.status().borrow(), IdentityStatus::Pending);
}

#[tokio::test]
async fn uses_linkerds_key_and_csr_files_for_every_renewal() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (key, csr) = ztmesh_test_support::csr_for(NAME);
    std::fs::write(dir.path().join("key.p8"), key.serialize_der()).unwrap();
    std::fs::write(dir.path().join("csr.der"), &csr).unwrap();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let docs = Documents::load(dir.path()).unwrap();
    let mut daemon = IdentityDaemon::new(&fx.config(), docs, InProcess(service)).unwrap();
    daemon.refresh().await.unwrap();
    let a = daemon.store().get().unwrap();
    daemon.refresh().await.unwrap();
    let b = daemon.store().get().unwrap();
    assert_ne!(a.cert[0], b.cert[0]);
    let spki = |der: &[u8]| {
        use x509_parser::prelude::FromDer;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
        c.public_key().subject_public_key.data.to_vec()
    };
    assert_eq!(
        spki(&a.cert[0]),
        key.public_key_raw(),
        "the leaf is for key.p8's key"
    );
    assert_eq!(spki(&b.cert[0]), key.public_key_raw());

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("key.p8"), b"").unwrap();
    let err = Documents::load(empty.path()).unwrap_err();
    assert!(
        err.to_string().contains("key.p8: the file is empty"),
        "{err}"
    );
}

#[tokio::test]
async fn certifies_over_grpc_on_loopback() {
    let fx = Fixture::new();
    let (addr, _stop) = serve_identity(&fx.pki, Duration::from_secs(86400)).await;
    let config = IdentityConfig::from_env(&fx.env(&addr.to_string())).unwrap();
    let channel = ztmesh_proxy_api::client::channel(ztmesh_proxy_api::client::ControlPlaneTarget {
        addr: config.svc_addr.clone(),
        server_name: config.svc_name.clone(),
        roots: None,
    })
    .unwrap();
    let client = linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel);
    let daemon = IdentityDaemon::new(&config, Documents::generate(NAME).unwrap(), client).unwrap();
    let (mut status, metrics, store) = (daemon.status(), daemon.metrics(), daemon.store());
    let task = tokio::spawn(daemon.run());
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
    )
    .await
    .expect("certified within 10s")
    .unwrap();
    let creds = store.get().unwrap();
    assert_eq!(creds.cert.len(), 2, "leaf and issuer");
    let mut text = String::new();
    metrics.encode(&mut text);
    assert!(
        text.contains("control_identity_cert_refreshes_total{result=\"ok\"} 1\n"),
        "{text}"
    );
    let expiry = metrics.expiration_timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (expiry - now - 86400.0).abs() < 5.0,
        "24h leaf: {expiry} vs {now}"
    );
    task.abort();
}

#[test]
fn missing_settings_are_all_named() {
    let env = HashMap::from([(
        "LINKERD2_PROXY_IDENTITY_LOCAL_NAME".to_string(),
        "not-an-identity".to_string(),
    )]);
    let err = IdentityConfig::from_env(&env).unwrap_err();
    assert_eq!(
        err.missing,
        vec![
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            "LINKERD2_PROXY_IDENTITY_SVC_NAME"
        ]
    );
    assert!(
        err.to_string().contains(
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME: \"not-an-identity\" is not an identity name"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_bundle_of_several_anchors_verifies() {
    // During anchor rotation the bundle holds the old and the new anchor.
    let fx = Fixture::new();
    let other = TestPki::new();
    let mut env = fx.env("127.0.0.1:8080");
    let bundle = [other.anchors_pem(), fx.pki.anchors_pem()].concat();
    env.insert(
        "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS".into(),
        String::from_utf8(bundle).unwrap(),
    );
    let config = IdentityConfig::from_env(&env).unwrap();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let mut daemon = IdentityDaemon::new(
        &config,
        Documents::generate(NAME).unwrap(),
        InProcess(service),
    )
    .unwrap();
    daemon.refresh().await.unwrap();
    assert!(daemon.store().is_ready());
}

/// The daemon checks an issued chain against the live bundle: a chain
/// under an anchor that the bundle gained after start-up is accepted (the
/// new issuer of an anchor rotation), one under an anchor it lost is
/// refused.
#[tokio::test]
async fn issued_chains_are_checked_against_the_live_bundle() {
    let fx = Fixture::new();
    let other = TestPki::new();
    let service = SwitchableIdentity::new(&fx.pki, Duration::from_secs(100));
    let trust = ztmesh_tls::Trust::from_pem(&other.anchors_pem()).unwrap();
    let mut daemon = IdentityDaemon::new(
        &fx.config(),
        Documents::generate(NAME).unwrap(),
        InProcess(service),
    )
    .unwrap()
    .with_trust(trust.clone());
    let err = daemon
        .refresh()
        .await
        .expect_err("the issuing anchor is not in the bundle");
    assert!(err.to_string().contains("does not chain"), "{err}");
    let both: Vec<u8> = other
        .anchors_pem()
        .into_iter()
        .chain(fx.pki.anchors_pem())
        .collect();
    trust
        .set(ztmesh_tls::roots_from_pem(&both).unwrap())
        .unwrap();
    daemon
        .refresh()
        .await
        .expect("accepted once the bundle has the anchor");
    trust
        .set(ztmesh_tls::roots_from_pem(&other.anchors_pem()).unwrap())
        .unwrap();
    daemon
        .refresh()
        .await
        .expect_err("refused again once it is removed");
}
