//! Certificate metrics, named as linkerd2-proxy exports them:
//! `control_identity_cert_expiration_timestamp_seconds`,
//! `control_identity_cert_refresh_timestamp_seconds` and
//! `control_identity_cert_refreshes_total{result="ok"|"error"}`.
//! Unlike linkerd2-proxy, a failed Certify call counts as an `error` too,
//! so an operator sees a control plane that refuses or cannot be reached.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct IdentityMetrics {
    expiration_seconds: AtomicU64,
    refresh_seconds: AtomicU64,
    ok: AtomicU64,
    error: AtomicU64,
}

impl IdentityMetrics {
    pub fn record_ok(&self, expiry: SystemTime, now: SystemTime) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.refresh_seconds
            .store(unix_f64(now).to_bits(), Ordering::Relaxed);
        self.expiration_seconds
            .store(unix_f64(expiry).to_bits(), Ordering::Relaxed);
    }

    pub fn record_error(&self) {
        self.error.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refreshes_ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn refreshes_error(&self) -> u64 {
        self.error.load(Ordering::Relaxed)
    }

    pub fn expiration_timestamp(&self) -> f64 {
        f64::from_bits(self.expiration_seconds.load(Ordering::Relaxed))
    }

    pub fn refresh_timestamp(&self) -> f64 {
        f64::from_bits(self.refresh_seconds.load(Ordering::Relaxed))
    }

    /// Prometheus text exposition of the three families.
    pub fn encode(&self, out: &mut String) {
        let _ = write!(
            out,
            "# HELP control_identity_cert_expiration_timestamp_seconds Time when this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch)\n\
             # TYPE control_identity_cert_expiration_timestamp_seconds gauge\n\
             control_identity_cert_expiration_timestamp_seconds {}\n\
             # HELP control_identity_cert_refresh_timestamp_seconds Time when this proxy's current mTLS identity certificate was last updated (in seconds since the UNIX epoch)\n\
             # TYPE control_identity_cert_refresh_timestamp_seconds gauge\n\
             control_identity_cert_refresh_timestamp_seconds {}\n\
             # HELP control_identity_cert_refreshes_total The total number of times this proxy's mTLS identity certificate has been refreshed by the Identity provider\n\
             # TYPE control_identity_cert_refreshes_total counter\n\
             control_identity_cert_refreshes_total{{result=\"ok\"}} {}\n\
             control_identity_cert_refreshes_total{{result=\"error\"}} {}\n",
            self.expiration_timestamp(),
            self.refresh_timestamp(),
            self.refreshes_ok(),
            self.refreshes_error(),
        );
    }
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
