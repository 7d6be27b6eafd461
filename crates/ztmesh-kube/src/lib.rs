//! The Kubernetes resource store: `ztmesh controller --kubernetes`.
//!
//! kube-rs watchers over Namespaces, ServiceAccounts, Services, Pods,
//! EndpointSlices (a Service's endpoints on Kubernetes, instead of its
//! selector) and Linkerd's and the Gateway API's custom resources feed the controller's
//! policy, outbound and destination indexes through the same apply /
//! delete calls as the manifests directory ([`ztmesh_controller::StoreFeed`]).
//! Every object is read by ztmesh-resources' own loader, so an object is
//! refused for exactly the reasons a manifest file would be; a refused
//! object never stops its watch, keeps its last good version in force,
//! is logged with its namespace/name and field, and is counted in
//! `ztmesh_kube_objects_rejected_total`. A pod is meshed as Linkerd
//! decides it: labelled `linkerd.io/control-plane-ns=<control plane namespace>`.
//!
//! Layout, leaf first:
//! - [`issuer_secret`]: the trust roots ConfigMap and the issuer Secret
//!   (Linkerd's or an external issuer's) copied into the identity
//!   directory, where the controller's issuer reload validates them.
//! - [`kinds`]: what is watched, and the check that the core kinds are
//!   Kubernetes 1.28's (k8s-openapi 0.26 `latest` with kube 2.0).
//! - [`translate`]: one API object to one resource, or its rejection.
//! - [`metrics`]: the rejection counter, objects in force by kind, synced
//!   (served on the controller's admin address, `/metrics`).
//! - [`last_good`]: each custom resource's last good version on disk
//!   (atomic writes), so a refused object keeps it across restarts.
//! - [`state`]: watch events to index updates, what is in force (no I/O).
//! - [`token_review`]: Certify's tokens checked by the API server's
//!   TokenReview (audience `identity.l5d.io`), for the controller's
//!   `Builder::token_reviewer`.
//! - [`namespaces`]: Namespaces' labels and annotations for the admission
//!   webhook (ztmesh-webhook's `Namespaces`), from a metadata reflector.
//! - [`lease`]: one leader among replicas, by a coordination.k8s.io Lease.
//! - [`status`]: HTTPRoute status (Accepted, ResolvedRefs) as Linkerd
//!   writes it, by the leader only.
//! - [`trust_roots`]: the trust anchors copied into each namespace the
//!   injector serves, for proxies to follow a rotated bundle.
//! - [`watch`]: discovery, the watchers and the task that feeds the
//!   controller.
//!
//! The domain crates and the proxy never link this crate (kube stays in
//! this adapter; `scripts/check-proxy-deps` checks the proxy).

#![forbid(unsafe_code)]

pub mod issuer_secret;
pub mod kinds;
pub mod last_good;
pub mod lease;
pub mod metrics;
pub mod namespaces;
pub mod state;
pub mod status;
pub mod token_review;
pub mod translate;
pub mod trust_roots;
pub mod watch;

pub use metrics::Metrics;
pub use watch::Error;

/// A client from `path` (a kubeconfig file), or, without one, from
/// `KUBECONFIG`, `~/.kube/config` or the in-cluster service account.
pub async fn client(path: Option<&std::path::Path>) -> Result<kube::Client, Error> {
    let config = match path {
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(kube::Error::InferConfig(e)))?,
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.into(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.into(),
                    source,
                })?
        }
    };
    kube::Client::try_from(config).map_err(Error::Config)
}

/// The store of a controller replica, with its election and status
/// writer ([`start_replica`]); dropping it stops them as a killed replica
/// stops (its Lease left to expire), [`Replica::step_down`] gracefully.
pub struct Replica {
    pub feed: Option<ztmesh_controller::StoreFeed>,
    election: Option<lease::Election>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Replica {
    /// Stops writing status and releases the Lease if this replica holds
    /// it, so another replica leads at once (on SIGTERM); a failure is
    /// logged (the Lease then expires as if the replica were killed).
    pub async fn step_down(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(election) = self.election.take()
            && let Err(error) = election.step_down().await
        {
            tracing::warn!(%error, "the Lease could not be released; it expires instead");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// As [`start`], plus this replica's part in the election of the one that
/// writes HTTPRoute status (the Lease `ztmesh-controller-write` in
/// `control_plane_ns`; `replica` names this one, e.g. the pod's name),
/// and, with `last_good`, each custom resource's last good version kept
/// there across restarts.
pub async fn start_replica(
    client: kube::Client,
    control_plane_ns: &str,
    replica: &str,
    metrics: Metrics,
    last_good: Option<last_good::LastGoodDir>,
) -> Result<Replica, Error> {
    let kinds = watch::discover(&client).await?;
    let election = lease::elect(
        client.clone(),
        lease::LeaseConfig::new(control_plane_ns, replica),
    );
    let status = status::run_rediscovering(client.clone(), kinds.clone(), election.leading());
    let feed = watch::start_with(client, kinds, control_plane_ns, metrics, last_good);
    Ok(Replica {
        feed: Some(feed),
        election: Some(election),
        tasks: vec![status],
    })
}

/// Discovers what to watch and starts the store for the controller whose
/// control plane lives in `control_plane_ns`.
pub async fn start(
    client: kube::Client,
    control_plane_ns: &str,
    metrics: Metrics,
) -> Result<ztmesh_controller::StoreFeed, Error> {
    start_with(client, control_plane_ns, metrics, None).await
}

/// As [`start`], keeping each custom resource's last good version in
/// `last_good` across restarts.
pub async fn start_with(
    client: kube::Client,
    control_plane_ns: &str,
    metrics: Metrics,
    last_good: Option<last_good::LastGoodDir>,
) -> Result<ztmesh_controller::StoreFeed, Error> {
    let kinds = watch::discover(&client).await?;
    Ok(watch::start_with(
        client,
        kinds,
        control_plane_ns,
        metrics,
        last_good,
    ))
}
