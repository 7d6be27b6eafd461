//! Table tests of the invariants over metric samples, manifests and
//! generated certificates.

use super::*;
use crate::check::Status;
use crate::check::mesh::{ApiError, ApiProbe, Apis, Workload, WorkloadObs};
use crate::viz::scrape::sample;
use std::time::{Duration, SystemTime};
use ztmesh_test_support::TestPki;

fn id(sa: &str) -> String {
    format!("{sa}.booksapp.serviceaccount.identity.linkerd.cluster.local")
}

fn workload(name: &str, ip: &str) -> Workload {
    Workload {
        namespace: "booksapp".into(),
        name: format!("externalworkload/{name}"),
        workload: ztmesh_policy::WorkloadRef::External(name.into()),
        ip: ip.parse().unwrap(),
        identity: id(name),
        ports: vec![7001],
        labels: Default::default(),
        explicit: true,
    }
}

pub(crate) fn obs(name: &str, ip: &str, metrics: Vec<crate::viz::scrape::Sample>) -> WorkloadObs {
    WorkloadObs {
        workload: workload(name, ip),
        ready: Ok(()),
        metrics: Some(metrics),
        chain: Err(crate::check::chain::ChainError::Empty {
            addr: format!("{ip}:4143").parse().unwrap(),
        }),
        default_policy: None,
        open_app_ports: vec![],
    }
}

pub(crate) fn observed(workloads: Vec<WorkloadObs>) -> Observed {
    let none = || ApiProbe {
        addr: None,
        answer: Err(ApiError::Unknown),
    };
    Observed {
        apis: Apis {
            identity: none(),
            destination: none(),
            policy: none(),
            viz: none(),
        },
        manifests_dir: None,
        diagnostics: vec![],
        resources: vec![],
        refused: vec![],
        workloads,
    }
}

#[test]
fn inv6_names_every_plaintext_edge_with_its_reason() {
    let mtls_in = sample(
        "request_total",
        &[
            ("direction", "inbound"),
            ("tls", "true"),
            ("client_id", &id("webapp")),
        ],
        10.0,
    );
    let plain_in = sample(
        "request_total",
        &[
            ("direction", "inbound"),
            ("tls", "no_identity"),
            ("no_tls_reason", "no_tls_from_remote"),
        ],
        3.0,
    );
    let probe = sample(
        "tcp_open_total",
        &[
            ("direction", "inbound"),
            ("tls", "no_identity"),
            ("no_tls_reason", "no_client_certificate"),
        ],
        5.0,
    );
    let plain_out_meshed = sample(
        "request_total",
        &[
            ("direction", "outbound"),
            ("target_addr", "127.0.9.2:7001"),
            ("tls", "no_identity"),
            ("no_tls_reason", "not_provided_by_service_discovery"),
        ],
        2.0,
    );
    // (what, authors' samples, webapp's samples, status, offenders containing)
    let cases = [
        (
            "mTLS only",
            vec![mtls_in.clone(), probe.clone()],
            vec![],
            Status::Pass,
            vec![],
        ),
        (
            "a plaintext client outside the mesh",
            vec![mtls_in.clone(), plain_in.clone()],
            vec![],
            Status::Warn,
            vec![
                "(unidentified client) -> booksapp/externalworkload/authors: plaintext, no_tls_reason=no_tls_from_remote",
            ],
        ),
        (
            "plaintext between two meshed workloads",
            vec![mtls_in.clone()],
            vec![plain_out_meshed],
            Status::Fail,
            vec![
                "booksapp/externalworkload/webapp -> booksapp/externalworkload/authors: plaintext, no_tls_reason=not_provided_by_service_discovery",
            ],
        ),
        ("no traffic", vec![], vec![], Status::Warn, vec![]),
    ];
    for (what, authors, webapp, want, offenders) in cases {
        let mesh = observed(vec![
            obs("authors", "127.0.9.2", authors),
            obs("webapp", "127.0.9.4", webapp),
        ]);
        let got = inv6(&mesh);
        assert_eq!(got.status, want, "{what}: {got:#?}");
        assert_eq!(got.offenders.len(), offenders.len(), "{what}: {got:#?}");
        for o in offenders {
            assert!(
                got.offenders.iter().any(|g| g.starts_with(o)),
                "{what}: {o} in {got:#?}"
            );
        }
    }
}

#[test]
fn inv7_flags_grants_beyond_the_namespace() {
    let doc = |kind: &str, spec: &str| {
        format!(
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: {kind}\nmetadata: {{name: a, namespace: booksapp}}\nspec: {spec}\n"
        )
    };
    let cases = [
        (
            doc(
                "MeshTLSAuthentication",
                &format!("{{identities: [\"{}\"]}}", id("books")),
            ),
            0,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"web.other.serviceaccount.identity.linkerd.cluster.local\"]}",
            ),
            1,
        ),
        (doc("MeshTLSAuthentication", "{identities: [\"*\"]}"), 1),
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"*.other.serviceaccount.identity.linkerd.cluster.local\"]}",
            ),
            1,
        ),
        (
            doc("NetworkAuthentication", "{networks: [{cidr: 0.0.0.0/0}]}"),
            1,
        ),
    ];
    for (yaml, want) in cases {
        let resources = ztmesh_resources::load_str(&yaml, "t.yaml").resources;
        assert_eq!(resources.len(), 1, "{yaml}");
        let got = inv7(&resources);
        assert_eq!(got.offenders.len(), want, "{yaml}: {got:#?}");
        let status = if want == 0 {
            Status::Pass
        } else {
            Status::Fail
        };
        assert_eq!(got.status, status, "{yaml}");
    }
}

#[test]
fn inv10_wants_an_identity_or_a_reason_on_every_request_series() {
    let cases = [
        (
            vec![
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", "a"),
            ],
            Status::Warn,
        ),
        (
            vec![
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", "b"),
            ],
            Status::Warn,
        ),
        (
            vec![
                ("direction", "inbound"),
                ("tls", "no_identity"),
                ("no_tls_reason", "no_tls_from_remote"),
            ],
            Status::Warn,
        ),
        (
            vec![("direction", "inbound"), ("tls", "true")],
            Status::Fail,
        ),
        (
            vec![("direction", "outbound"), ("tls", "true")],
            Status::Fail,
        ),
    ];
    for (labels, want) in cases {
        let mesh = observed(vec![obs(
            "authors",
            "127.0.9.2",
            vec![sample("request_total", &labels, 1.0)],
        )]);
        let got = inv10(&mesh);
        assert_eq!(got.status, want, "{labels:?}: {got:#?}");
        // Spans are not observed: said, never passed silently.
        assert!(
            got.evidence
                .iter()
                .any(|e| e.starts_with("spans: not observed"))
        );
    }
}

#[test]
fn inv1_compares_the_presented_identity_with_the_service_account() {
    let pki = TestPki::new();
    let chain = |sa: &str| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issued = pki
            .ca(Duration::from_secs(3600))
            .issue(&pki.identity("booksapp", sa), &key, SystemTime::now())
            .unwrap();
        vec![issued.leaf]
    };
    for (presented, want) in [("authors", Status::Pass), ("books", Status::Fail)] {
        let mut w = obs("authors", "127.0.9.2", vec![]);
        w.chain = Ok(chain(presented));
        let got = inv1(&observed(vec![w]));
        assert_eq!(got.status, want, "{presented}: {got:#?}");
        if want == Status::Fail {
            assert!(got.offenders[0].contains(&id("books")), "{got:#?}");
        }
    }
    let got = inv1(&observed(vec![obs("authors", "127.0.9.2", vec![])]));
    assert_eq!(got.status, Status::Warn, "nothing observed: {got:#?}");
}

#[test]
fn identity_namespaces_in_both_forms() {
    for (id, want) in [
        (
            "web.other.serviceaccount.identity.linkerd.cluster.local",
            Some("other"),
        ),
        ("spiffe://cluster.local/ns/other/sa/x", Some("other")),
        (
            "*.booksapp.serviceaccount.identity.linkerd.cluster.local",
            Some("booksapp"),
        ),
        ("not-an-identity", None),
    ] {
        assert_eq!(super::identity_namespace(id), want, "{id}");
    }
}
