//! The store's metrics, under `ztmesh_kube_`:
//! - `objects_rejected_total{kind}`: objects refused (each refused
//!   version counts once);
//! - `objects{kind}`: objects in force in the indexes, by kind;
//! - `synced`: 1 once every watched kind was listed (the indexes are
//!   complete and served), else 0.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: String,
}

/// The store's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    pub(crate) rejected: Family<KindLabel, Counter>,
    pub(crate) objects: Family<KindLabel, Gauge>,
    pub(crate) synced: Gauge,
}

impl Metrics {
    /// Registers the metrics (as `ztmesh_kube_objects_rejected_total`,
    /// `ztmesh_kube_objects`, `ztmesh_kube_synced`).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("ztmesh_kube");
        sub.register(
            "objects_rejected",
            "API objects refused by validation (their last good version stays in force)",
            self.rejected.clone(),
        );
        sub.register(
            "objects",
            "API objects in force in the indexes, by kind",
            self.objects.clone(),
        );
        sub.register(
            "synced",
            "1 once every watched kind has been listed (the indexes are served), else 0",
            self.synced.clone(),
        );
    }

    /// How many objects of `kind` (`Kind.group`) were refused.
    pub fn rejected(&self, kind: &str) -> u64 {
        self.rejected
            .get_or_create(&KindLabel { kind: kind.into() })
            .get()
    }

    /// How many objects of `kind` are in force.
    pub fn objects(&self, kind: &str) -> i64 {
        self.objects
            .get_or_create(&KindLabel { kind: kind.into() })
            .get()
    }

    pub fn synced(&self) -> bool {
        self.synced.get() == 1
    }
}
