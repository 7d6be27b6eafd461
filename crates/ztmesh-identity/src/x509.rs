//! Small helpers over x509-parser shared by the issuer loader and the CA
//! (with the `ca` feature), and [`rfc3339`] for messages (always).

use std::time::{SystemTime, UNIX_EPOCH};
#[cfg(feature = "ca")]
use {std::time::Duration, x509_parser::certificate::X509Certificate, x509_parser::time::ASN1Time};

#[cfg(feature = "ca")]
pub(crate) fn to_system_time(t: ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(feature = "ca")]
pub(crate) fn not_after(cert: &X509Certificate<'_>) -> SystemTime {
    to_system_time(cert.validity().not_after)
}

#[cfg(feature = "ca")]
pub(crate) fn not_before(cert: &X509Certificate<'_>) -> SystemTime {
    to_system_time(cert.validity().not_before)
}

#[cfg(feature = "ca")]
/// Whether the certificate's key is on the P-256 curve.
pub(crate) fn is_p256(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> bool {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|oid| oid == OID_EC_P256)
}

#[cfg(feature = "ca")]
pub(crate) fn sha256_hex(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A time as RFC 3339 (`2026-11-22T22:11:31Z`), for messages and logs.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs}s after the epoch"))
}
