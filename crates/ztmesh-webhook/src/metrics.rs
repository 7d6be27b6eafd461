//! The webhook's metrics, under `ztmesh_webhook_`:
//! - `requests_total{endpoint, result}`: AdmissionReviews answered, by
//!   endpoint (`inject`, `validate`, `other`) and result (`patched`,
//!   `skipped`, `allowed`, `denied`, `bypass`, `invalid`, `error`);
//! - `injection_bypass_total{namespace}`: pods admitted in an enforced
//!   namespace without the proxy by their exemption annotation (dry runs
//!   are logged, not counted).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) endpoint: &'static str,
    pub(crate) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NamespaceLabel {
    pub(crate) namespace: String,
}

/// The webhook's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    bypass: Family<NamespaceLabel, Counter>,
}

impl Metrics {
    /// Registers `ztmesh_webhook_requests_total` and
    /// `ztmesh_webhook_injection_bypass_total`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("ztmesh_webhook");
        sub.register(
            "requests",
            "AdmissionReviews answered, by endpoint and result",
            self.requests.clone(),
        );
        sub.register(
            "injection_bypass",
            "Pods admitted without the proxy in an enforced namespace by their exemption annotation",
            self.bypass.clone(),
        );
    }

    pub(crate) fn request(&self, endpoint: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, result })
            .inc();
    }

    pub(crate) fn bypass(&self, namespace: &str) {
        self.bypass
            .get_or_create(&NamespaceLabel {
                namespace: namespace.into(),
            })
            .inc();
    }

    /// Requests answered on `endpoint` with `result`.
    pub fn requests(&self, endpoint: &'static str, result: &'static str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { endpoint, result })
            .get()
    }

    /// Bypasses counted in `namespace`.
    pub fn bypasses(&self, namespace: &str) -> u64 {
        self.bypass
            .get_or_create(&NamespaceLabel {
                namespace: namespace.into(),
            })
            .get()
    }
}
