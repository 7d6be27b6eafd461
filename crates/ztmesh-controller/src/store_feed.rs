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
//!
//! Cross-object findings (dangling references, competing Servers) are
//! logged only while the indexes are complete ([`Reported`]): not before
//! the first [`StoreEvent::Synced`], nor between a [`StoreEvent::Listing`]
//! (a kind watched late, e.g. a CRD installed after start) and the next
//! `Synced`, so an object whose kind is still being listed is never
//! called missing, and only once the indexes have settled for [`SETTLE`]
//! after a change, so objects applied together are judged together. Each
//! finding is logged once, when it appears.

use crate::manifests::Indexes;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use ztmesh_policy::references::Finding;
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
    /// Every watched kind is listed: the indexes are complete (first
    /// sent once at start; again after each [`StoreEvent::Listing`]).
    Synced,
    /// A kind not listed before starts its first listing (watched since
    /// a later discovery): the indexes are incomplete until the next
    /// [`StoreEvent::Synced`]. They keep being served meanwhile.
    Listing,
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
            let mut reported = Reported::default();
            let mut complete = false;
            // When the findings are next looked at: SETTLE after the first
            // change since they last were, so objects applied together
            // (an AuthorizationPolicy a moment before the
            // MeshTLSAuthentication it names) are judged together.
            let mut judge_at: Option<tokio::time::Instant> = None;
            loop {
                let due = async {
                    match judge_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let event = tokio::select! {
                    event = feed.events.recv() => match event {
                        Some(event) => event,
                        None => break,
                    },
                    () = due => {
                        judge_at = None;
                        if complete {
                            let findings = ztmesh_policy::references::findings(
                                &indexes.policy.lock().expect("policy index lock"),
                            );
                            for f in reported.new_ones(findings) {
                                tracing::warn!("{f}");
                            }
                        }
                        continue;
                    }
                };
                // Everything queued goes in under one lock.
                let mut batch = vec![event];
                while let Ok(more) = feed.events.try_recv() {
                    batch.push(more);
                }
                let synced = batch.iter().any(|e| matches!(e, StoreEvent::Synced));
                complete = completeness(&batch, complete);
                apply(batch, &indexes);
                if complete {
                    judge_at.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
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

/// How long the indexes settle before their findings are logged.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The findings logged so far, so each is logged once, when it appears
/// (one that goes away and comes back is logged again).
#[derive(Default)]
pub(crate) struct Reported(std::collections::BTreeSet<Finding>);

impl Reported {
    /// Of `findings` (all of them, now), those not reported yet.
    pub(crate) fn new_ones(&mut self, findings: Vec<Finding>) -> Vec<Finding> {
        let new = findings
            .iter()
            .filter(|f| !self.0.contains(*f))
            .cloned()
            .collect();
        self.0 = findings.into_iter().collect();
        new
    }
}

/// Whether the indexes, complete or not before `batch` (`complete`), are
/// complete after it: the last [`StoreEvent::Synced`] or
/// [`StoreEvent::Listing`] in it says, else nothing changes.
fn completeness(batch: &[StoreEvent], complete: bool) -> bool {
    batch.iter().fold(complete, |complete, e| match e {
        StoreEvent::Synced => true,
        StoreEvent::Listing => false,
        _ => complete,
    })
}

/// Applies a batch of events.
fn apply(batch: Vec<StoreEvent>, indexes: &Indexes) {
    let mut policy = indexes.policy.lock().expect("policy index lock");
    let mut outbound = indexes.outbound.lock().expect("outbound index lock");
    let mut destination = indexes.destination.lock().expect("destination index lock");
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
            StoreEvent::Synced | StoreEvent::Listing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexes_are_complete_between_synced_and_listing() {
        use StoreEvent::{Listing, Synced};
        let delete = || {
            StoreEvent::Delete(ztmesh_resources::load::ResourceKey {
                kind: "Server".into(),
                namespace: "n".into(),
                name: "s".into(),
            })
        };
        let cases: Vec<(bool, Vec<StoreEvent>, bool)> = vec![
            // Before the first listing: incomplete until Synced.
            (false, vec![delete()], false),
            (false, vec![delete(), Synced], true),
            // Edits after the sync: still complete.
            (true, vec![delete()], true),
            // A kind listed late: incomplete until the next Synced.
            (true, vec![Listing, delete()], false),
            (false, vec![delete()], false),
            (false, vec![delete(), Synced], true),
            (true, vec![Listing, delete(), Synced], true),
            (true, vec![Synced, Listing], false),
        ];
        for (i, (before, batch, after)) in cases.into_iter().enumerate() {
            assert_eq!(completeness(&batch, before), after, "case {i}");
        }
    }

    #[test]
    fn each_finding_is_reported_once_when_it_appears() {
        let f = |object: &str| Finding {
            object: object.into(),
            message: "spec.targetRef: Server n/s does not exist".into(),
        };
        let mut reported = Reported::default();
        let steps: Vec<(Vec<Finding>, Vec<Finding>)> = vec![
            (vec![f("a")], vec![f("a")]),
            (vec![f("a"), f("b")], vec![f("b")]),
            (vec![f("b")], vec![]),
            // Gone, then back: reported again.
            (vec![f("a"), f("b")], vec![f("a")]),
            (vec![], vec![]),
        ];
        for (i, (now, want)) in steps.into_iter().enumerate() {
            assert_eq!(reported.new_ones(now), want, "step {i}");
        }
    }
}
