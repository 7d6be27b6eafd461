//! What is in force: [`StoreState`] turns each watch event of each kind
//! into the index updates it means ([`StoreEvent`]s), without I/O, so it
//! is tested with plain objects.
//!
//! - An object that loads is applied; one refused keeps its last good
//!   version in force (none if it never had one), is logged with its
//!   namespace/name and field, and counted.
//! - A deleted object is deleted, whatever its last version was.
//! - A relist (a watch restarted from scratch) deletes what it no longer
//!   lists.
//! - Once every kind is listed, [`StoreEvent::Synced`] says so, once.

use crate::kinds::Kind;
use crate::metrics::{KindLabel, Metrics};
use crate::translate::{Rejection, translate};
use std::collections::{BTreeMap, BTreeSet};
use ztmesh_controller::StoreEvent;
use ztmesh_resources::load::ResourceKey;

/// One event of one kind's watch (kube-runtime's, object as JSON with
/// `apiVersion` and `kind`).
#[derive(Debug)]
pub enum WatchEvent {
    /// A (re)list starts.
    Init,
    /// An object, listed (during a relist) or changed.
    Apply(serde_json::Value),
    Delete(serde_json::Value),
    /// The (re)list is complete.
    InitDone,
}

/// An object's identity in the API: kind (index), namespace, name.
type ObjId = (usize, String, String);

pub struct StoreState {
    control_plane_ns: String,
    kinds: Vec<Kind>,
    in_force: BTreeMap<ObjId, ResourceKey>,
    rejected: BTreeMap<ObjId, Rejection>,
    /// Kinds relisting now, and what they listed so far.
    relisting: BTreeMap<usize, BTreeSet<ObjId>>,
    listed: BTreeSet<usize>,
    synced: bool,
    metrics: Metrics,
}

impl StoreState {
    /// A store of `kinds` (watch events name them by index).
    pub fn new(kinds: Vec<Kind>, control_plane_ns: &str, metrics: Metrics) -> Self {
        Self {
            control_plane_ns: control_plane_ns.into(),
            kinds,
            in_force: BTreeMap::new(),
            rejected: BTreeMap::new(),
            relisting: BTreeMap::new(),
            listed: BTreeSet::new(),
            synced: false,
            metrics,
        }
    }

    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The index updates `event` of kind number `kind` means.
    pub fn handle(&mut self, kind: usize, event: WatchEvent) -> Vec<StoreEvent> {
        let mut out = Vec::new();
        match event {
            WatchEvent::Init => {
                self.relisting.insert(kind, BTreeSet::new());
            }
            WatchEvent::Apply(object) => {
                let id = obj_id(kind, &object);
                if let Some(seen) = self.relisting.get_mut(&kind) {
                    seen.insert(id.clone());
                }
                self.apply(id, &object, &mut out);
            }
            WatchEvent::Delete(object) => {
                let id = obj_id(kind, &object);
                self.rejected.remove(&id);
                if let Some(key) = self.in_force.remove(&id) {
                    out.push(StoreEvent::Delete(key));
                }
            }
            WatchEvent::InitDone => {
                let seen = self.relisting.remove(&kind).unwrap_or_default();
                let gone: Vec<ObjId> = self
                    .in_force
                    .keys()
                    .chain(self.rejected.keys())
                    .filter(|id| id.0 == kind && !seen.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    self.rejected.remove(&id);
                    if let Some(key) = self.in_force.remove(&id) {
                        out.push(StoreEvent::Delete(key));
                    }
                }
                self.listed.insert(kind);
                if !self.synced && self.listed.len() == self.kinds.len() {
                    self.synced = true;
                    out.push(StoreEvent::Synced);
                }
            }
        }
        out
    }

    fn apply(&mut self, id: ObjId, object: &serde_json::Value, out: &mut Vec<StoreEvent>) {
        match translate(object, &self.control_plane_ns) {
            Ok(t) => {
                for w in &t.warnings {
                    tracing::warn!("{w}");
                }
                self.rejected.remove(&id);
                let key = t.resource.key();
                if let Some(old) = self.in_force.insert(id, key.clone())
                    && old != key
                {
                    out.push(StoreEvent::Delete(old));
                }
                out.push(StoreEvent::Apply(Box::new(t.resource)));
            }
            Err(rejection) => {
                let kind = self.kinds[id.0].to_string();
                self.metrics
                    .rejected
                    .get_or_create(&KindLabel { kind })
                    .inc();
                let in_force = if self.in_force.contains_key(&id) {
                    "its last good version stays in force"
                } else {
                    "it never had a good version, so nothing of it is in force"
                };
                tracing::error!(
                    namespace = %id.1,
                    name = %id.2,
                    field = rejection.field.as_deref().unwrap_or("-"),
                    reasons = %rejection.reasons.join("; "),
                    "{} refused; {in_force}",
                    rejection.object,
                );
                self.rejected.insert(id, rejection);
            }
        }
    }

    /// The objects refused now, each with its reasons and whether a last
    /// good version is in force.
    pub fn rejected(&self) -> Vec<(Rejection, bool)> {
        self.rejected
            .iter()
            .map(|(id, r)| (r.clone(), self.in_force.contains_key(id)))
            .collect()
    }

    /// What `GET /status` on the viz API reports: `{"store": "kubernetes",
    /// "ready", "watched": [KIND], "refused": [{"object", "reasons",
    /// "in_force": "previous" | "nothing"}]}`.
    pub fn status_json(&self) -> serde_json::Value {
        let refused: Vec<serde_json::Value> = self
            .rejected()
            .into_iter()
            .map(|(r, previous)| {
                serde_json::json!({
                    "object": r.object,
                    "reasons": r.reasons,
                    "in_force": if previous { "previous" } else { "nothing" },
                })
            })
            .collect();
        serde_json::json!({
            "store": "kubernetes",
            "ready": self.synced,
            "watched": self.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "refused": refused,
        })
    }
}

fn obj_id(kind: usize, object: &serde_json::Value) -> ObjId {
    let meta = &object["metadata"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (kind, text(&meta["namespace"]), text(&meta["name"]))
}
