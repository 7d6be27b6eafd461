//! The hardening checklist, each item PASS/WARN/FAIL with its evidence:
//! default deny in force (the default policy the controller serves each
//! workload for a port no Server selects), explicit allows only (no
//! `all-unauthenticated` Server, no allow-all authorization), one service
//! account per service, certificate rotation healthy (no leaf past 80% of
//! its lifetime, no refresh errors), TLS errors monitored (alert rules),
//! egress controlled (outbound traffic only to meshed workloads), and no
//! workload bypassing the mesh (an explicit-mode workload's app port that
//! answers without the proxy). A checklist item not met is a WARN (it is
//! advice); a mesh-bypassing listener or an expired leaf is a FAIL.

use super::chain::Summary;
use super::compliance::all_edges;
use super::mesh::Observed;
use super::{CheckResult, Group};
use crate::viz::scrape::Sample;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;
use ztmesh_resources::Resource;

/// A leaf past this share of its lifetime has missed its refresh.
pub(crate) const ROTATION_LIMIT: f64 = 0.8;

/// Alert rules to judge: where they came from, and their text.
#[derive(Clone, Debug)]
pub(crate) struct AlertRules {
    pub(crate) source: String,
    pub(crate) text: String,
}

impl AlertRules {
    /// The rules shipped with ztmesh (deploy/observability).
    pub(crate) fn shipped() -> Self {
        Self {
            source: "deploy/observability/prometheus-rules.yaml (shipped)".into(),
            text: SHIPPED_RULES.into(),
        }
    }
}

pub(crate) fn checks(mesh: &Observed, rules: &AlertRules, now: SystemTime) -> Vec<CheckResult> {
    vec![
        default_deny(mesh),
        explicit_allows(&mesh.resources),
        one_service_account(mesh),
        rotation(mesh, now),
        tls_alerts(rules),
        egress(mesh),
        bypass(mesh),
    ]
}

fn default_deny(mesh: &Observed) -> CheckResult {
    let (id, title) = ("default-deny", "default deny in force");
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    for w in &mesh.workloads {
        let name = w.workload.display();
        match &w.default_policy {
            Some(p) => {
                evidence.push(format!("{name}: default policy {p}"));
                if p != "deny" {
                    offenders.push(format!("{name}: {p}"));
                }
            }
            None => offenders.push(format!("{name}: the policy API did not say")),
        }
    }
    if mesh.workloads.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            "no workloads observed",
            "pass --manifests DIR",
        );
    }
    if offenders.is_empty() {
        return CheckResult::pass(
            Group::Compliance,
            id,
            title,
            format!("all {} workload(s) default to deny", mesh.workloads.len()),
        )
        .evidence(evidence);
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("{} workload(s) without default deny", offenders.len()),
        "run the controller with --default-inbound-policy deny, or annotate the namespaces config.linkerd.io/default-inbound-policy: deny",
    )
    .evidence(evidence)
    .offenders(offenders)
}

/// Grants that admit everyone.
pub(crate) fn allow_all(r: &Resource) -> Option<String> {
    let key = r.key();
    let everywhere = |cidr: &ipnet::IpNet| cidr.prefix_len() == 0;
    match r {
        Resource::Server(o) if o.spec.access_policy.as_deref() == Some("all-unauthenticated") => {
            Some(format!("{key}: accessPolicy all-unauthenticated"))
        }
        Resource::NetworkAuthentication(o)
            if o.spec.networks.iter().any(|n| everywhere(&n.cidr.0)) =>
        {
            Some(format!("{key}: admits every network"))
        }
        Resource::MeshTlsAuthentication(o)
            if o.spec.identities.iter().flatten().any(|i| i == "*") =>
        {
            Some(format!("{key}: admits every identity"))
        }
        Resource::ServerAuthorization(o)
            if o.spec.client.unauthenticated
                && o.spec
                    .client
                    .networks
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| everywhere(&n.cidr.0))) =>
        {
            Some(format!(
                "{key}: admits unauthenticated clients from everywhere"
            ))
        }
        _ => None,
    }
}

pub(crate) fn explicit_allows(resources: &[Resource]) -> CheckResult {
    let (id, title) = ("explicit-allows", "explicit allows only");
    let offenders: Vec<String> = resources.iter().filter_map(allow_all).collect();
    if offenders.is_empty() {
        return CheckResult::pass(
            Group::Compliance,
            id,
            title,
            "no all-unauthenticated Server and no allow-all authorization",
        );
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("{} allow-all grant(s)", offenders.len()),
        "replace them with AuthorizationPolicies naming the clients' identities",
    )
    .offenders(offenders)
}

fn one_service_account(mesh: &Observed) -> CheckResult {
    let (id, title) = ("one-sa-per-service", "one service account per service");
    let mut identities_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &mesh.resources {
        let Resource::Service(s) = r else { continue };
        let key = r.key();
        let Some(selector) = s.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        let ids = mesh
            .workloads
            .iter()
            .filter(|w| w.workload.namespace == key.namespace)
            .filter(|w| {
                selector
                    .iter()
                    .all(|(k, v)| w.workload.labels.get(k) == Some(v))
            })
            .map(|w| w.workload.identity.clone());
        identities_of
            .entry(format!("{}/{}", key.namespace, key.name))
            .or_default()
            .extend(ids);
    }
    let mut services_of: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (svc, ids) in &identities_of {
        for i in ids {
            services_of.entry(i).or_default().push(svc);
        }
    }
    let mut offenders: Vec<String> = identities_of
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(svc, ids)| format!("service {svc}: {} identities", ids.len()))
        .collect();
    offenders.extend(
        services_of
            .iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(i, s)| {
                format!(
                    "{i}: shared by services {}",
                    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )
            }),
    );
    let evidence: Vec<String> = identities_of
        .iter()
        .map(|(svc, ids)| {
            format!(
                "service {svc}: {}",
                ids.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    if offenders.is_empty() {
        return CheckResult::pass(
            Group::Compliance,
            id,
            title,
            format!(
                "{} service(s), each served by one service account of its own",
                identities_of.len()
            ),
        )
        .evidence(evidence);
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("{} service(s) or identities shared", offenders.len()),
        "give each service's workloads a service account of their own",
    )
    .evidence(evidence)
    .offenders(offenders)
}

fn value(metrics: &[Sample], name: &str, key: &str, want: &str) -> f64 {
    metrics
        .iter()
        .filter(|s| s.name == name && s.labels.get(key).map(String::as_str) == Some(want))
        .map(|s| s.value)
        .sum()
}

pub(crate) fn rotation(mesh: &Observed, now: SystemTime) -> CheckResult {
    let (id, title) = ("rotation", "certificate rotation healthy");
    let mut evidence = Vec::new();
    let mut late = Vec::new();
    let mut expired = Vec::new();
    for w in &mesh.workloads {
        let name = w.workload.display();
        if let Ok(chain) = &w.chain
            && let Ok(leaf) = Summary::of(&chain[0])
        {
            let used = leaf.lifetime_used(now);
            evidence.push(format!(
                "{name}: leaf {:.0}% through its lifetime",
                used * 100.0
            ));
            if used >= 1.0 {
                expired.push(format!(
                    "{name}: leaf expired at {}",
                    ztmesh_identity::rfc3339(leaf.not_after)
                ));
            } else if used > ROTATION_LIMIT {
                late.push(format!(
                    "{name}: leaf {:.0}% through its lifetime",
                    used * 100.0
                ));
            }
        }
        if let Some(m) = &w.metrics {
            let errors = value(
                m,
                "control_identity_cert_refreshes_total",
                "result",
                "error",
            );
            evidence.push(format!("{name}: {errors} refresh error(s)"));
            if errors > 0.0 {
                late.push(format!("{name}: {errors} refresh error(s)"));
            }
        }
    }
    let fix = "check the identity service and the proxies' logs (control_identity_cert_refreshes_total{result=\"error\"})";
    if !expired.is_empty() {
        return CheckResult::fail(
            Group::Compliance,
            id,
            title,
            format!("{} proxy(ies) on an expired leaf", expired.len()),
            fix,
        )
        .evidence(evidence)
        .offenders(expired.into_iter().chain(late));
    }
    if !late.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!("{} problem(s) with renewal", late.len()),
            fix,
        )
        .evidence(evidence)
        .offenders(late);
    }
    if evidence.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            "no proxy observed",
            "start the proxies",
        );
    }
    CheckResult::pass(
        Group::Compliance,
        id,
        title,
        format!(
            "every leaf under {:.0}% of its lifetime; no refresh errors",
            ROTATION_LIMIT * 100.0
        ),
    )
    .evidence(evidence)
}

/// The alert rules shipped with ztmesh (deploy/observability).
const SHIPPED_RULES: &str = include_str!("../../../../deploy/observability/prometheus-rules.yaml");

/// Alert expressions that watch TLS failures.
pub(crate) fn tls_alerts_in(rules: &str) -> Vec<String> {
    let watched = [
        "no_tls_reason",
        "tls=\"no_identity\"",
        "control_identity_cert_refreshes_total",
        "control_identity_cert_expiration",
    ];
    let mut out = Vec::new();
    let mut current = None;
    for line in rules.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            current = Some(name.trim().to_string());
        }
        if let Some(name) = &current
            && watched.iter().any(|w| line.contains(w))
            && !out.contains(name)
        {
            out.push(name.clone());
        }
    }
    out
}

fn tls_alerts(rules: &AlertRules) -> CheckResult {
    let (id, title) = ("tls-alerts", "TLS errors monitored");
    let found = tls_alerts_in(&rules.text);
    let source = &rules.source;
    if found.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!("no alert on TLS failures in {source}"),
            "add alerts on no_tls_reason series and control_identity_cert_refreshes_total{result=\"error\"} (or pass --alert-rules FILE, the rules you deploy)",
        )
        .offenders([source.clone()]);
    }
    CheckResult::pass(
        Group::Compliance,
        id,
        title,
        format!("alerts in {source}: {}", found.join(", ")),
    )
    .evidence(found)
}

fn egress(mesh: &Observed) -> CheckResult {
    let (id, title) = ("egress", "egress controlled");
    let edges = all_edges(mesh);
    let meshed: BTreeSet<String> = mesh
        .workloads
        .iter()
        .map(|w| w.workload.display())
        .collect();
    let out: Vec<String> = edges
        .keys()
        .filter(|e| meshed.contains(&e.src) && !e.meshed && !e.dst.starts_with('('))
        .filter(|e| !meshed.contains(&e.dst))
        .map(|e| format!("{} -> {}", e.src, e.dst))
        .collect();
    if out.is_empty() {
        return CheckResult::pass(
            Group::Compliance,
            id,
            title,
            "no outbound traffic to destinations outside the mesh observed",
        );
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("{} destination(s) outside the mesh reached", out.len()),
        "route egress through an egress gateway or deny it at the network",
    )
    .offenders(out)
}

fn bypass(mesh: &Observed) -> CheckResult {
    let (id, title) = ("no-bypass", "no workload bypassing the mesh");
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    for w in &mesh.workloads {
        let name = w.workload.display();
        if !w.workload.explicit {
            evidence.push(format!(
                "{name}: transparent mode (iptables sends every port to the proxy)"
            ));
            continue;
        }
        for p in &w.open_app_ports {
            offenders.push(format!(
                "{name}: app port {}:{p} accepts connections without the proxy",
                w.workload.ip
            ));
        }
        evidence.push(format!(
            "{name}: explicit mode, ports {:?} probed",
            w.workload.ports
        ));
    }
    if offenders.is_empty() {
        return CheckResult::pass(
            Group::Compliance,
            id,
            title,
            "no app port reachable around a proxy",
        )
        .evidence(evidence);
    }
    CheckResult::fail(
        Group::Compliance,
        id,
        title,
        format!("{} listening port(s) not behind the proxy", offenders.len()),
        "bind the app to 127.0.0.1 only (explicit mode), or run the proxy in transparent mode (ztmesh proxy-init)",
    )
    .evidence(evidence)
    .offenders(offenders)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn tls_alerts_are_found_by_what_they_watch() {
        let rules_text = "groups:\n- name: g\n  rules:\n  - alert: Latency\n    expr: histogram_quantile(0.99, x)\n  - alert: TlsRefusals\n    expr: sum(rate(request_total{tls=\"no_identity\"}[5m])) > 0\n";
        assert_eq!(tls_alerts_in(rules_text), ["TlsRefusals"]);
        assert!(tls_alerts_in("- alert: Latency\n  expr: up == 0\n").is_empty());
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
}
