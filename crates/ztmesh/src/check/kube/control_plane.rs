//! `check --kubernetes`'s control-plane group: the control plane's
//! Deployments have their replicas available, the controller's pods are
//! ready, the API server reaches the proxy injector (a server-side
//! dry-run create of a Pod annotated `linkerd.io/inject: enabled` comes
//! back carrying `linkerd-proxy`), and every webhook's `caBundle`
//! verifies the serving certificate in `linkerd-proxy-injector-k8s-tls`
//! for the name the API server calls it by ([`crate::check::chain::verify`]).
//! Pure over [`ControlPlaneObs`].

use super::names::{CONTROLLER_SELECTOR, INJECTOR_CONFIG, PROXY_CONTAINER, SERVING_SECRET};
use super::observe::{ControlPlaneObs, Hook};
use super::pods::{has_proxy, not_ready};
use crate::check::result::{CheckResult, Group};
use k8s_openapi::api::apps::v1::Deployment;
use std::time::SystemTime;

fn install(ns: &str) -> String {
    format!("ztmesh install --kubernetes --namespace {ns} | kubectl apply -f -")
}

pub(crate) fn checks(obs: &ControlPlaneObs, now: SystemTime) -> Vec<CheckResult> {
    let mut out = vec![
        deployments(obs),
        pods(obs),
        injection(obs),
        ca_bundles(obs, now),
    ];
    out.extend(super::identity::checks(
        &obs.trust_roots,
        &obs.issuer,
        &obs.namespace,
        now,
    ));
    out
}

fn deployments(obs: &ControlPlaneObs) -> CheckResult {
    let (id, title) = ("deployments", "control plane Deployments ready");
    let ns = &obs.namespace;
    let list = match &obs.deployments {
        Err(e) => {
            return CheckResult::fail(Group::ControlPlane, id, title, e.to_string(), install(ns));
        }
        Ok(l) if l.is_empty() => {
            return CheckResult::fail(
                Group::ControlPlane,
                id,
                title,
                format!("no Deployment in namespace {ns}"),
                install(ns),
            );
        }
        Ok(l) => l,
    };
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    for d in list {
        let (name, want, available) = replicas(d);
        evidence.push(format!(
            "deployment/{name}: {available} of {want} available"
        ));
        if available < want {
            offenders.push(format!(
                "deployment/{name}: {available} of {want} available"
            ));
        }
    }
    if offenders.is_empty() {
        CheckResult::pass(
            Group::ControlPlane,
            id,
            title,
            format!("{} Deployment(s), all replicas available", list.len()),
        )
    } else {
        CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!("{} of {} not available", offenders.len(), list.len()),
            format!("kubectl -n {ns} describe deployment; kubectl -n {ns} get pods (are they scheduled, is the image pulled?)"),
        )
        .offenders(offenders)
    }
    .evidence(evidence)
}

fn replicas(d: &Deployment) -> (String, i32, i32) {
    let name = d.metadata.name.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    (name, want, available)
}

fn pods(obs: &ControlPlaneObs) -> CheckResult {
    let (id, title) = ("controller-pods", "controller pods ready");
    let ns = &obs.namespace;
    let list = match &obs.pods {
        Err(e) => {
            return CheckResult::fail(Group::ControlPlane, id, title, e.to_string(), install(ns));
        }
        Ok(l) if l.is_empty() => {
            return CheckResult::fail(
                Group::ControlPlane,
                id,
                title,
                format!("no pod labelled {CONTROLLER_SELECTOR} in {ns}"),
                format!("kubectl -n {ns} describe deployment ztmesh-controller"),
            );
        }
        Ok(l) => l,
    };
    let offenders: Vec<String> = list
        .iter()
        .filter_map(|p| {
            let why = not_ready(p)?;
            Some(format!(
                "pod/{}: {why}",
                p.metadata.name.clone().unwrap_or_default()
            ))
        })
        .collect();
    if offenders.is_empty() {
        CheckResult::pass(
            Group::ControlPlane,
            id,
            title,
            format!("{} pod(s) ready", list.len()),
        )
    } else {
        CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!("{} of {} not ready", offenders.len(), list.len()),
            format!("kubectl -n {ns} describe pod -l {CONTROLLER_SELECTOR}; kubectl -n {ns} logs -l {CONTROLLER_SELECTOR}"),
        )
        .offenders(offenders)
    }
}

fn injection(obs: &ControlPlaneObs) -> CheckResult {
    let (id, title) = (
        "injector-reachable",
        "proxy injector reachable from the API server",
    );
    let ns = &obs.namespace;
    let injectors: Vec<&Hook> = obs
        .hooks
        .iter()
        .flatten()
        .filter(|h| h.config.starts_with("mutatingwebhookconfiguration/"))
        .collect();
    let evidence: Vec<String> = injectors
        .iter()
        .map(|h| {
            format!(
                "{} webhook {} -> {} (failurePolicy {})",
                h.config,
                h.name,
                h.target,
                h.failure_policy.as_deref().unwrap_or("Fail")
            )
        })
        .collect();
    let ignore = injectors
        .iter()
        .any(|h| h.failure_policy.as_deref() == Some("Ignore"));
    let out = match &obs.dry_run {
        Ok(pod) if has_proxy(pod) => CheckResult::pass(
            Group::ControlPlane,
            id,
            title,
            format!(
                "a dry-run Pod annotated linkerd.io/inject=enabled came back with {PROXY_CONTAINER}"
            ),
        ),
        Ok(_) if injectors.is_empty() => CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!("no MutatingWebhookConfiguration {INJECTOR_CONFIG}: pods are not injected"),
            install(ns),
        ),
        Ok(_) => CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!(
                "a dry-run Pod annotated linkerd.io/inject=enabled came back without {PROXY_CONTAINER}: the API server did not reach the injector{}",
                if ignore {
                    " (its failurePolicy Ignore admitted the pod uninjected; the API server's log says why)"
                } else {
                    ""
                }
            ),
            format!(
                "make the webhook's target answer HTTPS from the API server (controller pods ready, Service {ns}/linkerd-proxy-injector with endpoints, or --webhook-url reachable)"
            ),
        ),
        Err(e) if e.reason.contains("webhook") => CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!("the API server refused the dry-run Pod: {e}"),
            "make the webhook's target answer HTTPS from the API server",
        ),
        Err(e) => CheckResult::warn(
            Group::ControlPlane,
            id,
            title,
            format!("not tested: {e}"),
            "allow creating a namespace and dry-run pods in it (the check deletes the namespace after)",
        ),
    };
    out.evidence(evidence)
}

fn ca_bundles(obs: &ControlPlaneObs, now: SystemTime) -> CheckResult {
    let (id, title) = (
        "webhook-ca-bundle",
        "webhook caBundle verifies the serving certificate",
    );
    let ns = &obs.namespace;
    let reapply = install(ns);
    let hooks = match &obs.hooks {
        Err(e) => return CheckResult::fail(Group::ControlPlane, id, title, e.to_string(), reapply),
        Ok(h) if h.is_empty() => {
            return CheckResult::fail(
                Group::ControlPlane,
                id,
                title,
                "no webhook configuration of this control plane",
                reapply,
            );
        }
        Ok(h) => h,
    };
    let serving = match &obs.serving {
        Err(e) => return CheckResult::fail(Group::ControlPlane, id, title, e.to_string(), reapply),
        Ok(None) => {
            return CheckResult::fail(
                Group::ControlPlane,
                id,
                title,
                format!("Secret {ns}/{SERVING_SECRET} does not exist"),
                reapply,
            );
        }
        Ok(Some(s)) => s.data.clone().unwrap_or_default(),
    };
    let chain = serving
        .get("tls.crt")
        .and_then(|c| ztmesh_identity::pem::certificates(&c.0, "tls.crt").ok())
        .unwrap_or_default();
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    for h in hooks {
        let who = format!("{} webhook {}", h.config, h.name);
        let Some(bundle) = &h.ca_bundle else {
            offenders.push(format!("{who}: no caBundle"));
            continue;
        };
        let Some(name) = h.target.server_name() else {
            offenders.push(format!("{who}: {}", h.target));
            continue;
        };
        match crate::check::chain::verify(&chain, bundle, &name, now) {
            Ok(()) => evidence.push(format!("{who}: caBundle verifies tls.crt for {name}")),
            Err(e) => offenders.push(format!(
                "{who}: caBundle does not verify {SERVING_SECRET}'s tls.crt for {name}: {e}"
            )),
        }
        if serving.get("ca.crt").map(|c| &c.0) != Some(bundle) {
            evidence.push(format!(
                "{who}: caBundle differs from {SERVING_SECRET}'s ca.crt"
            ));
        }
    }
    if offenders.is_empty() {
        CheckResult::pass(
            Group::ControlPlane,
            id,
            title,
            format!("{} webhook(s)", hooks.len()),
        )
    } else {
        CheckResult::fail(
            Group::ControlPlane,
            id,
            title,
            format!("{} of {} webhook(s) would be refused by the API server's TLS check", offenders.len(), hooks.len()),
            format!("apply the webhook configurations and {SERVING_SECRET} from the same `{reapply}` run"),
        )
        .offenders(offenders)
    }
    .evidence(evidence)
}

#[cfg(test)]
mod tests;
