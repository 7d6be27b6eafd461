//! The watches: one kube-runtime watcher per kind, all feeding one task
//! that owns the [`StoreState`] and sends its updates to the controller.
//! A watch error (the server gone, a permission missing) is logged and the
//! watcher retries with backoff; the indexes keep their state meanwhile.
//! With a [`LastGoodDir`], the records are loaded before the first event
//! and the state's changes to them written after each event (a write that
//! fails is logged; the store goes on).

use crate::kinds::{self, Kind};
use crate::last_good::LastGoodDir;
use crate::metrics::Metrics;
use crate::state::{StoreState, WatchEvent};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use ztmesh_controller::{StoreEvent, StoreFeed};

/// Finding the custom resources on the server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("discovering API group {group}")]
    Discovery {
        group: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("reading the Kubernetes client configuration (KUBECONFIG or in-cluster)")]
    Config(#[source] kube::Error),
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
}

/// The kinds to watch on this server: the core ones, and each custom
/// resource its server serves (at the most preferred version serving it). A custom
/// resource not installed is left out, with a warning.
pub async fn discover(client: &kube::Client) -> Result<Vec<(Kind, ApiResource)>, Error> {
    let mut out = kinds::core();
    let mut groups = std::collections::BTreeMap::new();
    for kind in kinds::CUSTOM {
        if !groups.contains_key(kind.group) {
            let found = match kube::discovery::group(client, kind.group).await {
                Ok(g) => Some(g),
                Err(e) if group_absent(&e) => None,
                Err(source) => {
                    return Err(Error::Discovery {
                        group: kind.group,
                        source,
                    });
                }
            };
            groups.insert(kind.group, found);
        }
        match groups[kind.group]
            .as_ref()
            .and_then(|g| served_version(g, kind.kind))
        {
            Some(ar) => out.push((kind, ar)),
            // Optional: SPIRE's CRD, installed with SPIRE, not by us.
            None if kind.group == "spire.spiffe.io" => tracing::info!(
                %kind,
                "not served by this API server (SPIRE's CustomResourceDefinition is not installed); federation from ClusterFederatedTrustDomain resources is off"
            ),
            None => tracing::warn!(
                %kind,
                "not served by this API server (its CustomResourceDefinition is not installed: `ztmesh install --crds`); not watched"
            ),
        }
    }
    Ok(out)
}

/// Whether discovering a group failed only because no CRD serves it: the
/// server does not list it (kube's `MissingApiGroup`), or answers 404.
fn group_absent(error: &kube::Error) -> bool {
    use kube::error::DiscoveryError;
    match error {
        kube::Error::Api(e) => e.code == 404,
        kube::Error::Discovery(DiscoveryError::MissingApiGroup(_)) => true,
        _ => false,
    }
}

/// The version to watch `kind` at: among the server's versions serving it
/// (the group's preferred first; `ApiGroup::recommended_kind` looks in the
/// preferred version only, and Linkerd's kinds are spread over versions:
/// AuthorizationPolicy is v1alpha1 only while Server's newest is v1beta3),
/// the first ztmesh-resources reads as it is, else the first at all (its
/// objects are then refused, saying which versions to use).
fn served_version(group: &kube::discovery::ApiGroup, kind: &str) -> Option<ApiResource> {
    let serving: Vec<ApiResource> = group
        .versions()
        .filter_map(|v| {
            group
                .versioned_resources(v)
                .into_iter()
                .find(|(ar, _)| ar.kind == kind)
                .map(|(ar, _)| ar)
        })
        .collect();
    serving
        .iter()
        .find(|ar| crate::translate::reads_version(&ar.api_version, kind))
        .or(serving.first())
        .cloned()
}

/// How often the custom resources not served at start are looked for again.
pub(crate) const REDISCOVER: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts watching `kinds` (from [`discover`]) and returns the feed the
/// controller's builder takes; a custom resource installed later is
/// watched within [`REDISCOVER`]. The watches stop when the feed is dropped.
pub fn start(
    client: kube::Client,
    kinds: Vec<(Kind, ApiResource)>,
    control_plane_ns: &str,
    metrics: Metrics,
) -> StoreFeed {
    start_with(client, kinds, control_plane_ns, metrics, None)
}

/// As [`start`], keeping each custom resource's last good version in
/// `last_good` across restarts (see [`crate::state`]).
pub fn start_with(
    client: kube::Client,
    kinds: Vec<(Kind, ApiResource)>,
    control_plane_ns: &str,
    metrics: Metrics,
    last_good: Option<LastGoodDir>,
) -> StoreFeed {
    let (events_tx, events) = mpsc::channel(1024);
    let (watch_tx, mut watch_rx) = mpsc::channel::<(usize, WatchEvent)>(1024);
    let mut state = StoreState::new(
        kinds.iter().map(|(k, _)| *k).collect(),
        control_plane_ns,
        metrics,
    );
    if let Some(dir) = &last_good {
        let (records, problems) = dir.load();
        for problem in problems {
            tracing::warn!(error = %problem, "a record of a last good version is unreadable; ignored");
        }
        tracing::info!(
            dir = %dir.path().display(),
            recorded = records.len(),
            "last good versions of the custom resources recorded in this directory"
        );
        state = state.with_last_good(records);
    }
    // Endpoints come from the watched EndpointSlices, not selectors.
    events_tx
        .try_send(StoreEvent::EndpointsFromSlices)
        .expect("an empty channel takes one event");
    let status = Arc::new(Mutex::new(state.status_json()));
    let mut watchers = tokio::task::JoinSet::new();
    for (i, (kind, ar)) in kinds.into_iter().enumerate() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        watchers.spawn(watch_kind(i, kind, ar, api, watch_tx.clone()));
    }
    let shown = status.clone();
    let all = kinds::core().len() + kinds::CUSTOM.len();
    tokio::spawn(async move {
        // Owned here: the watchers stop with this task.
        let mut watchers = watchers;
        let start = tokio::time::Instant::now() + REDISCOVER;
        let mut rediscover = tokio::time::interval_at(start, REDISCOVER);
        loop {
            tokio::select! {
                event = watch_rx.recv() => {
                    let Some((kind, event)) = event else { return };
                    let updates = state.handle(kind, event);
                    let records = state.take_records();
                    if let Some(dir) = last_good.clone().filter(|_| !records.is_empty()) {
                        // Written before the updates go out, in order.
                        let written = tokio::task::spawn_blocking(move || dir.apply(records)).await;
                        match written {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => tracing::warn!(%error, "recording a last good version"),
                            Err(error) => tracing::warn!(%error, "recording a last good version"),
                        }
                    }
                    for update in updates {
                        if events_tx.send(update).await.is_err() {
                            return;
                        }
                    }
                }
                // A CustomResourceDefinition installed after start.
                _ = rediscover.tick(), if state.kinds().len() < all => {
                    let found = match discover(&client).await {
                        Ok(found) => found,
                        Err(error) => {
                            tracing::warn!(%error, "discovering the custom resources again");
                            continue;
                        }
                    };
                    for (kind, ar) in found {
                        if !state.kinds().contains(&kind) {
                            tracing::info!(%kind, version = %ar.api_version, "now served by the API server: watched");
                            let (i, updates) = state.add_kind(kind);
                            for update in updates {
                                if events_tx.send(update).await.is_err() {
                                    return;
                                }
                            }
                            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                            watchers.spawn(watch_kind(i, kind, ar, api, watch_tx.clone()));
                        }
                    }
                }
            }
            *shown.lock().expect("status lock") = state.status_json();
        }
    });
    StoreFeed { events, status }
}

async fn watch_kind(
    index: usize,
    kind: Kind,
    ar: ApiResource,
    api: Api<DynamicObject>,
    tx: mpsc::Sender<(usize, WatchEvent)>,
) {
    use kube::runtime::WatchStreamExt;
    let json = |mut o: DynamicObject| {
        // List items may come without their type; the loader needs it.
        o.types = Some(kube::api::TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
        serde_json::to_value(&o).unwrap_or_default()
    };
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(watcher::Event::Init) => WatchEvent::Init,
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                WatchEvent::Apply(json(o))
            }
            Ok(watcher::Event::Delete(o)) => WatchEvent::Delete(json(o)),
            Ok(watcher::Event::InitDone) => WatchEvent::InitDone,
            Err(error) => {
                tracing::warn!(%kind, %error, "watch failed; retrying");
                continue;
            }
        };
        if tx.send((index, event)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_no_crd_serves_is_absent_not_an_error() {
        let api = |code| {
            kube::Error::Api(kube::core::ErrorResponse {
                status: "Failure".into(),
                message: String::new(),
                reason: String::new(),
                code,
            })
        };
        let cases = [
            (
                kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(
                    "policy.linkerd.io".into(),
                )),
                true,
            ),
            (api(404), true),
            (api(403), false),
            (api(500), false),
            (
                kube::Error::Discovery(kube::error::DiscoveryError::MissingResource("x".into())),
                false,
            ),
        ];
        for (error, absent) in cases {
            assert_eq!(group_absent(&error), absent, "{error}");
        }
    }
}
