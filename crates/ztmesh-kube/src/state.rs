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
//! - Once every kind is listed, [`StoreEvent::Synced`] says so. A kind
//!   watched later (a CRD installed after start) is listed with
//!   [`StoreEvent::Listing`] first and `Synced` again once every kind is
//!   listed, so that nothing is judged missing while its kind is still
//!   being listed.
//! - EndpointSlices go to the destination index as they are
//!   ([`StoreEvent::EndpointSlice`]); one that does not parse is refused
//!   like any other object.
//! - Across restarts ([`StoreState::with_last_good`]): each custom
//!   resource's last good version is recorded ([`Record`]s, which the
//!   watch task writes with [`crate::last_good`]); an object refused with
//!   nothing of it in force (at start-up) puts its recorded version in
//!   force instead, logged and counted like any refusal. A deletion, or a
//!   listing without the object, forgets its record.

use crate::kinds::{ENDPOINT_SLICE, Kind};
use crate::last_good::{self, Record, Recorded};
use crate::metrics::{KindLabel, Metrics};
use crate::translate::{Rejection, translate, translate_slice};
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
    /// A kind added after the sync is being listed for the first time.
    listing_late: bool,
    metrics: Metrics,
    /// The metric's counts, for the status.
    rejected_total: BTreeMap<String, u64>,
    /// The recorded last good versions, when kept across restarts.
    last_good: Option<BTreeMap<last_good::Key, Recorded>>,
    /// Changes to the records not yet taken ([`StoreState::take_records`]).
    records: Vec<Record>,
    /// Refused objects whose recorded version is in force: its resourceVersion.
    restored: BTreeMap<ObjId, String>,
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
            listing_late: false,
            metrics,
            rejected_total: BTreeMap::new(),
            last_good: None,
            records: Vec::new(),
            restored: BTreeMap::new(),
        }
    }

    /// Keeps the last good version of each custom resource across
    /// restarts: `recorded` is what was recorded before (loaded from disk);
    /// from now on [`StoreState::take_records`] says what to record.
    pub fn with_last_good(mut self, recorded: BTreeMap<last_good::Key, Recorded>) -> Self {
        self.last_good = Some(recorded);
        self
    }

    /// The changes to the records since the last call (to write in order).
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Watches one more kind (a CRD installed after start): its number,
    /// and, once synced, [`StoreEvent::Listing`] (the indexes lack the new
    /// kind's objects until the next [`StoreEvent::Synced`]; they are
    /// served all the same).
    pub fn add_kind(&mut self, kind: Kind) -> (usize, Vec<StoreEvent>) {
        self.kinds.push(kind);
        let mut out = Vec::new();
        if self.synced && !self.listing_late {
            self.listing_late = true;
            out.push(StoreEvent::Listing);
        }
        (self.kinds.len() - 1, out)
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
                self.forget(&id);
                if let Some(key) = self.remove_in_force(&id) {
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
                    if let Some(key) = self.remove_in_force(&id) {
                        out.push(StoreEvent::Delete(key));
                    }
                }
                // Recorded objects deleted while no one watched.
                let kind_name = self.kinds[kind].to_string();
                let unlisted: Vec<ObjId> = self
                    .last_good
                    .iter()
                    .flat_map(|r| r.keys())
                    .filter(|(k, ns, name)| {
                        *k == kind_name && !seen.contains(&(kind, ns.clone(), name.clone()))
                    })
                    .map(|(_, ns, name)| (kind, ns.clone(), name.clone()))
                    .collect();
                for id in unlisted {
                    self.forget(&id);
                }
                self.listed.insert(kind);
                if self.listed.len() == self.kinds.len() {
                    if !self.synced {
                        self.synced = true;
                        self.metrics.synced.set(1);
                        out.push(StoreEvent::Synced);
                    } else if self.listing_late {
                        self.listing_late = false;
                        out.push(StoreEvent::Synced);
                    }
                }
            }
        }
        out
    }

    /// The record key of `id`, if its kind is recorded.
    fn record_key(&self, id: &ObjId) -> Option<last_good::Key> {
        let kind = &self.kinds[id.0];
        (self.last_good.is_some() && last_good::recorded_kind(kind))
            .then(|| (kind.to_string(), id.1.clone(), id.2.clone()))
    }

    /// `object` (of `id`) is good: recorded, unless that version already is.
    fn remember(&mut self, id: &ObjId, object: &serde_json::Value) {
        let Some(key) = self.record_key(id) else {
            return;
        };
        let version = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let records = self.last_good.as_mut().expect("recording");
        if records
            .get(&key)
            .is_some_and(|r| r.resource_version == version && &r.object == object)
        {
            return;
        }
        let recorded = Recorded {
            kind: key.0.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            resource_version: version,
            object: object.clone(),
        };
        records.insert(key, recorded.clone());
        self.records.push(Record::Write(Box::new(recorded)));
    }

    /// `id` is gone from the API: its record goes too.
    fn forget(&mut self, id: &ObjId) {
        self.restored.remove(id);
        let Some(key) = self.record_key(id) else {
            return;
        };
        if self
            .last_good
            .as_mut()
            .is_some_and(|r| r.remove(&key).is_some())
        {
            self.records.push(Record::Remove(key));
        }
    }

    /// Puts the recorded version of `id` in force (nothing of it is): its
    /// resourceVersion, or `None` if there is none or it no longer loads.
    fn restore(&mut self, id: &ObjId, out: &mut Vec<StoreEvent>) -> Option<String> {
        let key = self.record_key(id)?;
        let recorded = self.last_good.as_ref()?.get(&key)?.clone();
        match translate(&recorded.object, &self.control_plane_ns) {
            Ok(t) => {
                self.set_in_force(id.clone(), t.resource.key());
                out.push(StoreEvent::Apply(Box::new(t.resource)));
                self.restored
                    .insert(id.clone(), recorded.resource_version.clone());
                Some(recorded.resource_version)
            }
            Err(rejection) => {
                tracing::warn!(
                    namespace = %id.1,
                    name = %id.2,
                    reasons = %rejection.reasons.join("; "),
                    resource_version = %recorded.resource_version,
                    "the recorded last good version of {} no longer loads; forgotten",
                    rejection.object,
                );
                self.forget(id);
                None
            }
        }
    }

    /// Forgets what is in force of `id`, counted.
    fn remove_in_force(&mut self, id: &ObjId) -> Option<ResourceKey> {
        let key = self.in_force.remove(id)?;
        self.objects_gauge(id.0).dec();
        Some(key)
    }

    fn objects_gauge(&self, kind: usize) -> prometheus_client::metrics::gauge::Gauge {
        let kind = self.kinds[kind].to_string();
        self.metrics
            .objects
            .get_or_create(&KindLabel { kind })
            .clone()
    }

    /// `key` in force for `id`; the key it replaces, if another.
    fn set_in_force(&mut self, id: ObjId, key: ResourceKey) -> Option<ResourceKey> {
        let kind = id.0;
        match self.in_force.insert(id, key.clone()) {
            None => {
                self.objects_gauge(kind).inc();
                None
            }
            Some(old) => (old != key).then_some(old),
        }
    }

    fn apply(&mut self, id: ObjId, object: &serde_json::Value, out: &mut Vec<StoreEvent>) {
        if self.kinds[id.0] == ENDPOINT_SLICE {
            match translate_slice(object) {
                Ok(slice) => {
                    self.rejected.remove(&id);
                    let key = ResourceKey {
                        kind: ENDPOINT_SLICE.kind.into(),
                        namespace: id.1.clone(),
                        name: id.2.clone(),
                    };
                    self.set_in_force(id, key);
                    out.push(StoreEvent::EndpointSlice(Box::new(slice)));
                }
                Err(rejection) => self.refuse(id, rejection),
            }
            return;
        }
        match translate(object, &self.control_plane_ns) {
            Ok(t) => {
                for w in &t.warnings {
                    tracing::warn!("{w}");
                }
                self.rejected.remove(&id);
                self.restored.remove(&id);
                self.remember(&id, object);
                let key = t.resource.key();
                if let Some(old) = self.set_in_force(id, key) {
                    out.push(StoreEvent::Delete(old));
                }
                out.push(StoreEvent::Apply(Box::new(t.resource)));
            }
            Err(rejection) => {
                if !self.in_force.contains_key(&id) {
                    self.restore(&id, out);
                }
                self.refuse(id, rejection)
            }
        }
    }

    fn refuse(&mut self, id: ObjId, rejection: Rejection) {
        let kind = self.kinds[id.0].to_string();
        *self.rejected_total.entry(kind.clone()).or_default() += 1;
        self.metrics
            .rejected
            .get_or_create(&KindLabel { kind })
            .inc();
        let restored;
        let in_force = if let Some(version) = self.restored.get(&id) {
            restored = format!(
                "its last good version recorded before the restart (resourceVersion {version}) is in force"
            );
            restored.as_str()
        } else if self.in_force.contains_key(&id) {
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
    /// "in_force": "previous" | "nothing"}], "rejected_total": {KIND: N}}`
    /// (the counts of `ztmesh_kube_objects_rejected_total`).
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
            "rejected_total": self.rejected_total,
        })
    }
}

fn obj_id(kind: usize, object: &serde_json::Value) -> ObjId {
    let meta = &object["metadata"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (kind, text(&meta["namespace"]), text(&meta["name"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    }

    /// A Pod; without a spec it is refused ("a Pod needs a spec").
    fn pod(name: &str, good: bool) -> serde_json::Value {
        let mut o = json!({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "namespace": "n"}});
        if good {
            o["spec"] = json!({"containers": [{"name": "app"}]});
        }
        o
    }

    /// Each event as `apply NAME`, `delete NAME` or `synced`.
    fn names(events: Vec<StoreEvent>) -> Vec<String> {
        events
            .into_iter()
            .map(|e| match e {
                StoreEvent::Apply(r) => format!("apply {}", r.key().name),
                StoreEvent::Delete(k) => format!("delete {}", k.name),
                StoreEvent::Synced => "synced".into(),
                StoreEvent::Listing => "listing".into(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn watch_events_become_index_updates() {
        let kinds = vec![
            Kind {
                group: "",
                kind: "Namespace",
            },
            Kind {
                group: "",
                kind: "Pod",
            },
        ];
        let mut state = StoreState::new(kinds, "linkerd", Metrics::default());
        use WatchEvent::{Apply, Delete, Init, InitDone};
        // (kind, event, updates, refused objects with whether a previous version is in force)
        let steps: Vec<(usize, WatchEvent, Vec<&str>, Vec<(&str, bool)>)> = vec![
            (0, Init, vec![], vec![]),
            (0, Apply(ns("a")), vec!["apply a"], vec![]),
            (0, Apply(ns("b")), vec!["apply b"], vec![]),
            (0, InitDone, vec![], vec![]),
            // Synced once every kind is listed, and only once.
            (1, Init, vec![], vec![]),
            (1, Apply(pod("p", true)), vec!["apply p"], vec![]),
            (1, InitDone, vec!["synced"], vec![]),
            // A bad version keeps the good one; a bad new object has none.
            (1, Apply(pod("p", false)), vec![], vec![("Pod n/p", true)]),
            (
                1,
                Apply(pod("q", false)),
                vec![],
                vec![("Pod n/p", true), ("Pod n/q", false)],
            ),
            // Fixed: applied, no longer refused.
            (
                1,
                Apply(pod("p", true)),
                vec!["apply p"],
                vec![("Pod n/q", false)],
            ),
            // A relist no longer listing q forgets it (nothing was in force).
            (1, Init, vec![], vec![("Pod n/q", false)]),
            (
                1,
                Apply(pod("p", true)),
                vec!["apply p"],
                vec![("Pod n/q", false)],
            ),
            (1, InitDone, vec![], vec![]),
            // A relist no longer listing b (deleted while the watch was down) deletes it.
            (0, Init, vec![], vec![]),
            (0, Apply(ns("a")), vec!["apply a"], vec![]),
            (0, InitDone, vec!["delete b"], vec![]),
            (0, Delete(ns("a")), vec!["delete a"], vec![]),
            // Deleting what is not in force changes nothing.
            (0, Delete(ns("zz")), vec![], vec![]),
            // A kind added after the sync ("listing" from add_kind): its
            // objects come, then a second sync.
            (2, Init, vec![], vec![]),
            (
                2,
                Apply(
                    json!({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "NetworkAuthentication",
                             "metadata": {"name": "net", "namespace": "n"},
                             "spec": {"networks": [{"cidr": "10.0.0.0/8"}]}}),
                ),
                vec!["apply net"],
                vec![],
            ),
            (2, InitDone, vec!["synced"], vec![]),
            // A refused object deleted: its last good version goes too.
            (1, Apply(pod("p", false)), vec![], vec![("Pod n/p", true)]),
            (1, Delete(pod("p", false)), vec!["delete p"], vec![]),
        ];
        for (i, (kind, event, want, refused)) in steps.into_iter().enumerate() {
            if kind == state.kinds().len() {
                let (_, events) = state.add_kind(Kind {
                    group: "policy.linkerd.io",
                    kind: "NetworkAuthentication",
                });
                assert_eq!(names(events), vec!["listing"], "step {i}");
            }
            let got = names(state.handle(kind, event));
            assert_eq!(got, want, "step {i}");
            let now: Vec<(String, bool)> = state
                .rejected()
                .into_iter()
                .map(|(r, previous)| (r.object, previous))
                .collect();
            let refused: Vec<(String, bool)> = refused
                .into_iter()
                .map(|(o, p)| (o.to_string(), p))
                .collect();
            assert_eq!(now, refused, "step {i}");
        }
        assert_eq!(state.metrics.rejected("Pod"), 3);
        assert_eq!(state.metrics.objects("Pod"), 0);
        assert_eq!(state.metrics.objects("Namespace"), 0);
        assert_eq!(
            state
                .metrics
                .objects("NetworkAuthentication.policy.linkerd.io"),
            1
        );
        assert!(state.metrics.synced());
        assert_eq!(state.status_json()["ready"], true);
        assert_eq!(state.status_json()["rejected_total"], json!({"Pod": 3}));
    }
}

#[cfg(test)]
mod last_good_tests;

#[cfg(test)]
mod slice_tests;
