//! The store's metric: `ztmesh_kube_objects_rejected_total{kind}`, the
//! objects refused (each refused version counts once).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: String,
}

/// The store's counters; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    pub(crate) rejected: Family<KindLabel, Counter>,
}

impl Metrics {
    /// Registers the counters (as `ztmesh_kube_objects_rejected_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("ztmesh_kube").register(
            "objects_rejected",
            "API objects refused by validation (their last good version stays in force)",
            self.rejected.clone(),
        );
    }

    /// How many objects of `kind` (`Kind.group`) were refused.
    pub fn rejected(&self, kind: &str) -> u64 {
        self.rejected
            .get_or_create(&KindLabel { kind: kind.into() })
            .get()
    }
}
