//! The SPIFFE Workload API as the proxy's identity source, and live trust
//! bundles, in process: the SVID daemon against the in-process Workload API
//! server (`test-util`'s `TestWorkloadApi`, over a real Unix socket; the
//! real one is `ztmesh agent`), the bundle file followed on a paused clock,
//! and a mesh mixing a proxy certified by ztmesh with one whose identity
//! comes from the Workload API, requests both ways, policy naming the
//! SPIFFE ID.

mod outbound_support;
mod support;

use outbound_support::empty;
use std::sync::Arc;
use std::time::Duration;
use support::{client_id_echo, creds};
use ztmesh_proxy::identity::anchors::{AnchorsFile, Reload};
use ztmesh_proxy::identity::config::{SpireConfig, WorkloadApiAddr};
use ztmesh_proxy::identity::workload_api::proto::{X509Svid, X509SvidResponse};
use ztmesh_proxy::identity::workload_api::test_server::{TestWorkloadApi, issue_svid};
use ztmesh_proxy::identity::workload_api::{SvidDaemon, svid::SvidError};
use ztmesh_proxy::identity::{IdentityMetrics, IdentityStatus};
use ztmesh_test_support::TestPki;
use ztmesh_tls::Trust;

const BOOKS_ID: &str = "spiffe://cluster.local/ns/booksapp/sa/books";
const BOOKS_DNS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEB: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const DEADLINE: Duration = Duration::from_secs(10);

fn der_anchors(pki: &TestPki) -> Vec<Vec<u8>> {
    ztmesh_identity::pem::certificates(&pki.anchors_pem(), "anchors")
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect()
}

/// An SVID for `id` under `pki`'s issuer, sent with `bundle`.
fn svid(pki: &TestPki, id: &str, bundle: &[Vec<u8>]) -> X509Svid {
    let chain: Vec<Vec<u8>> = pki.issuer().chain().iter().map(|c| c.to_vec()).collect();
    let key = std::fs::read_to_string(pki.dir().join("issuer.key")).unwrap();
    issue_svid(&chain, &key, id, Duration::from_secs(3600), bundle).unwrap()
}

fn update(svids: Vec<X509Svid>) -> X509SvidResponse {
    X509SvidResponse {
        svids,
        ..Default::default()
    }
}

struct Agent {
    api: Arc<TestWorkloadApi>,
    addr: WorkloadApiAddr,
    _dir: tempfile::TempDir,
}

/// The in-process Workload API on a Unix socket in a temporary directory.
async fn agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let api = TestWorkloadApi::new();
    tokio::spawn(api.clone().serve(listener));
    Agent {
        api,
        addr: WorkloadApiAddr::parse(&format!("unix://{}", path.display())).unwrap(),
        _dir: dir,
    }
}

fn spire_config(pki: &TestPki, addr: &WorkloadApiAddr) -> SpireConfig {
    SpireConfig {
        trust_anchors_pem: String::from_utf8(pki.anchors_pem()).unwrap(),
        trust_anchors_file: None,
        workload_api: addr.clone(),
        spiffe_id: BOOKS_ID.into(),
        server_name: BOOKS_DNS.into(),
    }
}

/// The leaf the store presents now.
fn leaf(store: &ztmesh_tls::CredentialsStore) -> Option<Vec<u8>> {
    store.get().map(|k| k.cert[0].to_vec())
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {DEADLINE:?}"));
}

#[tokio::test]
async fn the_svid_and_its_rotation_come_from_the_workload_api() {
    let pki = TestPki::new();
    let agent = agent().await;
    let trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
    let daemon = SvidDaemon::new(&spire_config(&pki, &agent.addr), trust.clone());
    let (store, mut status, metrics) = (daemon.store(), daemon.status(), daemon.metrics());
    tokio::spawn(daemon.run());

    agent.api.send(update(vec![
        svid(&pki, "spiffe://cluster.local/ns/booksapp/sa/other", &[]),
        svid(&pki, BOOKS_ID, &der_anchors(&pki)),
    ]));
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
    )
    .await
    .expect("ready within the deadline")
    .unwrap();
    let first = leaf(&store).expect("an SVID installed");
    assert_eq!(
        ztmesh_tls::peer_identity(&first.clone().into()).as_deref(),
        Some(BOOKS_ID),
        "the SVID for our ID, not the other one"
    );
    assert_eq!(agent.api.streams(), 1);
    assert_eq!(
        agent.api.refused(),
        0,
        "the client sends the security header"
    );

    // Rotation: a new SVID on the same stream replaces the old one.
    agent
        .api
        .send(update(vec![svid(&pki, BOOKS_ID, &der_anchors(&pki))]));
    wait_for("the rotated SVID", || {
        leaf(&store).is_some_and(|l| l != first)
    })
    .await;
    assert_eq!(agent.api.streams(), 1, "followed on the same stream");
    assert_eq!(metrics.refreshes_ok(), 2);

    // An update without our SVID is refused; the current one stays.
    let current = leaf(&store);
    agent.api.send(update(vec![svid(
        &pki,
        "spiffe://cluster.local/ns/x/sa/y",
        &[],
    )]));
    wait_for("the refusal counted", || metrics.refreshes_error() == 1).await;
    assert_eq!(leaf(&store), current);
}

/// The stream ends (the agent restarts): the proxy keeps its SVID,
/// reconnects with a backoff, and takes the new agent's SVID; an SVID that
/// expires before a new one arrives turns the status `Expired`.
#[tokio::test]
async fn the_proxy_reconnects_and_reports_an_expired_svid() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let serve = |api: Arc<TestWorkloadApi>| {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(api.serve(listener))
    };
    let first = TestWorkloadApi::new();
    let server = serve(first.clone());
    let addr = WorkloadApiAddr::parse(path.to_str().unwrap()).unwrap();
    let trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
    let daemon = SvidDaemon::new(&spire_config(&pki, &addr), trust);
    let (store, mut status) = (daemon.store(), daemon.status());
    tokio::spawn(daemon.run());
    // A short-lived SVID.
    let chain: Vec<Vec<u8>> = pki.issuer().chain().iter().map(|c| c.to_vec()).collect();
    let key = std::fs::read_to_string(pki.dir().join("issuer.key")).unwrap();
    let short = issue_svid(&chain, &key, BOOKS_ID, Duration::from_secs(2), &[]).unwrap();
    first.send(update(vec![short]));
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let before = leaf(&store);

    // The agent goes away: the SVID stays until it expires.
    server.abort();
    first.end_streams();
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| matches!(s, IdentityStatus::Expired { .. })),
    )
    .await
    .expect("reported expired within the deadline")
    .unwrap();
    assert_eq!(leaf(&store), before, "the last SVID stays installed");

    // A new agent on the same socket: the proxy reconnects and recovers.
    let second = TestWorkloadApi::new();
    second.send(update(vec![svid(&pki, BOOKS_ID, &[])]));
    let _server = serve(second.clone());
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
    )
    .await
    .expect("ready again within the deadline")
    .unwrap();
    assert_ne!(leaf(&store), before);
    assert_eq!(second.streams(), 1);
}

/// The bundle sent with the SVID replaces the proxy's trust when it
/// changes; one that does not vouch for the SVID is refused whole.
#[test]
fn the_bundle_from_the_workload_api_is_followed_table() {
    let (pki, other) = (TestPki::new(), TestPki::new());
    let addr = WorkloadApiAddr::parse("/unused.sock").unwrap();
    let trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
    let mut daemon = SvidDaemon::new(&spire_config(&pki, &addr), trust.clone());
    let both: Vec<Vec<u8>> = der_anchors(&pki)
        .into_iter()
        .chain(der_anchors(&other))
        .collect();

    // The same bundle as configured: no change.
    let applied = daemon
        .apply(update(vec![svid(&pki, BOOKS_ID, &der_anchors(&pki))]))
        .unwrap();
    assert!(!applied.bundle_changed);
    assert_eq!(trust.roots().len(), 1);
    // An added anchor.
    let applied = daemon
        .apply(update(vec![svid(&pki, BOOKS_ID, &both)]))
        .unwrap();
    assert!(applied.bundle_changed);
    assert_eq!(trust.roots().len(), 2);
    // No bundle in the message: the one in use stays.
    let applied = daemon
        .apply(update(vec![svid(&pki, BOOKS_ID, &[])]))
        .unwrap();
    assert!(!applied.bundle_changed);
    assert_eq!(trust.roots().len(), 2);
    // A bundle that does not vouch for the SVID: refused, trust unchanged.
    let err = daemon
        .apply(update(vec![svid(&pki, BOOKS_ID, &der_anchors(&other))]))
        .unwrap_err();
    assert!(matches!(err, SvidError::Verify(_)), "{err}");
    assert_eq!(trust.roots().len(), 2);
    // The anchor removed (the SVID is now under `other`).
    let applied = daemon
        .apply(update(vec![svid(&other, BOOKS_ID, &der_anchors(&other))]))
        .unwrap();
    assert!(applied.bundle_changed);
    assert_eq!(trust.roots().len(), 1);
    // Malformed messages, each refused with its reason.
    let mut no_key = svid(&pki, BOOKS_ID, &[]);
    no_key.x509_svid_key.clear();
    let mut bad_chain = svid(&pki, BOOKS_ID, &[]);
    bad_chain.x509_svid.truncate(10);
    for (msg, want) in [
        (update(vec![]), "no SVID for"),
        (update(vec![no_key]), "no private key"),
        (update(vec![bad_chain]), "not DER"),
    ] {
        let err = daemon.apply(msg).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should say {want}");
    }
}

/// The Workload API's federated bundles become the proxy's federation,
/// local to the SVID's trust domain; a message without any leaves it; one
/// whose federated bundle does not parse is refused whole.
#[test]
fn federated_bundles_from_the_workload_api_are_followed() {
    let (pki, other) = (TestPki::new(), TestPki::new());
    let addr = WorkloadApiAddr::parse("/unused.sock").unwrap();
    let trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
    let mut daemon = SvidDaemon::new(&spire_config(&pki, &addr), trust.clone());
    let with = |federated: &[(&str, Vec<u8>)]| X509SvidResponse {
        federated_bundles: federated
            .iter()
            .map(|(d, b)| (d.to_string(), b.clone()))
            .collect(),
        ..update(vec![svid(&pki, BOOKS_ID, &[])])
    };
    let other_der: Vec<u8> = der_anchors(&other).concat();
    daemon
        .apply(with(&[("other.example", other_der.clone())]))
        .unwrap();
    let federation = trust.federation().expect("a federation");
    assert_eq!(federation.local_domain(), "cluster.local");
    assert_eq!(federation.domains(), vec!["other.example"]);
    daemon
        .apply(update(vec![svid(&pki, BOOKS_ID, &[])]))
        .unwrap();
    assert_eq!(trust.federation().unwrap().domains(), vec!["other.example"]);
    let err = daemon
        .apply(with(&[("third.example", vec![1, 2, 3])]))
        .unwrap_err();
    assert!(err.to_string().contains("federated bundle"), "{err}");
    assert_eq!(trust.federation().unwrap().domains(), vec!["other.example"]);
    let err = daemon
        .apply(with(&[("cluster.local", other_der)]))
        .unwrap_err();
    assert!(err.to_string().contains("local trust domain"), "{err}");
}

/// The bundle file, looked at every POLL on a paused clock: a change
/// applies, a bad one is refused with its reason and the last good stays.
#[tokio::test(start_paused = true)]
async fn the_trust_bundle_file_is_followed() {
    let (a, b) = (TestPki::new(), TestPki::new());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), a.anchors_pem()).unwrap();
    let trust = Trust::from_pem(&a.anchors_pem()).unwrap();
    let metrics = Arc::new(IdentityMetrics::default());
    let mut watched = AnchorsFile::new(
        file.path().to_path_buf(),
        &a.anchors_pem(),
        trust.clone(),
        metrics.clone(),
    );
    let both: Vec<u8> = a.anchors_pem().into_iter().chain(b.anchors_pem()).collect();
    let steps: [(Option<&[u8]>, &str, usize); 6] = [
        (None, "unchanged", 1),
        (Some(&both), "applied", 2),
        (Some(b"not a bundle"), "refused", 2),
        (None, "unchanged", 2),
        (Some(b""), "refused", 2),
        (Some(&b.anchors_pem()), "applied", 1),
    ];
    for (i, (content, want, anchors)) in steps.into_iter().enumerate() {
        if let Some(c) = content {
            std::fs::write(file.path(), c).unwrap();
        }
        let got = match watched.check() {
            Reload::Unchanged => "unchanged",
            Reload::Applied { .. } => "applied",
            Reload::Refused { .. } => "refused",
        };
        assert_eq!((got, trust.roots().len()), (want, anchors), "step {i}");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &{
        let mut r = prometheus_client::registry::Registry::default();
        metrics.register(&mut r);
        r
    })
    .unwrap();
    assert_eq!(
        text.matches("ztmesh_identity_trust_anchors{").count(),
        1,
        "the metric names the bundle in use only:\n{text}"
    );

    // Followed in the background: applied within one poll.
    let follow = AnchorsFile::new(
        file.path().to_path_buf(),
        &b.anchors_pem(),
        trust.clone(),
        metrics,
    );
    tokio::spawn(follow.follow(ztmesh_proxy::identity::anchors::POLL));
    std::fs::write(file.path(), &both).unwrap();
    let started = tokio::time::Instant::now();
    while trust.roots().len() != 2 {
        assert!(
            started.elapsed() <= ztmesh_proxy::identity::anchors::POLL,
            "applied within one poll"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod mesh {
    //! Two proxies, in process: W certified by ztmesh (a DNS identity),
    //! B with its SVID from the Workload API (a SPIFFE ID only). Each has an
    //! inbound stack in front of an app echoing `l5d-client-id`, and an
    //! outbound stack whose discovery points at the other.

    use super::*;
    use ztmesh_authz::{Authentication, Authorization, IdentityMatch, Network, ServerPolicy};
    use ztmesh_proxy::inbound::{InboundBuilder, InboundTarget, Policies};
    use ztmesh_proxy::metrics::{StatsCache, TcpMetrics};
    use ztmesh_proxy::outbound::discover::{Endpoint, Resolution};
    use ztmesh_proxy::outbound::http::Dst;
    use ztmesh_proxy::outbound::{InMemoryDiscovery, Outbound, OutboundBuilder};

    /// A server admitting exactly `ids`.
    fn policy(ids: &[&str]) -> ServerPolicy {
        ServerPolicy::default_policy(
            "mesh",
            vec![Authorization {
                kind: "authorizationpolicy".into(),
                name: "mesh".into(),
                networks: vec![Network {
                    net: "0.0.0.0/0".parse().unwrap(),
                    except: vec![],
                }],
                authentication: Authentication::TlsAuthenticated(
                    ids.iter().map(|i| IdentityMatch::parse(i)).collect(),
                ),
            }],
        )
    }

    struct Node {
        inbound: std::net::SocketAddr,
        metrics: Arc<TcpMetrics>,
        out: Outbound,
        discovery: Arc<InMemoryDiscovery>,
    }

    async fn node(
        sni: &str,
        store: Arc<ztmesh_tls::CredentialsStore>,
        trust: Arc<Trust>,
        admits: &[&str],
    ) -> Node {
        let server = ztmesh_tls::mesh_server_config_live(
            store.clone(),
            trust.clone(),
            ztmesh_tls::TlsVersions::Tls13Only,
            &[ztmesh_proxy::transport_header::ALPN],
        )
        .unwrap();
        let metrics = Arc::new(TcpMetrics::default());
        let app = client_id_echo().await;
        let inbound = InboundBuilder::new(
            sni,
            tokio_rustls::TlsAcceptor::from(server),
            InboundTarget::App(app),
            Arc::new(Policies::new(None, policy(admits))),
        )
        .metrics(metrics.clone(), Arc::default())
        .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(inbound.serve(listener, ztmesh_proxy::drain::Watch::never()));
        let discovery = Arc::new(InMemoryDiscovery::default());
        let tls = Arc::new(ztmesh_proxy::outbound::connect::ClientTls::live(
            trust, store,
        ));
        let out = OutboundBuilder::new(discovery.clone(), tls)
            .metrics(Arc::default(), Arc::default(), Arc::default())
            .build();
        Node {
            inbound: addr,
            metrics,
            out,
            discovery,
        }
    }

    const DST: &str = "peer.booksapp.svc.cluster.local:8080";

    /// Points `from`'s discovery at `to`, which must prove `identity`.
    fn route(from: &Node, to: &Node, identity: &str, sni: &str) {
        from.discovery.set(
            DST,
            Resolution {
                endpoints: Arc::new(vec![Endpoint::meshed(to.inbound, identity, sni)]),
                opaque_protocol: false,
                profile: None,
                accrual: None,
                outside_mesh: false,
                logical: Some(DST.into()),
            },
        );
    }

    /// One request through `from`'s outbound: status and body.
    async fn request(from: &Node) -> (u16, String) {
        use http_body_util::BodyExt;
        let req = http::Request::builder()
            .uri(format!("http://{DST}/"))
            .body(empty())
            .unwrap();
        let rsp = tokio::time::timeout(
            DEADLINE,
            from.out
                .http()
                .route(req, Dst::AbsoluteUri, &StatsCache::default()),
        )
        .await
        .expect("an answer within the deadline");
        let status = rsp.status().as_u16();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn tcp_text(n: &Node) -> String {
        let mut s = String::new();
        n.metrics.encode(&mut s);
        s
    }

    #[tokio::test]
    async fn ztmesh_and_workload_api_proxies_talk_both_ways_under_one_bundle() {
        let pki = TestPki::new();
        let agent = agent().await;
        // B: identity from the Workload API.
        let b_trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
        let daemon = SvidDaemon::new(&spire_config(&pki, &agent.addr), b_trust.clone());
        let (b_store, mut b_status) = (daemon.store(), daemon.status());
        tokio::spawn(daemon.run());
        agent
            .api
            .send(update(vec![svid(&pki, BOOKS_ID, &der_anchors(&pki))]));
        tokio::time::timeout(
            DEADLINE,
            b_status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
        )
        .await
        .expect("B certified by the Workload API")
        .unwrap();
        // W: certified by ztmesh; admits B only by its SPIFFE ID.
        let w_trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
        let w = node(WEB, creds(&pki, WEB), w_trust, &[BOOKS_ID]).await;
        let b = node(BOOKS_DNS, b_store, b_trust, &[WEB]).await;

        // B -> W: W's policy names B's SPIFFE ID; W's app sees it.
        route(&b, &w, WEB, WEB);
        let (status, body) = request(&b).await;
        assert_eq!((status, body.as_str()), (200, BOOKS_ID));
        let text = tcp_text(&w);
        assert!(
            text.contains(&format!("client_id=\"{BOOKS_ID}\"")),
            "W's metrics name B by its SPIFFE ID:\n{text}"
        );

        // W -> B: B is verified by its SPIFFE ID (URI SAN), SNI its DNS name.
        route(&w, &b, BOOKS_ID, BOOKS_DNS);
        let (status, body) = request(&w).await;
        assert_eq!((status, body.as_str()), (200, WEB));

        // A SPIFFE ID that is not B's is refused by W -> B's verification.
        route(
            &w,
            &b,
            "spiffe://cluster.local/ns/booksapp/sa/other",
            BOOKS_DNS,
        );
        let (status, _) = request(&w).await;
        assert_ne!(status, 200, "B does not prove another SPIFFE ID");
    }

    #[tokio::test]
    async fn a_policy_naming_another_spiffe_id_refuses_the_workload_api_proxy() {
        let pki = TestPki::new();
        let agent = agent().await;
        let b_trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
        let daemon = SvidDaemon::new(&spire_config(&pki, &agent.addr), b_trust.clone());
        let (b_store, mut b_status) = (daemon.store(), daemon.status());
        tokio::spawn(daemon.run());
        agent
            .api
            .send(update(vec![svid(&pki, BOOKS_ID, &der_anchors(&pki))]));
        tokio::time::timeout(
            DEADLINE,
            b_status.wait_for(|s| matches!(s, IdentityStatus::Ready { .. })),
        )
        .await
        .unwrap()
        .unwrap();
        let w_trust = Trust::from_pem(&pki.anchors_pem()).unwrap();
        let admits = [
            "spiffe://cluster.local/ns/booksapp/sa/books2",
            "*.booksapp.serviceaccount.identity.linkerd.cluster.local",
        ];
        let w = node(WEB, creds(&pki, WEB), w_trust, &admits).await;
        let b = node(BOOKS_DNS, b_store, b_trust, &[WEB]).await;
        route(&b, &w, WEB, WEB);
        let (status, _) = request(&b).await;
        assert_eq!(
            status, 403,
            "neither the other SPIFFE ID nor a suffix admits B"
        );
    }
}
