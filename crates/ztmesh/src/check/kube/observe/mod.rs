//! The one async step of a cluster check: every API call (and, for
//! `--proxy`, every probe of a pod's proxy) a mode needs, made once with
//! a bounded timeout each, into plain data ([`PreObs`], [`ControlPlaneObs`],
//! [`ProxyObs`], [`ComplianceObs`]) the groups judge. A failed call is
//! kept as a [`CallError`] ([`call`]) where its answer would have been.
//! This file holds the client, `--pre`'s and `--compliance`'s observations;
//! [`control_plane`] the default mode's (with the injection dry run),
//! [`proxy`] `--proxy`'s (the bounded probes of each pod's proxy).

pub(crate) mod call;
pub(crate) mod control_plane;
pub(crate) mod proxy;

pub(crate) use control_plane::{ControlPlaneObs, Hook, control_plane};
pub(crate) use proxy::{PodProbe, ProxyObs, Reach, proxies};

use super::pre::{AccessAnswer, PreObs};
use super::target::KubeTarget;
use call::{CallError, bounded};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};

/// No client could be made from the kubeconfig.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no kubeconfig found: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("building a client: {0}")]
    Client(#[from] kube::Error),
}

/// A client for `target`'s kubeconfig and context, each request bounded
/// by its timeout; and the API server's URL.
pub(crate) async fn client(target: &KubeTarget) -> Result<(kube::Client, String), ClientError> {
    let options = kube::config::KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let mut config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await?,
        (None, None) => kube::Config::infer().await?,
    };
    config.connect_timeout = Some(target.timeout);
    config.read_timeout = Some(target.timeout);
    config.write_timeout = Some(target.timeout);
    let server = config.cluster_url.to_string();
    Ok((kube::Client::try_from(config)?, server))
}

/// The API server's version; with `full`, the install's accesses and the CRDs too.
pub(crate) async fn pre(
    client: &kube::Client,
    server: String,
    target: &KubeTarget,
    full: bool,
) -> PreObs {
    let t = target.timeout;
    let version = bounded("GET /version", t, client.apiserver_version()).await;
    let mut access = Vec::new();
    if !full || version.is_err() {
        return PreObs {
            server,
            version,
            access,
            crds: Ok(Vec::new()),
        };
    }
    for a in super::pre::needed(&target.namespace).all() {
        // `httproutes/status` is a resource and its subresource.
        let (resource, subresource) = match a.resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (a.resource.as_str(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(a.verb.clone()),
                    group: Some(a.group.clone()),
                    resource: Some(resource.to_string()),
                    subresource: subresource.map(String::from),
                    namespace: a.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let answer = bounded(
            "create SelfSubjectAccessReview",
            t,
            api.create(&PostParams::default(), &review),
        )
        .await
        .map(|r| {
            let s = r.status.unwrap_or_default();
            (s.allowed, s.reason.unwrap_or_default())
        });
        access.push(AccessAnswer { access: a, answer });
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = bounded(
        "list CustomResourceDefinitions",
        t,
        crds.list(&ListParams::default()),
    )
    .await
    .map(|l| l.items);
    PreObs {
        server,
        version,
        access,
        crds,
    }
}

/// `--compliance`'s observation, cluster-wide (or one namespace).
#[derive(Clone, Debug)]
pub(crate) struct ComplianceObs {
    pub(crate) control_plane: String,
    pub(crate) namespaces: Result<Vec<Namespace>, CallError>,
    pub(crate) pods: Result<Vec<Pod>, CallError>,
    pub(crate) policies: Result<Vec<NetworkPolicy>, CallError>,
}

pub(crate) async fn compliance(client: &kube::Client, target: &KubeTarget) -> ComplianceObs {
    let t = target.timeout;
    let lp = ListParams::default();
    let namespaces = match &target.workloads {
        Some(ns) => bounded(
            &format!("get Namespace {ns}"),
            t,
            Api::<Namespace>::all(client.clone()).get(ns),
        )
        .await
        .map(|n| vec![n]),
        None => bounded(
            "list Namespaces",
            t,
            Api::<Namespace>::all(client.clone()).list(&lp),
        )
        .await
        .map(|l| l.items),
    };
    let (pods, policies) = match &target.workloads {
        Some(ns) => (
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<NetworkPolicy>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let pods = bounded("list Pods", t, pods.list(&lp))
        .await
        .map(|l| l.items);
    let policies = bounded("list NetworkPolicies", t, policies.list(&lp))
        .await
        .map(|l| l.items);
    ComplianceObs {
        control_plane: target.namespace.clone(),
        namespaces,
        pods,
        policies,
    }
}
