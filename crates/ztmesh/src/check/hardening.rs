//! The hardening checklist, each item PASS/WARN/FAIL with its evidence:
//! default deny in force (the default policy the controller serves each
//! workload for a port no Server selects), explicit allows only (no
//! `all-unauthenticated` Server, no allow-all authorization), one service
//! account per service, certificate rotation healthy (no leaf past 80% of
//! its lifetime, no refresh errors), TLS errors monitored (the alerts of
//! a Prometheus rule file), egress controlled (observed only: ztmesh
//! enforces no egress policy, so never a PASS), and no workload bypassing
//! the mesh (an explicit-mode workload's ports, declared or listening on
//! its address, that answer without the proxy; transparent mode's
//! iptables are not read: unverified). A checklist item not met is a WARN
//! (it is advice); a mesh-bypassing listener or an expired leaf is a FAIL.
//! Nothing to judge is a WARN "not observed", never a PASS.

use super::chain::Summary;
use super::compliance::all_edges;
use super::mesh::Observed;
use super::result::{CheckResult, Group, not_observed};
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
        Resource::MeshTlsAuthentication(o)
            if o.spec.identity_refs.iter().flatten().any(|r| r.name == "*") =>
        {
            Some(format!(
                "{key}: an identityRef named \"*\" admits every identity"
            ))
        }
        Resource::AuthorizationPolicy(o) if o.spec.required_authentication_refs.is_empty() => Some(
            format!("{key}: no requiredAuthenticationRefs: admits every client"),
        ),
        Resource::ServerAuthorization(o)
            if o.spec.client.mesh_tls.as_ref().is_some_and(|m| {
                m.unauthenticated_tls || m.identities.iter().flatten().any(|i| i == "*")
            }) =>
        {
            Some(format!(
                "{key}: meshTLS admits every identity (identities [\"*\"] or unauthenticatedTLS)"
            ))
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
    if resources.is_empty() {
        return not_observed(id, title, "no manifests observed");
    }
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
    if identities_of.is_empty() {
        return not_observed(id, title, "no Service with a selector observed");
    }
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
        if let Ok(m) = &w.metrics {
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

/// A Prometheus rule file: groups of rules, alerts among them.
#[derive(serde::Deserialize)]
struct RuleFile {
    #[serde(default)]
    groups: Vec<RuleGroup>,
}

#[derive(serde::Deserialize)]
struct RuleGroup {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct Rule {
    alert: Option<String>,
    #[serde(default)]
    expr: String,
}

/// The alerts (rules with `alert` set) whose `expr` watches TLS
/// failures; a file that is not a rule file has none.
pub(crate) fn tls_alerts_in(rules: &str) -> Vec<String> {
    let watched = [
        "no_tls_reason",
        "tls=\"no_identity\"",
        "control_identity_cert_refreshes_total",
        "control_identity_cert_expiration",
    ];
    let Ok(file) = serde_yaml::from_str::<RuleFile>(rules) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rule in file.groups.into_iter().flat_map(|g| g.rules) {
        if let Some(name) = rule.alert
            && watched.iter().any(|w| rule.expr.contains(w))
            && !out.contains(&name)
        {
            out.push(name);
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

/// ztmesh enforces no egress policy, so a meshed workload's outbound
/// traffic can only be observed: destinations outside the mesh are named
/// (WARN); none observed is still a WARN, "not verified", since nothing
/// stops the next connection.
pub(crate) fn egress(mesh: &Observed) -> CheckResult {
    let (id, title) = ("egress", "egress controlled");
    let edges = all_edges(mesh);
    let meshed: BTreeSet<String> = mesh
        .workloads
        .iter()
        .map(|w| w.workload.display())
        .collect();
    let outbound: Vec<_> = edges.keys().filter(|e| meshed.contains(&e.src)).collect();
    let out: Vec<String> = outbound
        .iter()
        .filter(|e| !e.meshed && !e.dst.starts_with('('))
        .filter(|e| !meshed.contains(&e.dst))
        .map(|e| format!("{} -> {}", e.src, e.dst))
        .collect();
    let fix = "deny egress at the network (a default-deny NetworkPolicy or firewall), allowing only an egress gateway";
    if outbound.is_empty() {
        return not_observed(id, title, "no outbound traffic in the proxies' metrics");
    }
    if out.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!(
                "no egress observed ({} outbound edge(s), all to meshed workloads); not verified: ztmesh enforces no egress policy",
                outbound.len()
            ),
            fix,
        );
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("{} destination(s) outside the mesh reached", out.len()),
        fix,
    )
    .offenders(out)
}

fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An explicit-mode workload's ports (declared, and every socket
/// listening on its address on this host) that answer without the proxy
/// are a FAIL; a transparent-mode workload's iptables rules are not read,
/// so it is unverified (WARN).
pub(crate) fn bypass(mesh: &Observed) -> CheckResult {
    let (id, title) = ("no-bypass", "no workload bypassing the mesh");
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    let mut unverified = Vec::new();
    for w in &mesh.workloads {
        let name = w.workload.display();
        if !w.workload.explicit {
            unverified.push(format!(
                "{name}: transparent mode: its iptables rules (in its network namespace) not read"
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
            "{name}: explicit mode, ports probed at {}: {}",
            w.workload.ip,
            ports(&w.probed_ports)
        ));
    }
    if mesh.workloads.is_empty() {
        return not_observed(id, title, "no workloads");
    }
    if !offenders.is_empty() {
        return CheckResult::fail(
            Group::Compliance,
            id,
            title,
            format!("{} listening port(s) not behind the proxy", offenders.len()),
            "in explicit mode any local process can dial the app's own address: run the proxy in transparent mode (ztmesh proxy-init), or bind the app to 127.0.0.1 in a network namespace of its own",
        )
        .evidence(evidence.into_iter().chain(unverified))
        .offenders(offenders);
    }
    if !unverified.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!(
                "{} transparent-mode workload(s) not verified (iptables not read)",
                unverified.len()
            ),
            "check each workload's iptables (iptables -t nat -S PROXY_INIT_REDIRECT in its network namespace)",
        )
        .evidence(evidence)
        .offenders(unverified);
    }
    CheckResult::pass(
        Group::Compliance,
        id,
        title,
        "no app port reachable around a proxy",
    )
    .evidence(evidence)
}

#[cfg(test)]
mod tests;
