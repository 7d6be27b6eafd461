//! Table tests of the invariants over metric samples, manifests and
//! generated certificates.

use super::*;
use crate::check::Status;
use crate::check::control_plane::{ApiError, ApiProbe, Apis};
use crate::check::mesh::WorkloadObs;
use crate::check::workloads::Workload;
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
        admin: format!("{ip}:4191").parse().unwrap(),
        ready: Ok(()),
        metrics: Ok(metrics),
        chain: Err(crate::check::chain::ChainError::Empty {
            addr: format!("{ip}:4143").parse().unwrap(),
        }),
        default_policy: None,
        probed_ports: vec![],
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
    // A TLS client without a certificate that sent data: not check's own
    // handshake, an edge.
    let no_cert = [
        ("direction", "inbound"),
        ("tls", "no_identity"),
        ("no_tls_reason", "no_client_certificate"),
    ];
    let no_cert_open = sample("tcp_open_total", &no_cert, 7.0);
    let no_cert_read = sample("tcp_read_bytes_total", &no_cert, 512.0);
    // (what, authors' samples, webapp's samples, status, offenders containing)
    let cases = [
        (
            "a TLS client without a certificate that sent data",
            vec![mtls_in.clone(), no_cert_open.clone(), no_cert_read],
            vec![],
            Status::Warn,
            vec![
                "(unknown client) -> booksapp/externalworkload/authors: plaintext, no_tls_reason=no_client_certificate",
            ],
        ),
        (
            "only handshakes without a certificate and no data (check's own)",
            vec![mtls_in.clone(), no_cert_open],
            vec![],
            Status::Pass,
            vec![],
        ),
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
                "(unknown client) -> booksapp/externalworkload/authors: plaintext, no_tls_reason=no_tls_from_remote",
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
    let beta1 = |spec: &str| {
        format!(
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {{name: a, namespace: booksapp}}\nspec: {spec}\n"
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
        // Suffix wildcards and forms whose namespace can't be told.
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"*.cluster.local\"]}",
            ),
            1,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"*.identity.linkerd.cluster.local\"]}",
            ),
            1,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"*.serviceaccount.identity.linkerd.cluster.local\"]}",
            ),
            1,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "{identities: [\"*.booksapp.serviceaccount.identity.linkerd.cluster.local\"]}",
            ),
            0,
        ),
        // Grants that reach everyone.
        (
            doc(
                "MeshTLSAuthentication",
                "{identityRefs: [{kind: ServiceAccount, name: \"*\"}]}",
            ),
            1,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "{identityRefs: [{kind: Namespace, name: \"*\"}]}",
            ),
            1,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: []}",
            ),
            1,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: [{kind: ServiceAccount, name: web, namespace: other}]}",
            ),
            1,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: [{kind: ServiceAccount, name: web}]}",
            ),
            0,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: n}]}",
            ),
            1,
        ),
        (
            beta1("{server: {name: s}, client: {meshTLS: {identities: [\"*\"]}}}"),
            1,
        ),
        (
            beta1("{server: {name: s}, client: {meshTLS: {unauthenticatedTLS: true}}}"),
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

/// The policy as compiled for a workload's port is judged too: an
/// AuthorizationPolicy is named with what it admits there.
#[test]
fn inv7_judges_the_compiled_authorizations() {
    let base = "\
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: authors, namespace: booksapp, labels: {app: authors}}
spec:
  meshTLS: {identity: authors.booksapp.serviceaccount.identity.linkerd.cluster.local, serverName: authors.booksapp.serviceaccount.identity.linkerd.cluster.local}
  workloadIPs: [{ip: 127.0.9.2}]
  ports: [{port: 7001}]
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: authors, namespace: booksapp}
spec: {externalWorkloadSelector: {matchLabels: {app: authors}}, port: 7001}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: authors-policy, namespace: booksapp}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: authors}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: clients, namespace: booksapp}
spec: {identities: [IDS]}
";
    // (identities, compiled offenders naming the AuthorizationPolicy)
    let cases = [
        (
            "\"webapp.booksapp.serviceaccount.identity.linkerd.cluster.local\"",
            0,
        ),
        (
            "\"*.booksapp.serviceaccount.identity.linkerd.cluster.local\"",
            0,
        ),
        ("\"*.cluster.local\"", 1),
        (
            "\"web.other.serviceaccount.identity.linkerd.cluster.local\"",
            1,
        ),
        ("\"*\"", 1),
    ];
    for (ids, want) in cases {
        let yaml = base.replace("IDS", ids);
        let loaded = ztmesh_resources::load_str(&yaml, "t.yaml");
        assert_eq!(loaded.resources.len(), 4, "{ids}: {:?}", loaded.diagnostics);
        let resources = loaded.resources;
        let got = inv7(&resources);
        let compiled: Vec<&String> = got
            .offenders
            .iter()
            .filter(|o| o.starts_with("booksapp/AuthorizationPolicy authors-policy, compiled for booksapp/externalworkload/authors:7001: admits"))
            .collect();
        assert_eq!(compiled.len(), want, "{ids}: {got:#?}");
        let status = if want == 0 {
            Status::Pass
        } else {
            Status::Fail
        };
        assert_eq!(got.status, status, "{ids}: {got:#?}");
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

/// A proxy holding another identity's certificate does not terminate TLS
/// for its own SNI: the chain read fails. That workload is named, never
/// counted as checked, whatever the others answered.
#[test]
fn inv1_names_a_workload_whose_chain_was_not_read() {
    let pki = TestPki::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = pki
        .ca(Duration::from_secs(3600))
        .issue(
            &pki.identity("booksapp", "authors"),
            &key,
            SystemTime::now(),
        )
        .unwrap()
        .leaf;
    let mut authors = obs("authors", "127.0.9.2", vec![]);
    authors.chain = Ok(vec![leaf]);
    let books = obs("books", "127.0.9.3", vec![]);
    let got = inv1(&observed(vec![authors, books]));
    assert_eq!(got.status, Status::Warn, "{got:#?}");
    assert_eq!(got.offenders.len(), 1, "{got:#?}");
    assert!(
        got.offenders[0].starts_with("booksapp/externalworkload/books: no certificate for"),
        "{got:#?}"
    );
    assert!(
        got.detail
            .starts_with("1 workload(s) on their own identity"),
        "{got:#?}"
    );
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
        ("*.cluster.local", None),
        ("*.identity.linkerd.cluster.local", None),
        ("*.serviceaccount.identity.linkerd.cluster.local", None),
        ("spiffe://cluster.local/sa/x", None),
        ("spiffe://cluster.local/ns/other", None),
    ] {
        assert_eq!(crate::check::grants::identity_namespace(id), want, "{id}");
    }
}
