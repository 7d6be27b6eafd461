//! The one async step of a cluster check: every API call (and, for
//! `--proxy`, every probe of a pod's proxy) a mode needs, made once with
//! a bounded timeout each, into plain data ([`PreObs`], [`ControlPlaneObs`],
//! [`ProxyObs`], [`ComplianceObs`]) the groups judge. A failed call is
//! kept as a [`CallError`] where its answer would have been.

use super::KubeTarget;
use crate::check::chain;
use crate::check::mesh::WorkloadObs;
use crate::check::workloads::Workload;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One API call that did not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {reason}")]
pub(crate) struct CallError {
    pub(crate) call: String,
    pub(crate) reason: String,
}

impl CallError {
    pub(crate) fn new(call: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            call: call.into(),
            reason: reason.to_string(),
        }
    }
}

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
/// by its timeout.
/// The client and the API server's URL.
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

/// `call` bounded by `timeout`, its error named `what`.
async fn bounded<T>(
    what: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::new(what, api_reason(&e))),
        Err(_) => Err(CallError::new(
            what,
            format!("no answer within {timeout:?}"),
        )),
    }
}

/// The API server's own message when it gave one.
fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(r) => format!("{} ({})", r.message, r.code),
        e => crate::check::proxy::with_causes(e),
    }
}

/// One access the install needs: a verb on a resource, in a namespace
/// or cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Access {
    pub(crate) verb: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {}{group} in {ns}", self.verb, self.resource),
            None => write!(f, "{} {}{group} (cluster-wide)", self.verb, self.resource),
        }
    }
}

/// What the API server answered for one access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessAnswer {
    pub(crate) access: Access,
    /// Allowed or not, with the authorizer's reason.
    pub(crate) answer: Result<(bool, String), CallError>,
}

/// `--pre`'s observation.
#[derive(Clone, Debug)]
pub(crate) struct PreObs {
    pub(crate) server: String,
    pub(crate) version: Result<Info, CallError>,
    pub(crate) access: Vec<AccessAnswer>,
    pub(crate) crds: Result<Vec<CustomResourceDefinition>, CallError>,
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

/// The scratch namespace's name prefix (the API server completes it).
pub(crate) const SCRATCH_PREFIX: &str = "ztmesh-check-";

pub(crate) async fn control_plane(client: &kube::Client, target: &KubeTarget) -> ControlPlaneObs {
    let t = target.timeout;
    let ns = &target.namespace;
    let lp = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let deployments = bounded(&format!("list Deployments in {ns}"), t, deployments.list(&lp))
        .await
        .map(|l| l.items);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let selector = ListParams::default().labels(super::control_plane::CONTROLLER_SELECTOR);
    let pods = bounded(&format!("list Pods in {ns}"), t, pods.list(&selector))
        .await
        .map(|l| l.items);
    let hooks = webhooks(client, ns, t).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let serving = super::control_plane::SERVING_SECRET;
    let serving = bounded(
        &format!("get Secret {ns}/{serving}"),
        t,
        secrets.get_opt(serving),
    )
    .await;
    let issuer = super::identity::ISSUER_SECRET;
    let issuer = bounded(
        &format!("get Secret {ns}/{issuer}"),
        t,
        secrets.get_opt(issuer),
    )
    .await;
    let roots = super::identity::TRUST_ROOTS;
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
        name == super::control_plane::INJECTOR_CONFIG
            || labels
                .and_then(|l| l.get("linkerd.io/control-plane-ns"))
                .is_some_and(|v| v == ns)
    };
    let lp = ListParams::default();
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let mutating = bounded(
        "list MutatingWebhookConfigurations",
        t,
        mutating.list(&lp),
    )
    .await?;
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
            "labels": {"app.kubernetes.io/part-of": "ztmesh", "ztmesh.io/check": "scratch"},
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
        "metadata": {"name": super::control_plane::PROBE_POD},
    }))
    .expect("a ServiceAccount");
    bounded(
        &format!("create ServiceAccount {name}/{}", super::control_plane::PROBE_POD),
        t,
        Api::<ServiceAccount>::namespaced(client.clone(), name).create(&PostParams::default(), &account),
    )
    .await?;
    let pod: Pod = serde_json::from_value(super::control_plane::probe_pod()).expect("a Pod");
    let pods = Api::<Pod>::namespaced(client.clone(), name);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    bounded(
        &format!("create Pod {name}/{} (dry run)", super::control_plane::PROBE_POD),
        t,
        pods.create(&dry, &pod),
    )
    .await
}

/// `--proxy`'s observation: the injected pods and what their proxies showed.
#[derive(Debug)]
pub(crate) struct ProxyObs {
    pub(crate) pods: Result<Vec<PodProbe>, CallError>,
    pub(crate) trust_roots: Result<Option<ConfigMap>, CallError>,
    pub(crate) issuer: Result<Option<Secret>, CallError>,
}

/// One injected pod, and its proxy's answers when it could be asked.
#[derive(Debug)]
pub(crate) struct PodProbe {
    pub(crate) pod: Pod,
    pub(crate) reach: Reach,
}

/// Whether the pod's proxy could be asked from where check runs.
#[derive(Debug)]
pub(crate) enum Reach {
    /// The pod has no IP (not scheduled or not started).
    NoIp,
    /// Its admin port did not accept a connection from here.
    Unreachable { addr: SocketAddr, reason: String },
    /// Asked: `/ready`, `/metrics` and the chain on its inbound port.
    Probed(Box<WorkloadObs>),
}

/// The identity a pod's proxy certifies itself for: its
/// `LINKERD2_PROXY_IDENTITY_LOCAL_NAME`, else Linkerd's default name.
pub(crate) fn pod_identity(pod: &Pod, control_plane: &str) -> String {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let env = super::proxy::proxy_container(pod)
        .and_then(|c| c.env.as_ref())
        .and_then(|env| {
            env.iter()
                .find(|e| e.name == "LINKERD2_PROXY_IDENTITY_LOCAL_NAME")
        })
        .and_then(|e| e.value.clone());
    match env {
        Some(v) => v.replace("$(_pod_sa)", &sa).replace("$(_pod_ns)", &ns),
        None => format!("{sa}.{ns}.serviceaccount.identity.{control_plane}.cluster.local"),
    }
}

pub(crate) async fn proxies(client: &kube::Client, target: &KubeTarget) -> ProxyObs {
    let t = target.timeout;
    let cp = &target.namespace;
    let secrets = Api::<Secret>::namespaced(client.clone(), cp);
    let issuer = super::identity::ISSUER_SECRET;
    let issuer = bounded(
        &format!("get Secret {cp}/{issuer}"),
        t,
        secrets.get_opt(issuer),
    )
    .await;
    let roots = super::identity::TRUST_ROOTS;
    let trust_roots = bounded(
        &format!("get ConfigMap {cp}/{roots}"),
        t,
        Api::<ConfigMap>::namespaced(client.clone(), cp).get_opt(roots),
    )
    .await;
    let api = match &target.workloads {
        Some(ns) => Api::<Pod>::namespaced(client.clone(), ns),
        None => Api::<Pod>::all(client.clone()),
    };
    let lp = ListParams::default().labels(&format!("linkerd.io/control-plane-ns={cp}"));
    let pods = match bounded("list injected Pods", t, api.list(&lp)).await {
        Err(e) => Err(e),
        Ok(list) => {
            let mut out = Vec::new();
            for pod in list.items {
                let reach = probe(&pod, target).await;
                out.push(PodProbe { pod, reach });
            }
            Ok(out)
        }
    };
    ProxyObs {
        pods,
        trust_roots,
        issuer,
    }
}

/// Asks one pod's proxy, when its admin port accepts a connection from here.
async fn probe(pod: &Pod, target: &KubeTarget) -> Reach {
    let t = target.timeout;
    let Some(ip) = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return Reach::NoIp;
    };
    let admin = SocketAddr::new(ip, target.ports.admin);
    match tokio::time::timeout(t, tokio::net::TcpStream::connect(admin)).await {
        Err(_) => {
            return Reach::Unreachable {
                addr: admin,
                reason: format!("no answer within {t:?}"),
            };
        }
        Ok(Err(e)) if e.kind() != std::io::ErrorKind::ConnectionRefused => {
            return Reach::Unreachable {
                addr: admin,
                reason: e.to_string(),
            };
        }
        // Refused: the pod is reachable and its proxy is not listening;
        // the probes below say so.
        Ok(Err(_)) => {}
        // Something accepts: a proxy's admin server answers `/live` with
        // 200; anything else (a proxy or gateway on the way intercepting
        // the pod network) means the pod itself is not reached.
        Ok(Ok(_)) => {
            if let Err(e) = crate::viz::client::get_text(&admin.to_string(), "/live", t).await {
                return Reach::Unreachable {
                    addr: admin,
                    reason: format!(
                        "something accepts connections there but is not a proxy's admin server: {}",
                        crate::check::proxy::with_causes(&e)
                    ),
                };
            }
        }
    }
    let identity = pod_identity(pod, &target.namespace);
    let workload = Workload {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        workload: ztmesh_policy::WorkloadRef::Pod(pod.metadata.name.clone().unwrap_or_default()),
        ip,
        identity: identity.clone(),
        ports: Vec::new(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        explicit: false,
    };
    let ready = crate::viz::client::get_text(&admin.to_string(), "/ready", t)
        .await
        .map(|_| ());
    let metrics = crate::viz::scrape::fetch(admin, t)
        .await
        .map(|text| crate::viz::scrape::parse(&text));
    let inbound = SocketAddr::new(ip, target.ports.inbound);
    let chain = chain::fetch(inbound, &identity, t).await;
    Reach::Probed(Box::new(WorkloadObs {
        workload,
        admin,
        ready,
        metrics,
        chain,
        default_policy: None,
        probed_ports: Vec::new(),
        open_app_ports: Vec::new(),
    }))
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
