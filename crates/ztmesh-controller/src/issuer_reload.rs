//! Hot reload of the identity issuer from its files.
//!
//! [`keep_current`] polls the files whenever the identity directory's watch
//! reports a change ([`ztmesh_store::watch`]; without a watch, at the
//! configured interval), and renews the controller's own certificates.
//! Each poll reads the three files and compares them with what was last
//! seen; only a change is validated. A valid issuer is published as a new
//! CA on the watch channel the Identity service reads; an invalid one is
//! logged once with its reason and the CA in force is left untouched, so a
//! half-written or wrong secret never stops issuance.

use crate::own_identity::OwnIdentity;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};
use ztmesh_identity::issuer::{Issuer, IssuerError, IssuerFiles};
use ztmesh_identity::{Ca, TrustDomain};

/// How often the controller's own certificates are checked for renewal.
const RENEW_CHECK: Duration = Duration::from_secs(1);

/// Until `stop`: reloads the issuer on every change of its directory (every
/// `poll_interval` where the directory cannot be watched) and renews `owns`
/// when due or when the issuer changed.
pub(crate) async fn keep_current(
    mut reloader: IssuerReloader,
    ca: watch::Receiver<Arc<Ca>>,
    mut owns: Vec<OwnIdentity>,
    poll_interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let changed = Arc::new(Notify::new());
    let notify = changed.clone();
    let watch =
        ztmesh_store::watch::watch(&reloader.dir, ztmesh_store::watch::Scope::Dir, move || {
            notify.notify_one()
        });
    let (_watch, interval) = match watch {
        Ok(watch) => (Some(watch), RENEW_CHECK),
        Err(error) => {
            tracing::warn!(%error, "reading the issuer every {poll_interval:?} instead");
            (None, poll_interval.min(RENEW_CHECK))
        }
    };
    let polling = _watch.is_none();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let poll_issuer = tokio::select! {
            _ = &mut stop => return,
            _ = changed.notified() => true,
            _ = tick.tick() => polling,
        };
        let now = SystemTime::now();
        if poll_issuer {
            reloader.poll(now);
        }
        for own in &mut owns {
            if let Err(error) = own.refresh(&ca.borrow(), now) {
                tracing::error!(error = %chain(&error), "could not renew a controller certificate");
            }
        }
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

pub struct IssuerReloader {
    dir: PathBuf,
    trust: TrustDomain,
    ttl: Duration,
    seen: Option<[Vec<u8>; 3]>,
    last_error: Option<String>,
    tx: watch::Sender<Arc<Ca>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded { fingerprint: String },
    Refused { reason: String },
}

impl IssuerReloader {
    /// Loads the issuer now; fails if it is not valid.
    pub fn start(
        dir: PathBuf,
        trust: TrustDomain,
        ttl: Duration,
    ) -> Result<(Self, watch::Receiver<Arc<Ca>>), IssuerError> {
        let files = IssuerFiles::in_dir(&dir)?;
        let contents = files.read()?;
        let issuer = Issuer::from_pem(
            &contents[0],
            &contents[1],
            &contents[2],
            &files,
            SystemTime::now(),
        )?;
        tracing::info!(fingerprint = %issuer.fingerprint(), cert = %files.cert.display(), not_after = %ztmesh_identity::rfc3339(issuer.not_after()), "loaded identity issuer");
        let (tx, rx) = watch::channel(Arc::new(Ca::new(issuer, trust.clone(), ttl)));
        Ok((
            Self {
                dir,
                trust,
                ttl,
                seen: Some(contents),
                last_error: None,
                tx,
            },
            rx,
        ))
    }

    pub fn poll(&mut self, now: SystemTime) -> Reload {
        let outcome = self.check(now);
        match &outcome {
            Reload::Unchanged => {}
            Reload::Reloaded { fingerprint } => {
                self.last_error = None;
                tracing::info!(%fingerprint, dir = %self.dir.display(), "identity issuer reloaded; new certificates are signed by it");
            }
            Reload::Refused { reason } => {
                if self.last_error.as_ref() != Some(reason) {
                    tracing::warn!(%reason, "new identity issuer refused; the previous issuer stays in force");
                    self.last_error = Some(reason.clone());
                }
            }
        }
        outcome
    }

    fn check(&mut self, now: SystemTime) -> Reload {
        let refused = |e: IssuerError| Reload::Refused {
            reason: e.to_string(),
        };
        let files = match IssuerFiles::in_dir(&self.dir) {
            Ok(f) => f,
            Err(e) => return refused(e),
        };
        let contents = match files.read() {
            Ok(c) => c,
            Err(e) => return refused(e),
        };
        if self.seen.as_ref() == Some(&contents) {
            return Reload::Unchanged;
        }
        let result = Issuer::from_pem(&contents[0], &contents[1], &contents[2], &files, now);
        match result {
            Ok(issuer) => {
                self.seen = Some(contents);
                let fingerprint = issuer.fingerprint();
                self.tx
                    .send_replace(Arc::new(Ca::new(issuer, self.trust.clone(), self.ttl)));
                Reload::Reloaded { fingerprint }
            }
            Err(e) => refused(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztmesh_identity::install;

    fn setup() -> (tempfile::TempDir, IssuerReloader, watch::Receiver<Arc<Ca>>) {
        let dir = tempfile::tempdir().unwrap();
        install::install(dir.path(), &Default::default(), SystemTime::now()).unwrap();
        let (reloader, rx) = IssuerReloader::start(
            dir.path().into(),
            TrustDomain::default(),
            Duration::from_secs(3600),
        )
        .unwrap();
        (dir, reloader, rx)
    }

    #[test]
    fn reloads_a_new_issuer_and_keeps_the_old_on_bad_files() {
        let (dir, mut reloader, mut rx) = setup();
        let now = SystemTime::now();
        let first = rx.borrow_and_update().issuer().fingerprint();
        assert_eq!(reloader.poll(now), Reload::Unchanged);
        assert!(!rx.has_changed().unwrap());

        install::rotate_issuer(dir.path(), &Default::default(), now).unwrap();
        let Reload::Reloaded { fingerprint } = reloader.poll(now) else {
            panic!("expected a reload")
        };
        assert_ne!(fingerprint, first);
        assert_eq!(rx.borrow_and_update().issuer().fingerprint(), fingerprint);

        // A corrupt certificate is refused; the CA in force is unchanged.
        let good = std::fs::read(dir.path().join("issuer.crt")).unwrap();
        std::fs::write(
            dir.path().join("issuer.crt"),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let Reload::Refused { reason } = reloader.poll(now) else {
            panic!("expected a refusal")
        };
        assert!(reason.contains("issuer.crt"), "{reason}");
        assert!(!rx.has_changed().unwrap(), "nothing published");

        // An issuer from another install does not chain to our anchor.
        let other = tempfile::tempdir().unwrap();
        install::install(other.path(), &Default::default(), now).unwrap();
        std::fs::copy(
            other.path().join("issuer.crt"),
            dir.path().join("issuer.crt"),
        )
        .unwrap();
        std::fs::copy(
            other.path().join("issuer.key"),
            dir.path().join("issuer.key"),
        )
        .unwrap();
        let Reload::Refused { reason } = reloader.poll(now) else {
            panic!("expected a refusal")
        };
        assert!(
            reason.contains("not signed by any valid trust anchor"),
            "{reason}"
        );

        // A missing file is refused too; restoring the good files is no change.
        std::fs::remove_file(dir.path().join("issuer.key")).unwrap();
        assert!(matches!(reloader.poll(now), Reload::Refused { .. }));
        std::fs::write(dir.path().join("issuer.crt"), good).unwrap();
        assert!(
            matches!(reloader.poll(now), Reload::Refused { .. }),
            "key still missing"
        );
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn refuses_to_start_without_a_valid_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let err = IssuerReloader::start(
            dir.path().into(),
            TrustDomain::default(),
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("ztmesh install"), "{err}");
    }
}
