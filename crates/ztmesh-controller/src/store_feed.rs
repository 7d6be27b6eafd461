//! Resources fed by a store other than the manifests directory (the
//! Kubernetes store, ztmesh-kube): a [`StoreFeed`] is a channel of
//! [`StoreEvent`]s, each applied to the same policy, outbound and
//! destination indexes, through the same `apply` / `delete` calls, as the
//! manifests directory's scans. The store decides what is in force (it
//! validates each object with ztmesh-resources and keeps the last good
//! version of a refused one); this module only applies.
//!
//! Policy and destination are served once the store reports
//! [`StoreEvent::Synced`] (its first complete listing), never from an
//! empty index; [`Feeder::start`] returns that signal.

use crate::manifests::Indexes;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use ztmesh_resources::Resource;
use ztmesh_resources::load::ResourceKey;

/// One change from a store.
#[derive(Debug)]
pub enum StoreEvent {
    /// Add or replace an object (already validated).
    Apply(Box<Resource>),
    /// Remove an object (an EndpointSlice too, by its kind `EndpointSlice`).
    Delete(ResourceKey),
    /// From now on the destination index takes Services' endpoints from
    /// EndpointSlices, not from their selectors (a store that watches
    /// slices sends it first).
    EndpointsFromSlices,
    /// Add or replace an EndpointSlice.
    EndpointSlice(Box<ztmesh_destination::index::EndpointSlice>),
    /// Every watched kind is listed: the indexes are complete.
    Synced,
}

/// A store's events, and the status `GET /status` on the viz API reports
/// for it (the store keeps it current).
pub struct StoreFeed {
    pub events: mpsc::Receiver<StoreEvent>,
    pub status: Arc<Mutex<serde_json::Value>>,
}

/// The task applying a feed to the indexes.
pub(crate) struct Feeder {
    /// Fires once the store is synced (dropped if the feed ends first).
    pub(crate) ready: oneshot::Receiver<()>,
    /// Dropping it stops the task.
    pub(crate) task: FeedTask,
}

/// Stops the feeding task when dropped.
pub(crate) struct FeedTask(tokio::task::JoinHandle<()>);

impl Drop for FeedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Feeder {
    pub(crate) fn start(mut feed: StoreFeed, indexes: Indexes) -> Self {
        let (ready_tx, ready) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut reported = std::collections::BTreeSet::new();
            while let Some(event) = feed.events.recv().await {
                // Everything queued goes in under one lock.
                let mut batch = vec![event];
                while let Ok(more) = feed.events.try_recv() {
                    batch.push(more);
                }
                let synced = apply(batch, &indexes);
                if synced || ready_tx.is_none() {
                    let findings = ztmesh_policy::references::findings(
                        &indexes.policy.lock().expect("policy index lock"),
                    );
                    for f in findings.iter().filter(|f| !reported.contains(*f)) {
                        tracing::warn!("{f}");
                    }
                    reported = findings.into_iter().collect();
                }
                if synced && let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            tracing::warn!("the resource store stopped; the indexes keep their last state");
        });
        Self {
            ready,
            task: FeedTask(task),
        }
    }
}

/// Applies a batch of events; true if it holds [`StoreEvent::Synced`].
fn apply(batch: Vec<StoreEvent>, indexes: &Indexes) -> bool {
    let mut policy = indexes.policy.lock().expect("policy index lock");
    let mut outbound = indexes.outbound.lock().expect("outbound index lock");
    let mut destination = indexes.destination.lock().expect("destination index lock");
    let mut synced = false;
    for event in batch {
        match event {
            StoreEvent::Apply(resource) => {
                tracing::debug!(object = %resource.key(), "applied");
                indexes.federation.apply(&resource);
                outbound.apply(&resource);
                destination.apply((*resource).clone());
                policy.apply(*resource);
            }
            StoreEvent::Delete(key) => {
                tracing::debug!(object = %key, "deleted");
                policy.delete(&key);
                outbound.delete(&key);
                destination.delete(&key);
                indexes.federation.delete(&key);
            }
            StoreEvent::EndpointsFromSlices => destination.use_endpoint_slices(),
            StoreEvent::EndpointSlice(slice) => {
                tracing::debug!(name = ?slice.metadata.name, "EndpointSlice applied");
                destination.apply_endpoint_slice(&slice);
            }
            StoreEvent::Synced => synced = true,
        }
    }
    synced
}
