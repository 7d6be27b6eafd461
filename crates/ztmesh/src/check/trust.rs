//! The identity group: the trust anchors and the issuer are valid,
//! chained (the issuer loads as the controller loads it), and not near
//! expiry: WARN under [`WARN_BEFORE`], FAIL once expired. Pure: judges
//! [`TrustFiles`] at a given time.

use super::chain::Summary;
use super::mesh::TrustFiles;
use super::result::{CheckResult, Group};
use std::time::{Duration, SystemTime};
use ztmesh_identity::IssuerError;

/// Expiry closer than this is a warning.
pub(crate) const WARN_BEFORE: Duration = Duration::from_secs(60 * 24 * 3600);

/// PASS, WARN or FAIL for a certificate valid until `not_after`.
pub(crate) fn expiry(
    what: &str,
    id: &str,
    title: &str,
    s: &Summary,
    now: SystemTime,
    fix: &str,
) -> CheckResult {
    let until = ztmesh_identity::rfc3339(s.not_after);
    let evidence = [format!("{what} {} (SHA-256 {})", s.subject, s.sha256)];
    match s.not_after.duration_since(now) {
        Err(_) => CheckResult::fail(
            Group::Identity,
            id,
            title,
            format!("{what} expired at {until}"),
            fix,
        ),
        Ok(left) if left < WARN_BEFORE => CheckResult::warn(
            Group::Identity,
            id,
            title,
            format!(
                "{what} expires in {} days, at {until}",
                left.as_secs() / 86400
            ),
            fix,
        ),
        Ok(left) => CheckResult::pass(
            Group::Identity,
            id,
            title,
            format!(
                "{what} valid until {until} ({} days)",
                left.as_secs() / 86400
            ),
        ),
    }
    .evidence(evidence)
}

pub(crate) fn checks(trust: &TrustFiles, now: SystemTime) -> Vec<CheckResult> {
    let Some(dir) = &trust.dir else {
        return vec![CheckResult::warn(
            Group::Identity,
            "identity-dir",
            "trust anchors and issuer",
            "not checked: the identity directory is unknown",
            "pass --identity-dir DIR (the directory `ztmesh install` wrote)",
        )];
    };
    let d = dir.display();
    let reinstall = format!("ztmesh install --dir {d} --force (then restart the proxies)");
    let rotate = format!("ztmesh install --dir {d} --rotate-issuer");
    let mut out = Vec::new();
    let anchors: Vec<Summary> = trust
        .anchors
        .iter()
        .filter_map(|c| Summary::of(c).ok())
        .collect();
    if anchors.is_empty() {
        out.push(CheckResult::fail(
            Group::Identity,
            "trust-anchors",
            "trust anchors valid",
            format!("no readable trust anchor in {d}/ca.crt"),
            reinstall.clone(),
        ));
    }
    for a in &anchors {
        out.push(expiry(
            "trust anchor",
            "trust-anchors",
            "trust anchors valid",
            a,
            now,
            &reinstall,
        ));
    }
    let issuer = trust.issuer.first().and_then(|c| Summary::of(c).ok());
    let title = "issuer valid and chained to the anchors";
    match (&trust.load, issuer) {
        (_, None) => out.push(CheckResult::fail(
            Group::Identity,
            "issuer",
            title,
            format!("no readable issuer certificate in {d} (issuer.crt or tls.crt)"),
            rotate,
        )),
        (Some(Err(IssuerError::Expired { at, .. })), Some(_)) => out.push(
            CheckResult::fail(
                Group::Identity,
                "issuer",
                title,
                format!("the issuer expired at {at}: no workload can renew its certificate"),
                rotate,
            )
            .offenders([format!("{d}/issuer.crt")]),
        ),
        (Some(Err(e)), Some(_)) => out.push(
            CheckResult::fail(Group::Identity, "issuer", title, e.to_string(), rotate)
                .offenders([format!("{d}")]),
        ),
        (_, Some(s)) => out.push(expiry("issuer", "issuer", title, &s, now, &rotate)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use ztmesh_identity::install::{self, InstallOptions};

    const DAY: Duration = Duration::from_secs(86400);

    /// An identity directory whose anchor and issuer are valid for the given times.
    fn dir(anchor: Duration, issuer: Duration, issued: SystemTime) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let opts = InstallOptions {
            anchor_validity: anchor,
            issuer_validity: issuer,
            ..Default::default()
        };
        install::install(d.path(), &opts, issued).unwrap();
        d
    }

    #[test]
    fn anchors_and_issuer_by_expiry() {
        let now = SystemTime::now();
        // (anchor validity, issuer validity, checked at, anchor status, issuer status)
        let cases = [
            (365 * DAY, 365 * DAY, now, Status::Pass, Status::Pass),
            (365 * DAY, 30 * DAY, now, Status::Pass, Status::Warn),
            (30 * DAY, 20 * DAY, now, Status::Warn, Status::Warn),
            (
                365 * DAY,
                10 * DAY,
                now + 11 * DAY,
                Status::Pass,
                Status::Fail,
            ),
            (
                20 * DAY,
                10 * DAY,
                now + 21 * DAY,
                Status::Fail,
                Status::Fail,
            ),
        ];
        for (i, (anchor, issuer, at, want_anchor, want_issuer)) in cases.into_iter().enumerate() {
            let d = dir(anchor, issuer, now);
            let mut trust = TrustFiles::read(Some(d.path()));
            // As the controller would load it at `at`.
            trust.load = Some(ztmesh_identity::Issuer::load_dir(d.path(), at).map(|_| ()));
            let got = checks(&trust, at);
            let status = |id: &str| got.iter().find(|c| c.id == id).unwrap().status;
            assert_eq!(status("trust-anchors"), want_anchor, "case {i}: {got:#?}");
            assert_eq!(status("issuer"), want_issuer, "case {i}: {got:#?}");
            for c in &got {
                assert_eq!(c.fix.is_some(), c.status != Status::Pass, "case {i}: {c:?}");
            }
        }
    }

    #[test]
    fn an_expired_issuer_names_the_rotation() {
        let now = SystemTime::now();
        let d = dir(365 * DAY, DAY, now);
        let mut trust = TrustFiles::read(Some(d.path()));
        let later = now + 2 * DAY;
        trust.load = Some(ztmesh_identity::Issuer::load_dir(d.path(), later).map(|_| ()));
        let issuer = checks(&trust, later).pop().unwrap();
        assert_eq!(issuer.status, Status::Fail);
        assert!(issuer.detail.contains("expired"), "{issuer:?}");
        assert!(
            issuer.fix.as_deref().unwrap().contains("--rotate-issuer"),
            "{issuer:?}"
        );
    }

    #[test]
    fn an_issuer_of_another_anchor_fails_as_not_chained() {
        let now = SystemTime::now();
        let (a, b) = (
            dir(365 * DAY, 365 * DAY, now),
            dir(365 * DAY, 365 * DAY, now),
        );
        std::fs::copy(b.path().join("ca.crt"), a.path().join("ca.crt")).unwrap();
        let trust = TrustFiles::read(Some(a.path()));
        let issuer = checks(&trust, now).pop().unwrap();
        assert_eq!(issuer.status, Status::Fail, "{issuer:?}");
        assert!(issuer.detail.contains("not signed by"), "{issuer:?}");
    }

    #[test]
    fn no_directory_is_a_warning_naming_the_flag() {
        let got = checks(&TrustFiles::default(), SystemTime::now());
        assert_eq!(got[0].status, Status::Warn);
        assert!(got[0].fix.as_deref().unwrap().contains("--identity-dir"));
    }
}
