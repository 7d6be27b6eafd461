//! The data-plane group: each known workload's proxy is ready (admin
//! `/ready`), presents a certificate issued by the current issuer for its
//! identity (the chain read in a TLS handshake, [`super::chain`]), and
//! trusts the current anchors (the fingerprints its
//! `ztmesh_identity_trust_anchors` metric exports). [`per_workload`] is
//! `check --proxy`; [`summary`] folds the same results into one line per
//! check for `ztmesh check`, the workloads that failed named.

use super::chain::{self, Summary};
use super::mesh::{Observed, TrustFiles, WorkloadObs};
use super::result::{CheckResult, Group, Status};
use std::collections::BTreeSet;
use std::time::SystemTime;

/// The metric through which a proxy tells the anchors it trusts.
pub(crate) const ANCHORS_METRIC: &str = "ztmesh_identity_trust_anchors";

const READY: (&str, &str) = ("proxy-ready", "proxy ready");
const ISSUER: (&str, &str) = ("proxy-certificate", "certificate from the current issuer");
const ANCHORS: (&str, &str) = ("proxy-anchors", "trusts the current anchors");

/// The three checks of one workload's proxy.
pub(crate) fn workload_checks(
    w: &WorkloadObs,
    trust: &TrustFiles,
    now: SystemTime,
) -> [CheckResult; 3] {
    let name = w.workload.display();
    let admin = w.admin;
    let restart =
        format!("look at {name}'s proxy log; restart the proxy (it certifies itself at start-up)");
    let ready = match &w.ready {
        Ok(()) => CheckResult::pass(Group::DataPlane, READY.0, READY.1, format!("{name}: ready")),
        Err(e) => CheckResult::fail(
            Group::DataPlane,
            READY.0,
            READY.1,
            format!("{name}: {}", with_causes(e)),
            restart.clone(),
        ),
    }
    .evidence([format!("GET http://{admin}/ready")]);
    let issuer = certificate(w, trust, now);
    let anchors = anchors(w, trust);
    [ready, issuer, anchors]
}

fn certificate(w: &WorkloadObs, trust: &TrustFiles, now: SystemTime) -> CheckResult {
    let name = w.workload.display();
    let (id, title) = ISSUER;
    let chain = match &w.chain {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::fail(
                Group::DataPlane,
                id,
                title,
                format!("{name}: no chain read: {e}"),
                format!(
                    "start {name}'s proxy; its inbound port must answer TLS for {}",
                    w.workload.identity
                ),
            );
        }
    };
    let leaf = match Summary::of(&chain[0]) {
        Ok(s) => s,
        Err(e) => {
            return CheckResult::fail(
                Group::DataPlane,
                id,
                title,
                format!("{name}: {e}"),
                "restart the proxy",
            );
        }
    };
    let evidence = vec![format!(
        "{name} presented {} (SANs {}; until {}; issuer {})",
        leaf.subject,
        leaf.dns_sans
            .iter()
            .chain(&leaf.uri_sans)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        ztmesh_identity::rfc3339(leaf.not_after),
        leaf.issuer
    )];
    let Some(anchors_pem) = &trust.anchors_pem else {
        return CheckResult::warn(
            Group::DataPlane,
            id,
            title,
            format!("{name}: chain read, not judged: no trust anchors"),
            "pass --identity-dir DIR",
        )
        .evidence(evidence);
    };
    let restart =
        format!("restart {name}'s proxy so that it certifies itself with the current issuer");
    if let Err(e) = chain::verify(chain, anchors_pem, &w.workload.identity, now) {
        let detail = if chain.len() == 1 {
            format!(
                "{name}: no intermediate sent: the proxy presents its leaf alone, which the current anchors do not sign ({e})"
            )
        } else {
            format!(
                "{name}: its chain is not valid for {} under the current anchors: {e}",
                w.workload.identity
            )
        };
        return CheckResult::fail(Group::DataPlane, id, title, detail, restart).evidence(evidence);
    }
    let Some(current) = trust.issuer.first() else {
        return CheckResult::warn(
            Group::DataPlane,
            id,
            title,
            format!("{name}: valid under the current anchors; issuer unknown, not judged"),
            "pass --identity-dir DIR holding the issuer's certificate (issuer.crt or tls.crt)",
        )
        .evidence(evidence);
    };
    if chain.get(1) != Some(current) {
        return CheckResult::warn(
            Group::DataPlane,
            id,
            title,
            format!(
                "{name}: certified by an earlier issuer of the same anchors ({})",
                if matches!(
                    trust.load,
                    Some(Err(ztmesh_identity::IssuerError::Expired { .. }))
                ) {
                    "the current issuer has expired: it cannot renew"
                } else {
                    "it renews at its next refresh"
                }
            ),
            restart,
        )
        .evidence(evidence);
    }
    CheckResult::pass(
        Group::DataPlane,
        id,
        title,
        format!(
            "{name}: {} until {}",
            leaf.identity().unwrap_or("?"),
            ztmesh_identity::rfc3339(leaf.not_after)
        ),
    )
    .evidence(evidence)
}

/// An error and its causes, `a: b: c` (hyper's client says only
/// "client error (Connect)"; the cause says why).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The anchor fingerprints a proxy's metrics list.
pub(crate) fn exported_anchors(w: &WorkloadObs) -> Option<BTreeSet<String>> {
    let metrics = w.metrics.as_ref().ok()?;
    let set: BTreeSet<String> = metrics
        .iter()
        .filter(|s| s.name == ANCHORS_METRIC && s.value > 0.0)
        .filter_map(|s| s.labels.get("sha256").cloned())
        .collect();
    (!set.is_empty()).then_some(set)
}

fn anchors(w: &WorkloadObs, trust: &TrustFiles) -> CheckResult {
    let name = w.workload.display();
    let (id, title) = ANCHORS;
    let current: BTreeSet<String> = trust.anchors.iter().map(|c| chain::sha256(c)).collect();
    let fix = format!(
        "restart {name}'s proxy with LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS set to ca.crt's content"
    );
    if let Err(e) = &w.metrics {
        return CheckResult::fail(
            Group::DataPlane,
            id,
            title,
            format!(
                "{name}: its admin /metrics did not answer: {}",
                with_causes(e)
            ),
            format!(
                "check {name}'s proxy is running and its admin port is {} (ztmesh check --admin-port)",
                w.admin.port()
            ),
        )
        .evidence([format!("GET http://{}/metrics", w.admin)]);
    }
    let Some(exported) = exported_anchors(w) else {
        return CheckResult::warn(
            Group::DataPlane,
            id,
            title,
            format!("{name}: the proxy does not export {ANCHORS_METRIC} (an older proxy)"),
            "upgrade the proxy",
        );
    };
    let evidence: Vec<String> = exported
        .iter()
        .map(|f| format!("{name} trusts {f}"))
        .collect();
    if current.is_empty() {
        return CheckResult::warn(
            Group::DataPlane,
            id,
            title,
            format!("{name}: anchors read, not judged: no trust anchors known"),
            "pass --identity-dir DIR",
        )
        .evidence(evidence);
    }
    let missing: Vec<&String> = current.difference(&exported).collect();
    if missing.is_empty() {
        CheckResult::pass(
            Group::DataPlane,
            id,
            title,
            format!("{name}: trusts all {} current anchor(s)", current.len()),
        )
        .evidence(evidence)
    } else {
        CheckResult::fail(
            Group::DataPlane,
            id,
            title,
            format!(
                "{name}: does not trust the current anchor(s) {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix,
        )
        .evidence(evidence)
    }
}

/// `check --proxy`: every workload's three checks.
pub(crate) fn per_workload(
    mesh: &Observed,
    trust: &TrustFiles,
    now: SystemTime,
) -> Vec<CheckResult> {
    if mesh.workloads.is_empty() {
        return vec![no_workloads()];
    }
    let mut out = Vec::new();
    for w in &mesh.workloads {
        let name = w.workload.display();
        for mut c in workload_checks(w, trust, now) {
            if let Some(detail) = c.detail.strip_prefix(&format!("{name}: ")) {
                c.detail = detail.to_string();
            }
            c.title = format!("{name}: {}", c.title);
            out.push(c);
        }
    }
    out
}

fn no_workloads() -> CheckResult {
    CheckResult::warn(
        Group::DataPlane,
        "workloads",
        "workloads known",
        "no workload with an address in the manifests",
        "pass --manifests DIR, or declare the workloads (Pods, ExternalWorkloads) there",
    )
}

/// `ztmesh check`: each data-plane check over all workloads, the worst
/// status, the workloads that did not pass named.
pub(crate) fn summary(mesh: &Observed, trust: &TrustFiles, now: SystemTime) -> Vec<CheckResult> {
    if mesh.workloads.is_empty() {
        return vec![no_workloads()];
    }
    let all: Vec<[CheckResult; 3]> = mesh
        .workloads
        .iter()
        .map(|w| workload_checks(w, trust, now))
        .collect();
    (0..3)
        .map(|i| {
            let results: Vec<&CheckResult> = all.iter().map(|r| &r[i]).collect();
            fold(&results)
        })
        .collect()
}

/// One line for many workloads' results of the same check.
pub(crate) fn fold(results: &[&CheckResult]) -> CheckResult {
    let first = results[0];
    let worst = results
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(Status::Pass);
    let bad: Vec<&&CheckResult> = results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .collect();
    let detail = match worst {
        Status::Pass => format!("all {} workload(s)", results.len()),
        _ => format!(
            "{} of {} workload(s): {}",
            bad.len(),
            results.len(),
            bad.iter()
                .find(|r| r.status == worst)
                .map_or("", |r| r.detail.as_str())
        ),
    };
    let mut out = CheckResult {
        status: worst,
        detail,
        fix: bad
            .iter()
            .find(|r| r.status == worst)
            .and_then(|r| r.fix.clone()),
        evidence: results.iter().flat_map(|r| r.evidence.clone()).collect(),
        offenders: bad.iter().map(|r| r.detail.clone()).collect(),
        ..first.clone()
    };
    if out.status == Status::Pass {
        out.fix = None;
    }
    out
}

#[cfg(test)]
mod tests;
