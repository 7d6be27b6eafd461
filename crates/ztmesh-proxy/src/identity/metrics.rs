//! Certificate metrics, named as linkerd2-proxy exports them:
//! `control_identity_cert_expiration_timestamp_seconds`,
//! `control_identity_cert_refresh_timestamp_seconds` and
//! `control_identity_cert_refreshes_total{result="ok"|"error"}`.
//! Unlike linkerd2-proxy, a failed Certify call counts as an `error` too,
//! so an operator sees a control plane that refuses or cannot be reached.
//! One family of ztmesh's own, `ztmesh_identity_trust_anchors{sha256=...} 1`,
//! names the anchors the proxy trusts (set at start-up and on each bundle
//! change, read only by scrapes: off the request path), so `ztmesh check` can tell a proxy
//! still trusting an old root.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

type Timestamp = Gauge<f64, AtomicU64>;
type ResultLabel = [(&'static str, &'static str); 1];
type AnchorLabel = [(&'static str, String); 1];

/// The family naming the trust anchors by SHA-256 fingerprint.
pub const TRUST_ANCHORS_FAMILY: &str = "ztmesh_identity_trust_anchors";

#[derive(Debug)]
pub struct IdentityMetrics {
    expiration_seconds: Timestamp,
    refresh_seconds: Timestamp,
    refreshes: Family<ResultLabel, Counter>,
    ok: Counter,
    error: Counter,
    anchors: Family<AnchorLabel, Gauge>,
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
            anchors: Family::default(),
        }
    }
}

impl IdentityMetrics {
    pub fn record_ok(&self, expiry: SystemTime, now: SystemTime) {
        self.ok.inc();
        self.refresh_seconds.set(unix_f64(now));
        self.expiration_seconds.set(unix_f64(expiry));
    }

    /// Records the trust anchors (DER), by SHA-256 fingerprint `AB:CD:...`,
    /// replacing those recorded before (the bundle may change).
    pub fn set_trust_anchors<'a>(&self, anchors: impl IntoIterator<Item = &'a [u8]>) {
        self.anchors.clear();
        for der in anchors {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
            let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            self.anchors
                .get_or_create(&[("sha256", hex.join(":"))])
                .set(1);
        }
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

    /// Adds the four families to a scrape's registry.
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
        crate::metrics::register(
            registry,
            TRUST_ANCHORS_FAMILY,
            "The trust anchors this proxy verifies peers against, by SHA-256 fingerprint of their DER (value 1)",
            self.anchors.clone(),
        );
    }

    /// Prometheus text exposition of the four families.
    pub fn encode(&self, out: &mut String) {
        crate::metrics::encode_into(out, |r| self.register(r));
    }
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_anchors_are_exported_by_fingerprint() {
        let m = IdentityMetrics::default();
        let mut out = String::new();
        m.encode(&mut out);
        assert!(!out.contains("ztmesh_identity_trust_anchors{"), "{out}");
        m.set_trust_anchors([b"anchor one".as_slice(), b"anchor two".as_slice()]);
        let mut out = String::new();
        m.encode(&mut out);
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("ztmesh_identity_trust_anchors{"))
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        // SHA-256("anchor one"), as `ztmesh install` prints fingerprints.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"anchor one");
        let first = format!("{:02X}:{:02X}", digest.as_ref()[0], digest.as_ref()[1]);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("sha256=\"{first}:")) && l.ends_with(" 1")),
            "{out}"
        );
    }
}
