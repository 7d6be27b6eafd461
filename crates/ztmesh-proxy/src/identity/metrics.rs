//! Certificate metrics, named as linkerd2-proxy exports them:
//! `control_identity_cert_expiration_timestamp_seconds`,
//! `control_identity_cert_refresh_timestamp_seconds` and
//! `control_identity_cert_refreshes_total{result="ok"|"error"}`.
//! Unlike linkerd2-proxy, a failed Certify call counts as an `error` too,
//! so an operator sees a control plane that refuses or cannot be reached.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

type Timestamp = Gauge<f64, AtomicU64>;
type ResultLabel = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct IdentityMetrics {
    expiration_seconds: Timestamp,
    refresh_seconds: Timestamp,
    refreshes: Family<ResultLabel, Counter>,
    ok: Counter,
    error: Counter,
}

impl Default for IdentityMetrics {
    fn default() -> Self {
        let refreshes = Family::<ResultLabel, Counter>::default();
        Self {
            expiration_seconds: Timestamp::default(),
            refresh_seconds: Timestamp::default(),
            ok: refreshes.get_or_create_owned(&[("result", "ok")]),
            error: refreshes.get_or_create_owned(&[("result", "error")]),
            refreshes,
        }
    }
}

impl IdentityMetrics {
    pub fn record_ok(&self, expiry: SystemTime, now: SystemTime) {
        self.ok.inc();
        self.refresh_seconds.set(unix_f64(now));
        self.expiration_seconds.set(unix_f64(expiry));
    }

    pub fn record_error(&self) {
        self.error.inc();
    }

    pub fn refreshes_ok(&self) -> u64 {
        self.ok.get()
    }

    pub fn refreshes_error(&self) -> u64 {
        self.error.get()
    }

    pub fn expiration_timestamp(&self) -> f64 {
        self.expiration_seconds.get()
    }

    pub fn refresh_timestamp(&self) -> f64 {
        self.refresh_seconds.get()
    }

    /// Adds the three families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        crate::metrics::register(
            registry,
            "control_identity_cert_expiration_timestamp_seconds",
            "Time when this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch)",
            self.expiration_seconds.clone(),
        );
        crate::metrics::register(
            registry,
            "control_identity_cert_refresh_timestamp_seconds",
            "Time when this proxy's current mTLS identity certificate was last updated (in seconds since the UNIX epoch)",
            self.refresh_seconds.clone(),
        );
        crate::metrics::register(
            registry,
            "control_identity_cert_refreshes",
            "The total number of times this proxy's mTLS identity certificate has been refreshed by the Identity provider",
            self.refreshes.clone(),
        );
    }

    /// Prometheus text exposition of the three families.
    pub fn encode(&self, out: &mut String) {
        crate::metrics::encode_into(out, |r| self.register(r));
    }
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
