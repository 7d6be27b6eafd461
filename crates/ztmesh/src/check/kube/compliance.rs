//! `check --kubernetes --compliance`, cluster-wide: per workload
//! namespace (not kube-system, kube-public, kube-node-lease, the
//! control plane's, the default checks' scratch namespace, nor one
//! being deleted), the bypasses the seeds list:
//! - injection enforced (label `config.ztmesh.io/enforce-injection: "true"`,
//!   which the validating webhook selects);
//! - every pod carries the proxy (exempted pods aside);
//! - no `config.linkerd.io/skip-inbound-ports` (pod or namespace) skips a
//!   port the pod's containers serve: that port is reachable around the
//!   proxy;
//! - a default-deny NetworkPolicy (`podSelector: {}`, policyTypes
//!   Ingress, no ingress rule);
//! - pods admitted with `config.ztmesh.io/injection-exempt: "<reason>"`,
//!   each a bypass, reason shown.
//!
//! Pure over [`ComplianceObs`].

use super::names::{
    ENFORCE_LABEL, EXEMPT_ANNOTATION, PROXY_CONTAINER, SCRATCH_LABEL, SKIP_INBOUND,
};
use super::observe::ComplianceObs;
use super::pods::has_proxy;
use crate::check::result::{CheckResult, Group};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use std::collections::BTreeMap;

const SYSTEM: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

pub(crate) fn checks(obs: &ComplianceObs) -> Vec<CheckResult> {
    let (namespaces, pods, policies) = match (&obs.namespaces, &obs.pods, &obs.policies) {
        (Ok(n), Ok(p), Ok(np)) => (n, p, np),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return vec![CheckResult::fail(
                Group::Compliance,
                "observed",
                "namespaces, pods and NetworkPolicies listed",
                e.to_string(),
                "allow listing namespaces, pods and networkpolicies (or pass -n NAMESPACE)",
            )];
        }
    };
    let mut out = Vec::new();
    for ns in namespaces {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let scratch = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SCRATCH_LABEL.0))
            .is_some_and(|v| v == SCRATCH_LABEL.1);
        let terminating =
            ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if SYSTEM.contains(&name.as_str()) || name == obs.control_plane || scratch || terminating {
            continue;
        }
        let pods: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(name.as_str()))
            .collect();
        let policies: Vec<&NetworkPolicy> = policies
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(name.as_str()))
            .collect();
        out.push(enforcement(ns, &name, &pods));
        out.push(proxied(&name, &pods));
        out.push(skip_ports(ns, &name, &pods));
        out.push(default_deny(&name, &policies));
        out.push(exemptions(&name, &pods));
    }
    if out.is_empty() {
        out.push(CheckResult::warn(
            Group::Compliance,
            "namespaces",
            "workload namespaces",
            "none to judge",
            "deploy workloads, or name their namespace with -n",
        ));
    }
    out
}

fn title(ns: &str, what: &str) -> String {
    format!("{ns}: {what}")
}

fn pod_name(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default()
    )
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a String> {
    p.metadata.annotations.as_ref()?.get(key)
}

fn enforcement(ns: &Namespace, name: &str, pods: &[&Pod]) -> CheckResult {
    let t = title(name, "injection enforced");
    let label = ns
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ENFORCE_LABEL));
    let fix = format!("kubectl label namespace {name} {ENFORCE_LABEL}=true");
    match label.map(String::as_str) {
        Some("true") => CheckResult::pass(
            Group::Compliance,
            "enforce-injection",
            &t,
            format!("labelled {ENFORCE_LABEL}=true"),
        ),
        other => {
            let why = match other {
                Some(v) => format!("labelled {ENFORCE_LABEL}={v:?}, not \"true\""),
                None => format!("not labelled {ENFORCE_LABEL}=true"),
            };
            let detail = format!("{why}: a pod without the proxy is admitted");
            if pods.is_empty() {
                CheckResult::warn(
                    Group::Compliance,
                    "enforce-injection",
                    &t,
                    format!("{detail} (no pod yet)"),
                    fix,
                )
            } else {
                CheckResult::fail(Group::Compliance, "enforce-injection", &t, detail, fix)
                    .offenders([format!("namespace/{name}")])
            }
        }
    }
}

fn proxied(name: &str, pods: &[&Pod]) -> CheckResult {
    let t = title(name, "pods carry the proxy");
    let offenders: Vec<String> = pods
        .iter()
        .filter(|p| !has_proxy(p) && annotation(p, EXEMPT_ANNOTATION).is_none())
        .filter(|p| !host_network(p))
        .map(|p| pod_name(p))
        .collect();
    let meshed = pods.iter().filter(|p| has_proxy(p)).count();
    if offenders.is_empty() {
        let detail = match (meshed, pods.len()) {
            (_, 0) => "no pod".to_string(),
            (m, n) if m == n => format!("all {n} pod(s) meshed"),
            (m, n) => {
                format!("{m} of {n} pod(s) meshed, the others exempted or on the host network")
            }
        };
        CheckResult::pass(Group::Compliance, "pods-proxied", &t, detail)
    } else {
        CheckResult::fail(
            Group::Compliance,
            "pods-proxied",
            &t,
            format!("{} pod(s) without the proxy: their traffic bypasses mTLS and policy", offenders.len()),
            format!("kubectl annotate namespace {name} linkerd.io/inject=enabled, then kubectl rollout restart its workloads"),
        )
        .offenders(offenders)
    }
}

fn host_network(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The ports a `skip-inbound-ports` value names (`25,443,4000-4100`).
pub(crate) fn parse_ports(value: &str) -> Vec<(u16, u16)> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => s.parse().ok().map(|p| (p, p)),
        })
        .collect()
}

/// The ports the pod's own containers declare, by container.
fn served(p: &Pod) -> Vec<(String, u16)> {
    let Some(spec) = &p.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name != PROXY_CONTAINER)
        .flat_map(|c| {
            c.ports
                .iter()
                .flatten()
                .filter_map(|port| Some((c.name.clone(), u16::try_from(port.container_port).ok()?)))
        })
        .collect()
}

fn skip_ports(ns: &Namespace, name: &str, pods: &[&Pod]) -> CheckResult {
    let t = title(name, "no skipped inbound port opens a bypass");
    let ns_value = ns
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_INBOUND));
    let mut offenders = Vec::new();
    let mut evidence = Vec::new();
    for p in pods.iter().filter(|p| has_proxy(p)) {
        let Some((value, from)) = annotation(p, SKIP_INBOUND)
            .map(|v| (v, "pod"))
            .or(ns_value.map(|v| (v, "namespace")))
        else {
            continue;
        };
        let ranges = parse_ports(value);
        evidence.push(format!("{}: {SKIP_INBOUND}={value} ({from})", pod_name(p)));
        for (container, port) in served(p) {
            if ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)) {
                offenders.push(format!(
                    "{}: port {port} (container {container}) skipped by {SKIP_INBOUND}={value} ({from} annotation): reachable without mTLS",
                    pod_name(p)
                ));
            }
        }
    }
    if offenders.is_empty() {
        CheckResult::pass(Group::Compliance, "skip-inbound-ports", &t, "no served port skipped")
    } else {
        CheckResult::fail(
            Group::Compliance,
            "skip-inbound-ports",
            &t,
            format!("{} served port(s) skipped by the proxy", offenders.len()),
            format!("remove the served ports from {SKIP_INBOUND} (use config.linkerd.io/opaque-ports for non-HTTP protocols)"),
        )
        .offenders(offenders)
    }
    .evidence(evidence)
}

/// Whether `np` denies all ingress to every pod of its namespace.
pub(crate) fn is_default_deny(np: &NetworkPolicy) -> bool {
    let Some(spec) = &np.spec else { return false };
    let selects_all = spec.pod_selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    let ingress_type = spec
        .policy_types
        .as_ref()
        // Without policyTypes, Ingress is implied.
        .is_none_or(|t| t.iter().any(|t| t == "Ingress"));
    let no_rules = spec.ingress.as_ref().is_none_or(Vec::is_empty);
    selects_all && ingress_type && no_rules
}

fn default_deny(name: &str, policies: &[&NetworkPolicy]) -> CheckResult {
    let t = title(name, "default-deny NetworkPolicy");
    let evidence: Vec<String> = policies
        .iter()
        .map(|p| {
            format!(
                "networkpolicy/{}",
                p.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    match policies.iter().find(|p| is_default_deny(p)) {
        Some(p) => CheckResult::pass(
            Group::Compliance,
            "default-deny",
            &t,
            format!("networkpolicy/{} denies all ingress", p.metadata.name.as_deref().unwrap_or_default()),
        ),
        None => CheckResult::fail(
            Group::Compliance,
            "default-deny",
            &t,
            format!("none of its {} NetworkPolicies denies all ingress", policies.len()),
            format!("kubectl apply -n {name} -f - with a NetworkPolicy: podSelector {{}}, policyTypes [Ingress], no ingress rules; then allow what the mesh needs"),
        )
        .offenders([format!("namespace/{name}")]),
    }
    .evidence(evidence)
}

fn exemptions(name: &str, pods: &[&Pod]) -> CheckResult {
    let t = title(name, "injection exemptions");
    let bypasses: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            Some(format!(
                "{}: {}",
                pod_name(p),
                annotation(p, EXEMPT_ANNOTATION)?
            ))
        })
        .collect();
    if bypasses.is_empty() {
        CheckResult::pass(Group::Compliance, "injection-exempt", &t, "no pod exempted")
    } else {
        CheckResult::warn(
            Group::Compliance,
            "injection-exempt",
            &t,
            format!("{} pod(s) admitted with {EXEMPT_ANNOTATION}: each is a bypass", bypasses.len()),
            format!("review each reason; remove {EXEMPT_ANNOTATION} and re-create the pod when it no longer applies"),
        )
        .offenders(bypasses)
    }
}

#[cfg(test)]
mod tests;
