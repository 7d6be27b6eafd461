//! Table tests of the hardening checklist.
use super::*;
use crate::check::Status;

#[test]
fn allow_all_grants_are_named() {
    let doc = |kind: &str, api: &str, spec: &str| {
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: a, namespace: ns}}\nspec: {spec}\n"
        )
    };
    let cases = [
        (
            doc(
                "Server",
                "policy.linkerd.io/v1beta3",
                "{podSelector: {matchLabels: {app: a}}, port: 80, accessPolicy: all-unauthenticated}",
            ),
            true,
        ),
        (
            doc(
                "Server",
                "policy.linkerd.io/v1beta3",
                "{podSelector: {matchLabels: {app: a}}, port: 80, accessPolicy: deny}",
            ),
            false,
        ),
        (
            doc(
                "NetworkAuthentication",
                "policy.linkerd.io/v1alpha1",
                "{networks: [{cidr: 0.0.0.0/0}]}",
            ),
            true,
        ),
        (
            doc(
                "NetworkAuthentication",
                "policy.linkerd.io/v1alpha1",
                "{networks: [{cidr: 10.0.0.0/8}]}",
            ),
            false,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "policy.linkerd.io/v1alpha1",
                "{identities: [\"*\"]}",
            ),
            true,
        ),
        (
            doc(
                "MeshTLSAuthentication",
                "policy.linkerd.io/v1alpha1",
                "{identityRefs: [{kind: Namespace, name: \"*\"}]}",
            ),
            true,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "policy.linkerd.io/v1alpha1",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: []}",
            ),
            true,
        ),
        (
            doc(
                "AuthorizationPolicy",
                "policy.linkerd.io/v1alpha1",
                "{targetRef: {group: policy.linkerd.io, kind: Server, name: s}, requiredAuthenticationRefs: [{kind: ServiceAccount, name: web}]}",
            ),
            false,
        ),
        (
            doc(
                "ServerAuthorization",
                "policy.linkerd.io/v1beta1",
                "{server: {name: s}, client: {meshTLS: {identities: [\"*\"]}}}",
            ),
            true,
        ),
        (
            doc(
                "ServerAuthorization",
                "policy.linkerd.io/v1beta1",
                "{server: {name: s}, client: {meshTLS: {unauthenticatedTLS: true}}}",
            ),
            true,
        ),
    ];
    for (yaml, want) in cases {
        let resources = ztmesh_resources::load_str(&yaml, "t.yaml").resources;
        assert_eq!(resources.len(), 1, "{yaml}");
        assert_eq!(allow_all(&resources[0]).is_some(), want, "{yaml}");
        let status = explicit_allows(&resources).status;
        assert_eq!(
            status,
            if want { Status::Warn } else { Status::Pass },
            "{yaml}"
        );
    }
}

/// Nothing observed is a WARN "not observed", never a PASS; egress is
/// never verified from traffic; a transparent-mode workload whose
/// iptables were not read is unverified.
#[test]
fn nothing_observed_is_never_a_pass() {
    use crate::check::compliance::tests::{obs, observed};
    use crate::viz::scrape::sample;
    let out_meshed = sample(
        "request_total",
        &[
            ("direction", "outbound"),
            ("target_addr", "127.0.9.2:7001"),
            ("tls", "true"),
            (
                "server_id",
                "authors.booksapp.serviceaccount.identity.linkerd.cluster.local",
            ),
        ],
        3.0,
    );
    let empty = observed(vec![]);
    let idle = observed(vec![obs("authors", "127.0.9.2", vec![])]);
    let talking = observed(vec![
        obs("authors", "127.0.9.2", vec![]),
        obs("webapp", "127.0.9.4", vec![out_meshed]),
    ]);
    let mut transparent = obs("authors", "127.0.9.2", vec![]);
    transparent.workload.explicit = false;
    let transparent = observed(vec![transparent]);
    let mut open = obs("authors", "127.0.9.2", vec![]);
    open.probed_ports = vec![7001, 9000];
    open.open_app_ports = vec![9000];
    let open = observed(vec![open]);
    let mut closed = obs("authors", "127.0.9.2", vec![]);
    closed.probed_ports = vec![7001];
    let closed = observed(vec![closed]);
    // (what, check, want, detail starting with)
    let cases = [
        (
            "no manifests",
            explicit_allows(&empty.resources),
            Status::Warn,
            "not observed",
        ),
        (
            "no manifests (INV-7)",
            crate::check::compliance::inv7(&empty.resources),
            Status::Warn,
            "not observed",
        ),
        (
            "no services",
            one_service_account(&idle),
            Status::Warn,
            "not observed",
        ),
        ("no traffic", egress(&idle), Status::Warn, "not observed"),
        (
            "meshed traffic only",
            egress(&talking),
            Status::Warn,
            "no egress observed",
        ),
        ("no workloads", bypass(&empty), Status::Warn, "not observed"),
        (
            "transparent mode",
            bypass(&transparent),
            Status::Warn,
            "1 transparent-mode",
        ),
        (
            "an app port around the proxy",
            bypass(&open),
            Status::Fail,
            "1 listening port",
        ),
        (
            "explicit mode, closed",
            bypass(&closed),
            Status::Pass,
            "no app port",
        ),
    ];
    for (what, got, want, detail) in cases {
        assert_eq!(got.status, want, "{what}: {got:#?}");
        assert!(got.detail.starts_with(detail), "{what}: {got:#?}");
    }
    let got = bypass(&open);
    assert!(
        got.evidence[0].ends_with("ports probed at 127.0.9.2: 7001, 9000"),
        "{got:#?}"
    );
    assert!(got.offenders[0].contains("127.0.9.2:9000"), "{got:#?}");
}

#[test]
fn tls_alerts_are_found_by_what_they_watch() {
    let rules_text = "groups:\n- name: g\n  rules:\n  - alert: Latency\n    expr: histogram_quantile(0.99, x)\n  - alert: TlsRefusals\n    expr: sum(rate(request_total{tls=\"no_identity\"}[5m])) > 0\n";
    assert_eq!(tls_alerts_in(rules_text), ["TlsRefusals"]);
    assert!(tls_alerts_in("- alert: Latency\n  expr: up == 0\n").is_empty());
    // A comment, a recording rule and another alert's label mention no
    // TLS alert; the match is the expr of the alert that has it.
    let tricky = "groups:\n- name: g\n  rules:\n  # - alert: Old\n  #   expr: rate(x{no_tls_reason!=\"\"}[5m]) > 0\n  - record: tls:ratio\n    expr: sum(rate(tcp_open_total{tls=\"no_identity\"}[5m]))\n  - alert: Latency\n    expr: histogram_quantile(0.99, x) > 1\n    annotations:\n      summary: watches no_tls_reason elsewhere\n  - alert: TlsRefusals\n    expr: sum(rate(request_total{tls=\"no_identity\"}[5m])) > 0\n";
    assert_eq!(tls_alerts_in(tricky), ["TlsRefusals"]);
    let only_comments = "groups:\n- name: g\n  rules:\n  - alert: Latency\n    expr: up == 0\n  # control_identity_cert_refreshes_total\n";
    assert!(tls_alerts_in(only_comments).is_empty());
    let rules = |text: &str| AlertRules {
        source: "r.yaml".into(),
        text: text.into(),
    };
    assert_eq!(tls_alerts(&rules(rules_text)).status, Status::Pass);
    let none = tls_alerts(&rules("groups: []\n"));
    assert_eq!(none.status, Status::Warn);
    assert_eq!(none.offenders, ["r.yaml"]);
}

#[test]
fn rotation_by_lifetime_used_and_refresh_errors() {
    use crate::check::compliance::tests::observed;
    use crate::viz::scrape::sample;
    let pki = ztmesh_test_support::TestPki::new();
    let hour = std::time::Duration::from_secs(3600);
    let now = SystemTime::now();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = pki
        .ca(hour)
        .issue(&pki.identity("booksapp", "authors"), &key, now)
        .unwrap()
        .leaf;
    // (checked at, refresh errors, want)
    let cases = [
        (now, 0.0, Status::Pass),
        (now, 2.0, Status::Warn),
        (now + hour * 85 / 100, 0.0, Status::Warn),
        (now + hour * 2, 0.0, Status::Fail),
    ];
    for (at, errors, want) in cases {
        let mut mesh = observed(vec![]);
        let mut w = crate::check::compliance::tests::obs(
            "authors",
            "127.0.9.2",
            vec![sample(
                "control_identity_cert_refreshes_total",
                &[("result", "error")],
                errors,
            )],
        );
        w.chain = Ok(vec![leaf.clone()]);
        mesh.workloads.push(w);
        let got = rotation(&mesh, at);
        assert_eq!(
            got.status,
            want,
            "{errors} at +{:?}: {got:#?}",
            at.duration_since(now)
        );
    }
}
