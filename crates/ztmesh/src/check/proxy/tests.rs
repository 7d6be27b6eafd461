//! Table tests of the data-plane checks over generated certificates and
//! metric samples.

use super::*;
use crate::check::mesh::{TrustFiles, WorkloadObs};
use crate::check::workloads::Workload;
use crate::viz::client::GetError;
use crate::viz::scrape::Sample;
use rustls_pki_types::CertificateDer;
use std::time::Duration;
use ztmesh_test_support::TestPki;

fn workload() -> Workload {
    Workload {
        namespace: "booksapp".into(),
        name: "externalworkload/authors".into(),
        workload: ztmesh_policy::WorkloadRef::External("authors".into()),
        ip: "127.0.9.2".parse().unwrap(),
        identity: "authors.booksapp.serviceaccount.identity.linkerd.cluster.local".into(),
        ports: vec![7001],
        labels: Default::default(),
        explicit: true,
    }
}

fn chain(pki: &TestPki, sa: &str) -> Vec<CertificateDer<'static>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issued = pki
        .ca(Duration::from_secs(3600))
        .issue(&pki.identity("booksapp", sa), &key, SystemTime::now())
        .unwrap();
    std::iter::once(issued.leaf)
        .chain(issued.intermediates)
        .collect()
}

fn anchors_metric(fingerprints: &[String]) -> Vec<Sample> {
    fingerprints
        .iter()
        .map(|f| Sample {
            name: ANCHORS_METRIC.into(),
            labels: [("sha256".to_string(), f.clone())].into(),
            value: 1.0,
        })
        .collect()
}

fn not_ready() -> GetError {
    GetError::Timeout {
        addr: "127.0.9.2:4191".into(),
        timeout: Duration::from_secs(1),
    }
}

#[test]
fn each_proxy_check_by_what_the_proxy_showed() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let trust = TrustFiles::read(Some(pki.dir()));
    let current: Vec<String> = trust.anchors.iter().map(|c| chain::sha256(c)).collect();
    let old: Vec<String> = TrustFiles::read(Some(other.dir()))
        .anchors
        .iter()
        .map(|c| chain::sha256(c))
        .collect();
    let now = SystemTime::now();
    // (what, ready, chain, anchors exported, want: ready, certificate, anchors)
    type Case = (
        &'static str,
        bool,
        Option<Vec<CertificateDer<'static>>>,
        Option<Vec<String>>,
        [Status; 3],
    );
    let cases: Vec<Case> = vec![
        (
            "healthy",
            true,
            Some(chain(&pki, "authors")),
            Some(current.clone()),
            [Status::Pass; 3],
        ),
        ("stopped", false, None, None, [Status::Fail; 3]),
        (
            "certified under another anchor, trusting the old one",
            true,
            Some(chain(&other, "authors")),
            Some(old.clone()),
            [Status::Pass, Status::Fail, Status::Fail],
        ),
        (
            "a certificate for another identity",
            true,
            Some(chain(&pki, "books")),
            Some(current.clone()),
            [Status::Pass, Status::Fail, Status::Pass],
        ),
        (
            "trusting both during an anchor rotation",
            true,
            Some(chain(&pki, "authors")),
            Some([current.clone(), old.clone()].concat()),
            [Status::Pass; 3],
        ),
        (
            "an older proxy without the anchors metric",
            true,
            Some(chain(&pki, "authors")),
            Some(vec![]),
            [Status::Pass, Status::Pass, Status::Warn],
        ),
    ];
    for (what, ready, chain, exported, want) in cases {
        let obs = WorkloadObs {
            workload: workload(),
            ready: if ready { Ok(()) } else { Err(not_ready()) },
            admin: "127.0.9.2:4191".parse().unwrap(),
            metrics: exported.map(|f| anchors_metric(&f)).ok_or_else(not_ready),
            chain: chain.ok_or(chain::ChainError::Empty {
                addr: "127.0.9.2:4143".parse().unwrap(),
            }),
            default_policy: None,
            probed_ports: vec![],
            open_app_ports: vec![],
        };
        let got = workload_checks(&obs, &trust, now);
        let statuses = [got[0].status, got[1].status, got[2].status];
        assert_eq!(statuses, want, "{what}: {got:#?}");
        for c in &got {
            assert_eq!(c.fix.is_some(), c.status != Status::Pass, "{what}: {c:?}");
        }
    }
}

/// A leaf sent without its intermediate is named as such; anchors known
/// but the issuer not is a WARN, never a PASS.
#[test]
fn a_missing_intermediate_and_an_unknown_issuer_are_told() {
    let pki = TestPki::new();
    let full = TrustFiles::read(Some(pki.dir()));
    let anchors_only = TrustFiles {
        issuer: vec![],
        ..TrustFiles::read(Some(pki.dir()))
    };
    let whole = chain(&pki, "authors");
    let leaf_alone = vec![whole[0].clone()];
    // (what, trust, chain, want, detail containing)
    let cases = [
        (
            "leaf alone",
            &full,
            leaf_alone,
            Status::Fail,
            "no intermediate sent",
        ),
        ("issuer known", &full, whole.clone(), Status::Pass, "until"),
        (
            "issuer unknown",
            &anchors_only,
            whole,
            Status::Warn,
            "issuer unknown, not judged",
        ),
    ];
    for (what, trust, chain, want, detail) in cases {
        let obs = WorkloadObs {
            workload: workload(),
            admin: "127.0.9.2:4191".parse().unwrap(),
            ready: Ok(()),
            metrics: Ok(vec![]),
            chain: Ok(chain),
            default_policy: None,
            probed_ports: vec![],
            open_app_ports: vec![],
        };
        let c = &workload_checks(&obs, trust, SystemTime::now())[1];
        assert_eq!(c.status, want, "{what}: {c:?}");
        assert!(c.detail.contains(detail), "{what}: {c:?}");
    }
}

/// An unanswered /metrics is told with its cause, on the proxy's real
/// admin address, and the fix names the admin port.
#[test]
fn unreachable_metrics_say_why_and_where() {
    let pki = TestPki::new();
    let trust = TrustFiles::read(Some(pki.dir()));
    let obs = WorkloadObs {
        workload: workload(),
        admin: "127.0.9.2:9991".parse().unwrap(),
        ready: Err(not_ready()),
        metrics: Err(not_ready()),
        chain: Ok(chain(&pki, "authors")),
        default_policy: None,
        probed_ports: vec![],
        open_app_ports: vec![],
    };
    let got = workload_checks(&obs, &trust, SystemTime::now());
    assert_eq!(
        got[0].evidence,
        ["GET http://127.0.9.2:9991/ready"],
        "{got:#?}"
    );
    let anchors = &got[2];
    assert_eq!(anchors.status, Status::Fail, "{anchors:?}");
    assert!(
        anchors.detail.contains(&not_ready().to_string()),
        "{anchors:?}"
    );
    assert!(
        anchors
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("admin port is 9991 (ztmesh check --admin-port)")),
        "{anchors:?}"
    );
    assert_eq!(
        anchors.evidence,
        ["GET http://127.0.9.2:9991/metrics"],
        "{anchors:?}"
    );
}

#[test]
fn a_rotated_issuer_is_a_warning_until_the_proxy_renews() {
    let pki = TestPki::new();
    let before = chain(&pki, "authors");
    ztmesh_identity::install::rotate_issuer(pki.dir(), &Default::default(), SystemTime::now())
        .unwrap();
    let trust = TrustFiles::read(Some(pki.dir()));
    let obs = WorkloadObs {
        workload: workload(),
        admin: "127.0.9.2:4191".parse().unwrap(),
        ready: Ok(()),
        metrics: Err(not_ready()),
        chain: Ok(before),
        default_policy: None,
        probed_ports: vec![],
        open_app_ports: vec![],
    };
    let c = &workload_checks(&obs, &trust, SystemTime::now())[1];
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.detail.contains("earlier issuer"), "{c:?}");
}

#[test]
fn the_summary_keeps_the_worst_status_and_names_the_workloads() {
    let r = |status, detail: &str| CheckResult {
        status,
        detail: detail.into(),
        fix: (status != Status::Pass).then(|| "restart".to_string()),
        ..CheckResult::pass(Group::DataPlane, READY.0, READY.1, "")
    };
    let (a, b, c) = (
        r(Status::Pass, "a: ready"),
        r(Status::Fail, "b: refused"),
        r(Status::Warn, "c: slow"),
    );
    let folded = fold(&[&c, &a, &b]);
    assert_eq!(folded.status, Status::Fail);
    // The line tells the worst, whatever comes first.
    assert_eq!(folded.detail, "2 of 3 workload(s): b: refused");
    assert_eq!(folded.offenders, ["c: slow", "b: refused"]);
    assert!(
        folded.detail.starts_with("2 of 3 workload(s)"),
        "{folded:?}"
    );
    assert_eq!(folded.fix.as_deref(), Some("restart"));
    let all_good = fold(&[&a, &a]);
    assert_eq!((all_good.status, all_good.fix), (Status::Pass, None));
}
