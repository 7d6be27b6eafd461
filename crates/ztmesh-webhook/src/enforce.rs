//! Injection enforcement, as a pure function: [`decide`] judges a Pod
//! being created in a namespace. A pod carries the proxy when it has a
//! `linkerd-proxy` container, or a `linkerd-proxy` init container with
//! `restartPolicy: Always` (a native sidecar). In an enforced namespace a
//! pod without it is refused, unless annotated
//! [`EXEMPT_ANNOTATION`](crate::EXEMPT_ANNOTATION) with a non-empty reason.

use crate::{ENFORCE_LABEL, EXEMPT_ANNOTATION, INJECT_ANNOTATION, PROXY_CONTAINER};
use serde_json::Value;

/// The verdict on one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The namespace is not enforced.
    NotEnforced,
    /// The pod carries the proxy.
    Meshed(ProxyForm),
    /// Admitted without the proxy by its exemption: a bypass.
    Exempt { reason: String },
    /// Refused.
    Refused(Refusal),
}

/// How the pod carries the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyForm {
    Container,
    NativeSidecar,
}

/// Why a pod is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `linkerd-proxy` container. `inject` is the pod's own
    /// `linkerd.io/inject` annotation, if any.
    NoProxy { inject: Option<String> },
    /// `linkerd-proxy` is an init container that is not a native sidecar
    /// (it would exit before the app starts).
    InitNotSidecar,
    /// The exemption annotation has no reason.
    EmptyExemption,
}

impl Refusal {
    /// The message the API server returns to the client: the reason, and
    /// the ways out.
    pub fn message(&self, namespace: &str, pod: &str) -> String {
        let way_out = format!(
            "inject it (annotate namespace {namespace:?} or the pod {INJECT_ANNOTATION}=enabled \
             for the proxy injector, or run its manifest through `ztmesh inject`), or exempt \
             it with the annotation {EXEMPT_ANNOTATION}=<reason> (recorded as a bypass)"
        );
        let enforced = format!(
            "namespace {namespace:?} enforces proxy injection (label {ENFORCE_LABEL}=true)"
        );
        match self {
            Refusal::NoProxy { inject } => {
                let disabled = match inject.as_deref() {
                    Some("disabled") => {
                        format!(
                            " (its annotation {INJECT_ANNOTATION}=disabled turns injection off)"
                        )
                    }
                    _ => String::new(),
                };
                format!(
                    "pod {pod:?} has no {PROXY_CONTAINER} container{disabled}, and {enforced}: {way_out}"
                )
            }
            Refusal::InitNotSidecar => format!(
                "pod {pod:?} has {PROXY_CONTAINER} as an init container without restartPolicy: Always \
                 (not a native sidecar: it would not run beside the app), and {enforced}: {way_out}"
            ),
            Refusal::EmptyExemption => format!(
                "pod {pod:?} is exempted from proxy injection without a reason: the annotation \
                 {EXEMPT_ANNOTATION} must say why (e.g. {EXEMPT_ANNOTATION}=\"one-off migration, ticket 42\"), \
                 since {enforced}"
            ),
        }
    }
}

/// The verdict on `pod` (a Pod object) created in a namespace that is
/// `enforced` or not.
pub fn decide(pod: &Value, enforced: bool) -> Decision {
    if !enforced {
        return Decision::NotEnforced;
    }
    let spec = &pod["spec"];
    let named = |c: &&Value| c["name"].as_str() == Some(PROXY_CONTAINER);
    let list = |field: &str| spec[field].as_array().cloned().unwrap_or_default();
    if list("containers").iter().any(|c| named(&c)) {
        return Decision::Meshed(ProxyForm::Container);
    }
    let init = list("initContainers");
    let init_proxy = init.iter().find(named);
    if init_proxy.is_some_and(|c| c["restartPolicy"].as_str() == Some("Always")) {
        return Decision::Meshed(ProxyForm::NativeSidecar);
    }
    let annotations = &pod["metadata"]["annotations"];
    match annotations[EXEMPT_ANNOTATION].as_str() {
        Some(reason) if !reason.trim().is_empty() => Decision::Exempt {
            reason: reason.trim().to_string(),
        },
        Some(_) => Decision::Refused(Refusal::EmptyExemption),
        None if init_proxy.is_some() => Decision::Refused(Refusal::InitNotSidecar),
        None => Decision::Refused(Refusal::NoProxy {
            inject: annotations[INJECT_ANNOTATION].as_str().map(String::from),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decisions() {
        let app = json!({"name": "app", "image": "nginx"});
        let proxy = json!({"name": "linkerd-proxy", "image": "proxy"});
        let sidecar = json!({"name": "linkerd-proxy", "image": "proxy", "restartPolicy": "Always"});
        let pod = |annotations: Value, init: Value, containers: Value| {
            json!({
                "metadata": {"name": "web", "annotations": annotations},
                "spec": {"initContainers": init, "containers": containers},
            })
        };
        let none = json!({});
        let exempt = |r: &str| json!({EXEMPT_ANNOTATION: r});
        // (case, pod, enforced, expected)
        let cases = [
            (
                "not enforced",
                pod(none.clone(), json!([]), json!([app])),
                false,
                Decision::NotEnforced,
            ),
            (
                "proxy container",
                pod(none.clone(), json!([]), json!([app, proxy])),
                true,
                Decision::Meshed(ProxyForm::Container),
            ),
            (
                "native sidecar",
                pod(none.clone(), json!([sidecar]), json!([app])),
                true,
                Decision::Meshed(ProxyForm::NativeSidecar),
            ),
            (
                "no proxy",
                pod(none.clone(), json!([]), json!([app])),
                true,
                Decision::Refused(Refusal::NoProxy { inject: None }),
            ),
            (
                "no proxy, inject disabled",
                pod(
                    json!({INJECT_ANNOTATION: "disabled"}),
                    json!([]),
                    json!([app]),
                ),
                true,
                Decision::Refused(Refusal::NoProxy {
                    inject: Some("disabled".into()),
                }),
            ),
            (
                "proxy named on another container's init, not a sidecar",
                pod(none.clone(), json!([proxy]), json!([app])),
                true,
                Decision::Refused(Refusal::InitNotSidecar),
            ),
            (
                "exempt",
                pod(exempt(" ticket 42 "), json!([]), json!([app])),
                true,
                Decision::Exempt {
                    reason: "ticket 42".into(),
                },
            ),
            (
                "exempt without a reason",
                pod(exempt("  "), json!([]), json!([app])),
                true,
                Decision::Refused(Refusal::EmptyExemption),
            ),
            (
                "meshed and exempt: meshed",
                pod(exempt("x"), json!([]), json!([app, proxy])),
                true,
                Decision::Meshed(ProxyForm::Container),
            ),
            (
                "no spec at all",
                json!({"metadata": {"name": "x"}}),
                true,
                Decision::Refused(Refusal::NoProxy { inject: None }),
            ),
            (
                "an exemption's value that is not a string",
                json!({"metadata": {"annotations": {EXEMPT_ANNOTATION: 3}}}),
                true,
                Decision::Refused(Refusal::NoProxy { inject: None }),
            ),
        ];
        for (case, pod, enforced, expected) in cases {
            assert_eq!(decide(&pod, enforced), expected, "{case}");
        }
    }

    #[test]
    fn messages_name_the_reason_and_the_way_out() {
        // (refusal, must contain)
        let cases = [
            (
                Refusal::NoProxy { inject: None },
                vec![
                    "pod \"web\" has no linkerd-proxy container",
                    "config.ztmesh.io/enforce-injection=true",
                    "linkerd.io/inject=enabled",
                    "config.ztmesh.io/injection-exempt=<reason>",
                ],
            ),
            (
                Refusal::NoProxy {
                    inject: Some("disabled".into()),
                },
                vec!["linkerd.io/inject=disabled turns injection off"],
            ),
            (
                Refusal::InitNotSidecar,
                vec!["restartPolicy: Always", "linkerd.io/inject=enabled"],
            ),
            (
                Refusal::EmptyExemption,
                vec!["without a reason", "must say why"],
            ),
        ];
        for (refusal, needles) in cases {
            let message = refusal.message("shop", "web");
            for needle in needles {
                assert!(message.contains(needle), "{refusal:?}: {message}");
            }
            assert!(message.contains("\"shop\""), "{message}");
        }
    }
}
