//! `--proxy`'s observation: the injected pods, and for each whose admin
//! port answers as a proxy's from here, `/ready`, `/metrics` and the
//! chain on its inbound port, each bounded by the timeout.

use super::super::names::{ISSUER_SECRET, TRUST_ROOTS};
use super::super::pods::pod_identity;
use super::super::target::KubeTarget;
use super::call::{CallError, bounded};
use crate::check::chain;
use crate::check::mesh::WorkloadObs;
use crate::check::workloads::Workload;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams};
use std::net::{IpAddr, SocketAddr};

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

/// How many pods' proxies are probed at once.
const PROBES_AT_ONCE: usize = 16;

pub(crate) async fn proxies(client: &kube::Client, target: &KubeTarget) -> ProxyObs {
    let t = target.timeout;
    let cp = &target.namespace;
    let secrets = Api::<Secret>::namespaced(client.clone(), cp);
    let issuer = ISSUER_SECRET;
    let issuer = bounded(
        &format!("get Secret {cp}/{issuer}"),
        t,
        secrets.get_opt(issuer),
    )
    .await;
    let roots = TRUST_ROOTS;
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
        // Several pods at once, in order: an unreachable pod costs a
        // timeout, not a timeout per pod in turn.
        Ok(list) => Ok(futures::stream::iter(list.items)
            .map(|pod| async move {
                let reach = probe(&pod, target).await;
                PodProbe { pod, reach }
            })
            .buffered(PROBES_AT_ONCE)
            .collect()
            .await),
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
    let admin = SocketAddr::new(ip, target.admin_port);
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
                        crate::check::proxy::with_causes(&e).trim_end_matches([':', ' '])
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
    let inbound = SocketAddr::new(ip, target.inbound_port);
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
