//! The default mode's observation: the control plane's Deployments and
//! controller pods, the webhook configurations it installed, the
//! injector's serving Secret, the identity objects, and a server-side
//! dry-run create of a Pod annotated for injection in a scratch
//! namespace (created, then deleted).

use super::super::names::{
    CONTROLLER_SELECTOR, INJECTOR_CONFIG, ISSUER_SECRET, PROBE_POD, SCRATCH_LABEL, SCRATCH_PREFIX,
    SERVING_SECRET, TRUST_ROOTS, probe_pod,
};
use super::super::target::KubeTarget;
use super::call::{CallError, bounded};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::time::Duration;

/// How a webhook is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HookTarget {
    Url(String),
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
    Unset,
}

impl HookTarget {
    /// The TLS name the API server checks the serving certificate for.
    pub(crate) fn server_name(&self) -> Option<String> {
        match self {
            Self::Url(u) => u
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string())),
            Self::Service {
                namespace, name, ..
            } => Some(format!("{name}.{namespace}.svc")),
            Self::Unset => None,
        }
    }
}

impl std::fmt::Display for HookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(u) => write!(f, "url {u}"),
            Self::Service {
                namespace,
                name,
                port,
            } => write!(f, "service {namespace}/{name}:{port}"),
            Self::Unset => write!(f, "no url or service"),
        }
    }
}

/// One webhook of a Mutating- or ValidatingWebhookConfiguration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hook {
    /// `mutatingwebhookconfiguration/NAME` or `validatingwebhookconfiguration/NAME`.
    pub(crate) config: String,
    pub(crate) name: String,
    pub(crate) target: HookTarget,
    pub(crate) ca_bundle: Option<Vec<u8>>,
    pub(crate) failure_policy: Option<String>,
}

fn hook(config: String, name: &str, c: &WebhookClientConfig, fp: Option<&String>) -> Hook {
    let target = match (&c.url, &c.service) {
        (Some(u), _) => HookTarget::Url(u.clone()),
        (None, Some(s)) => HookTarget::Service {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            port: s.port.unwrap_or(443),
        },
        (None, None) => HookTarget::Unset,
    };
    Hook {
        config,
        name: name.into(),
        target,
        ca_bundle: c.ca_bundle.as_ref().map(|b| b.0.clone()),
        failure_policy: fp.cloned(),
    }
}

/// The default mode's observation: the control plane in its namespace.
#[derive(Clone, Debug)]
pub(crate) struct ControlPlaneObs {
    pub(crate) namespace: String,
    pub(crate) deployments: Result<Vec<Deployment>, CallError>,
    /// The controller's pods (`ztmesh.io/control-plane-component=controller`).
    pub(crate) pods: Result<Vec<Pod>, CallError>,
    /// The webhooks of the configurations this control plane installed.
    pub(crate) hooks: Result<Vec<Hook>, CallError>,
    /// The injector's serving Secret.
    pub(crate) serving: Result<Option<Secret>, CallError>,
    /// The Pod the API server answered a server-side dry-run create with,
    /// in a scratch namespace annotated for injection.
    pub(crate) dry_run: Result<Pod, CallError>,
    pub(crate) trust_roots: Result<Option<ConfigMap>, CallError>,
    pub(crate) issuer: Result<Option<Secret>, CallError>,
}

pub(crate) async fn control_plane(client: &kube::Client, target: &KubeTarget) -> ControlPlaneObs {
    let t = target.timeout;
    let ns = &target.namespace;
    let lp = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let deployments = bounded(
        &format!("list Deployments in {ns}"),
        t,
        deployments.list(&lp),
    )
    .await
    .map(|l| l.items);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = ListParams::default().labels(CONTROLLER_SELECTOR);
    let pods = bounded(&format!("list Pods in {ns}"), t, pods.list(&selector))
        .await
        .map(|l| l.items);
    let hooks = webhooks(client, ns, t).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let serving = SERVING_SECRET;
    let serving = bounded(
        &format!("get Secret {ns}/{serving}"),
        t,
        secrets.get_opt(serving),
    )
    .await;
    let issuer = ISSUER_SECRET;
    let issuer = bounded(
        &format!("get Secret {ns}/{issuer}"),
        t,
        secrets.get_opt(issuer),
    )
    .await;
    let roots = TRUST_ROOTS;
    let trust_roots = bounded(
        &format!("get ConfigMap {ns}/{roots}"),
        t,
        Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(roots),
    )
    .await;
    ControlPlaneObs {
        namespace: ns.clone(),
        deployments,
        pods,
        hooks,
        serving,
        dry_run: dry_run(client, t).await,
        trust_roots,
        issuer,
    }
}

/// Every webhook of the configurations labelled for this control plane,
/// and the injector's by its name.
async fn webhooks(client: &kube::Client, ns: &str, t: Duration) -> Result<Vec<Hook>, CallError> {
    let ours = |labels: Option<&std::collections::BTreeMap<String, String>>, name: &str| {
        name == INJECTOR_CONFIG
            || labels
                .and_then(|l| l.get("linkerd.io/control-plane-ns"))
                .is_some_and(|v| v == ns)
    };
    let lp = ListParams::default();
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let mutating = bounded("list MutatingWebhookConfigurations", t, mutating.list(&lp)).await?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let validating = bounded(
        "list ValidatingWebhookConfigurations",
        t,
        validating.list(&lp),
    )
    .await?;
    let mut out = Vec::new();
    for c in mutating.items {
        let name = c.metadata.name.clone().unwrap_or_default();
        if !ours(c.metadata.labels.as_ref(), &name) {
            continue;
        }
        for w in c.webhooks.unwrap_or_default() {
            let config = format!("mutatingwebhookconfiguration/{name}");
            out.push(hook(
                config,
                &w.name,
                &w.client_config,
                w.failure_policy.as_ref(),
            ));
        }
    }
    for c in validating.items {
        let name = c.metadata.name.clone().unwrap_or_default();
        if !ours(c.metadata.labels.as_ref(), &name) {
            continue;
        }
        for w in c.webhooks.unwrap_or_default() {
            let config = format!("validatingwebhookconfiguration/{name}");
            out.push(hook(
                config,
                &w.name,
                &w.client_config,
                w.failure_policy.as_ref(),
            ));
        }
    }
    Ok(out)
}

/// A server-side dry-run create of a Pod annotated for injection, in a
/// scratch namespace created for it and deleted after.
async fn dry_run(client: &kube::Client, t: Duration) -> Result<Pod, CallError> {
    let namespaces = Api::<Namespace>::all(client.clone());
    let scratch: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {
            "generateName": SCRATCH_PREFIX,
            "annotations": {"linkerd.io/inject": "enabled"},
            "labels": {"app.kubernetes.io/part-of": "ztmesh", SCRATCH_LABEL.0: SCRATCH_LABEL.1},
        },
    }))
    .expect("a Namespace");
    let scratch = bounded(
        "create a scratch Namespace",
        t,
        namespaces.create(&PostParams::default(), &scratch),
    )
    .await?;
    let name = scratch.metadata.name.unwrap_or_default();
    let answer = dry_run_in(client, &name, t).await;
    let _ = bounded(
        "delete the scratch Namespace",
        t,
        namespaces.delete(&name, &DeleteParams::default()),
    )
    .await;
    answer
}

/// The dry run in the scratch namespace `name`: its own ServiceAccount
/// first (the API server refuses a pod whose account does not exist, and
/// the controller-manager creates `default` only after a moment).
async fn dry_run_in(client: &kube::Client, name: &str, t: Duration) -> Result<Pod, CallError> {
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": {"name": PROBE_POD},
    }))
    .expect("a ServiceAccount");
    bounded(
        &format!("create ServiceAccount {name}/{}", PROBE_POD),
        t,
        Api::<ServiceAccount>::namespaced(client.clone(), name)
            .create(&PostParams::default(), &account),
    )
    .await?;
    let pod: Pod = serde_json::from_value(probe_pod()).expect("a Pod");
    let pods = Api::<Pod>::namespaced(client.clone(), name);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    bounded(
        &format!("create Pod {name}/{} (dry run)", PROBE_POD),
        t,
        pods.create(&dry, &pod),
    )
    .await
}
