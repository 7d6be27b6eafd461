//! `ztmesh install --dir D --rotate-anchor PHASE`: trust-anchor rotation
//! in three phases, each checked against the running proxies and reported.
//!
//! 1. `add`: a new anchor (and key) is made; `ca.crt` becomes the bundle
//!    new + old (the new one first: it signs from now on), the old key is
//!    kept as `ca.key.previous`. Proxies that follow `ca.crt` as their
//!    bundle file (`ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`) take it
//!    within seconds; the report says which proxies trust the new anchor.
//! 2. `issue`: a new issuer under the new anchor (the controller reloads
//!    it; proxies renew onto it). Refused while a proxy does not trust the
//!    new anchor yet, naming them: their peers' new leaves would fail.
//! 3. `remove`: `ca.crt` keeps only the new anchor. Refused while a proxy
//!    still holds a leaf that does not chain to it, naming them; refused
//!    too when the proxies cannot be observed (unless `--force`).
//!
//! The proxies are found as `ztmesh check --proxy` finds them (the
//! controller's context, `--controller`, `--manifests`). [`trusting`] and
//! [`holding_old`] are the pure decisions, tested on generated chains.

use crate::check::chain;
use crate::check::mesh::{self, WorkloadObs};
use anyhow::Context;
use rustls_pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use ztmesh_identity::install::{self, ANCHOR_KEY_FILE, ANCHORS_FILE, InstallOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Phase {
    /// Add a new anchor to the bundle (it signs from now on).
    Add,
    /// Issue a new issuer under the new anchor.
    Issue,
    /// Remove the old anchors from the bundle.
    Remove,
}

/// The previous anchor's key, kept after `add`.
const PREVIOUS_KEY_FILE: &str = "ca.key.previous";

/// What one proxy showed.
#[derive(Debug)]
pub(crate) struct ProxyView {
    pub(crate) name: String,
    pub(crate) identity: String,
    /// The anchors it trusts (SHA-256), if its metrics answered.
    pub(crate) trusts: Option<BTreeSet<String>>,
    /// The chain it presents, or why none was read.
    pub(crate) chain: Result<Vec<CertificateDer<'static>>, String>,
}

impl ProxyView {
    fn of(w: &WorkloadObs) -> Self {
        Self {
            name: w.workload.display(),
            identity: w.workload.identity.clone(),
            trusts: crate::check::exported_anchors(w),
            chain: w
                .chain
                .as_ref()
                .map(Clone::clone)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The proxies that do not (visibly) trust the anchor `fp`, with why.
pub(crate) fn trusting(proxies: &[ProxyView], fp: &str) -> Vec<String> {
    proxies
        .iter()
        .filter_map(|p| match &p.trusts {
            Some(t) if t.contains(fp) => None,
            Some(_) => Some(format!("{} (does not trust it yet)", p.name)),
            None => Some(format!("{} (its metrics did not answer)", p.name)),
        })
        .collect()
}

/// The proxies whose leaf does not chain to `anchors_pem` (or whose chain
/// could not be read), with why.
pub(crate) fn holding_old(
    proxies: &[ProxyView],
    anchors_pem: &[u8],
    now: SystemTime,
) -> Vec<String> {
    proxies
        .iter()
        .filter_map(|p| match &p.chain {
            Ok(c) => chain::verify(c, anchors_pem, &p.identity, now)
                .err()
                .map(|e| format!("{} ({e})", p.name)),
            Err(e) => Some(format!("{} (no chain read: {e})", p.name)),
        })
        .collect()
}

/// Where the proxies are found.
pub(crate) struct Observe {
    pub(crate) controller: crate::mesh_context::ControllerArg,
    pub(crate) manifests: Option<PathBuf>,
}

pub(crate) fn run(
    dir: &Path,
    phase: Phase,
    opts: &InstallOptions,
    observe: &Observe,
) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let anchors = read_anchors(dir)?;
    match phase {
        Phase::Add => {
            anyhow::ensure!(
                anchors.len() == 1 || opts.force,
                "{} already holds {} anchors: a rotation is under way; finish it with --rotate-anchor remove",
                dir.join(ANCHORS_FILE).display(),
                anchors.len()
            );
            let new = add(dir, opts, now)?;
            println!(
                "phase 1/3 (add): {} now holds the new anchor {new} (signing from now on) and {} old one(s)",
                dir.join(ANCHORS_FILE).display(),
                anchors.len()
            );
            let proxies = proxies(dir, observe)?;
            let missing = trusting(&proxies, &new);
            report(&proxies, &missing, "trust the new anchor");
            if !missing.is_empty() {
                println!(
                    "  proxies following ca.crt as their bundle file take it within seconds; those given the anchors in their environment need a restart"
                );
            }
            println!(
                "next: ztmesh install --dir {} --rotate-anchor issue",
                dir.display()
            );
        }
        Phase::Issue => {
            anyhow::ensure!(
                anchors.len() > 1,
                "{} holds one anchor: run --rotate-anchor add first",
                dir.join(ANCHORS_FILE).display()
            );
            let new = chain::sha256(&anchors[0]);
            let proxies = proxies(dir, observe)?;
            let missing = trusting(&proxies, &new);
            if !missing.is_empty() && !opts.force {
                anyhow::bail!(
                    "refused: a new issuer under {new} would be refused by proxies that do not trust it: {}",
                    missing.join(", ")
                );
            }
            let installed = install::rotate_issuer(dir, opts, now)
                .with_context(|| format!("issuing under the new anchor in {}", dir.display()))?;
            println!(
                "phase 2/3 (issue): a new issuer under {new}, valid until {}; the controller reloads it and proxies renew onto it",
                ztmesh_identity::rfc3339(installed.issuer_not_after)
            );
            println!(
                "next, once every proxy has renewed: ztmesh install --dir {} --rotate-anchor remove",
                dir.display()
            );
        }
        Phase::Remove => {
            anyhow::ensure!(
                anchors.len() > 1,
                "{} holds one anchor: nothing to remove",
                dir.join(ANCHORS_FILE).display()
            );
            let new_pem = ztmesh_identity::pem::encode("CERTIFICATE", &anchors[0]);
            let proxies = proxies(dir, observe)?;
            if proxies.is_empty() && !opts.force {
                anyhow::bail!(
                    "refused: no proxy could be observed, so none is known not to hold a leaf under an old anchor (pass --controller/--manifests, or --force)"
                );
            }
            let holders = holding_old(&proxies, new_pem.as_bytes(), now);
            if !holders.is_empty() && !opts.force {
                anyhow::bail!(
                    "refused: removing the old anchors would break trust in these proxies' leaves: {}",
                    holders.join(", ")
                );
            }
            install::write_atomically(&dir.join(ANCHORS_FILE), new_pem.as_bytes(), false)
                .with_context(|| format!("writing {}", dir.join(ANCHORS_FILE).display()))?;
            println!(
                "phase 3/3 (remove): {} holds only {}; {} proxies checked, every leaf chains to it",
                dir.join(ANCHORS_FILE).display(),
                chain::sha256(&anchors[0]),
                proxies.len()
            );
        }
    }
    Ok(())
}

fn read_anchors(dir: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let path = dir.join(ANCHORS_FILE);
    let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ztmesh_identity::pem::certificates(
        &pem,
        &path.display().to_string(),
    )?)
}

/// Makes a new anchor and key; the bundle becomes new + old. Returns the
/// new anchor's fingerprint.
fn add(dir: &Path, opts: &InstallOptions, now: SystemTime) -> anyhow::Result<String> {
    // A whole install in a scratch directory beside `dir` (same
    // filesystem, same permissions), of which the anchor and key are kept.
    let scratch = dir.join(".rotate-anchor-new");
    let fresh = InstallOptions {
        force: true,
        ..opts.clone()
    };
    install::install(&scratch, &fresh, now).context("making a new anchor")?;
    let read = |p: PathBuf| std::fs::read(&p).with_context(|| format!("reading {}", p.display()));
    let made = (
        read(scratch.join(ANCHORS_FILE)),
        read(scratch.join(ANCHOR_KEY_FILE)),
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let (new_cert, new_key) = (made.0?, made.1?);
    let old_bundle = read(dir.join(ANCHORS_FILE))?;
    let old_key = read(dir.join(ANCHOR_KEY_FILE))?;
    let write = |name: &str, bytes: &[u8], secret: bool| {
        install::write_atomically(&dir.join(name), bytes, secret)
            .with_context(|| format!("writing {}", dir.join(name).display()))
    };
    write(PREVIOUS_KEY_FILE, &old_key, true)?;
    let mut bundle = new_cert.clone();
    if !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(&old_bundle);
    // The key first: a reader that sees the new bundle finds its key.
    write(ANCHOR_KEY_FILE, &new_key, true)?;
    write(ANCHORS_FILE, &bundle, false)?;
    let cert = ztmesh_identity::pem::certificates(&new_cert, "new anchor")?;
    Ok(chain::sha256(&cert[0]))
}

/// The proxies `ztmesh check --proxy` would look at.
fn proxies(dir: &Path, observe: &Observe) -> anyhow::Result<Vec<ProxyView>> {
    let target = mesh::Target::find(
        &observe.controller,
        Some(dir.to_path_buf()),
        observe.manifests.clone(),
        &crate::mesh_context::ProcessEnv,
    );
    let Ok(resolved) = target.resolved else {
        println!("  no controller found (pass --controller or --manifests): no proxy observed");
        return Ok(Vec::new());
    };
    let trust = mesh::TrustFiles::read(Some(dir));
    let probe = mesh::Probe {
        admin_port: 4191,
        inbound_port: 4143,
        timeout: Duration::from_secs(2),
        namespace: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let observed = runtime.block_on(mesh::observe(&resolved, &trust, &probe));
    Ok(observed.workloads.iter().map(ProxyView::of).collect())
}

fn report(proxies: &[ProxyView], missing: &[String], what: &str) {
    println!(
        "  {} of {} proxies {what}",
        proxies.len() - missing.len(),
        proxies.len()
    );
    for m in missing {
        println!("  not yet: {m}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztmesh_test_support::{TestPki, csr_for};

    const WEB: &str = "web.ns.serviceaccount.identity.linkerd.cluster.local";

    fn leaf(pki: &TestPki) -> Vec<CertificateDer<'static>> {
        let id = ztmesh_identity::IdentityName::parse_dns(WEB).unwrap();
        let (_, csr) = csr_for(WEB);
        let csr = ztmesh_identity::csr::validate(&csr, &id).unwrap();
        let issued = pki
            .ca(Duration::from_secs(3600))
            .issue(&id, csr.public_key(), SystemTime::now())
            .unwrap();
        let mut chain = vec![issued.leaf];
        chain.extend(issued.intermediates);
        chain
    }

    fn view(
        name: &str,
        trusts: Option<&[&str]>,
        chain: Result<Vec<CertificateDer<'static>>, String>,
    ) -> ProxyView {
        ProxyView {
            name: name.into(),
            identity: WEB.into(),
            trusts: trusts.map(|t| t.iter().map(|s| s.to_string()).collect()),
            chain,
        }
    }

    #[test]
    fn issue_waits_for_every_proxy_to_trust_the_new_anchor_table() {
        let cases: [(Option<&[&str]>, bool); 4] = [
            (Some(&["NEW", "OLD"]), true),
            (Some(&["NEW"]), true),
            (Some(&["OLD"]), false),
            (None, false),
        ];
        for (trusts, ok) in cases {
            let proxies = [view("ns/web", trusts, Err("unused".into()))];
            let missing = trusting(&proxies, "NEW");
            assert_eq!(missing.is_empty(), ok, "{trusts:?}: {missing:?}");
            if !ok {
                assert!(missing[0].starts_with("ns/web ("), "{missing:?}");
            }
        }
    }

    #[test]
    fn remove_is_refused_while_a_proxy_holds_a_leaf_under_an_old_anchor() {
        let (old, new) = (TestPki::new(), TestPki::new());
        let new_pem = new.anchors_pem();
        let proxies = [
            view("ns/renewed", None, Ok(leaf(&new))),
            view("ns/stale", None, Ok(leaf(&old))),
            view("ns/silent", None, Err("connection refused".into())),
        ];
        let holders = holding_old(&proxies, &new_pem, SystemTime::now());
        assert_eq!(holders.len(), 2, "{holders:?}");
        assert!(holders[0].starts_with("ns/stale ("), "{holders:?}");
        assert!(
            holders[1].starts_with("ns/silent (no chain read"),
            "{holders:?}"
        );
        assert!(holding_old(&proxies[..1], &new_pem, SystemTime::now()).is_empty());
    }

    #[test]
    fn the_three_phases_on_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let opts = InstallOptions {
            trust: ztmesh_identity::TrustDomain::default(),
            anchor_validity: Duration::from_secs(86400),
            issuer_validity: Duration::from_secs(86400),
            force: false,
        };
        install::install(dir.path(), &opts, SystemTime::now()).unwrap();
        let before = read_anchors(dir.path()).unwrap();
        let new = add(dir.path(), &opts, SystemTime::now()).unwrap();
        let bundle = read_anchors(dir.path()).unwrap();
        assert_eq!(bundle.len(), 2);
        assert_eq!(chain::sha256(&bundle[0]), new, "the new anchor first");
        assert_eq!(bundle[1], before[0], "the old one kept");
        assert!(dir.path().join(PREVIOUS_KEY_FILE).exists());
        assert!(!dir.path().join(".rotate-anchor-new").exists());
        install::rotate_issuer(dir.path(), &opts, SystemTime::now()).unwrap();
        let observe = Observe {
            controller: crate::mesh_context::ControllerArg {
                controller: Some("127.0.0.1:1".into()),
            },
            manifests: None,
        };
        // Nothing observed: remove refuses without --force.
        let err = run(dir.path(), Phase::Remove, &opts, &observe).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(read_anchors(dir.path()).unwrap().len(), 2);
        let forced = InstallOptions {
            force: true,
            ..opts.clone()
        };
        run(dir.path(), Phase::Remove, &forced, &observe).unwrap();
        assert_eq!(read_anchors(dir.path()).unwrap(), vec![bundle[0].clone()]);
        // The issuer of phase 2 chains to the new anchor alone.
        ztmesh_identity::Issuer::load_dir(dir.path(), SystemTime::now())
            .expect("the new issuer loads under the new anchor only");
        // And `add` refuses while a rotation is under way.
        add(dir.path(), &opts, SystemTime::now()).unwrap();
        let err = run(dir.path(), Phase::Add, &opts, &observe).unwrap_err();
        assert!(err.to_string().contains("rotation is under way"), "{err}");
    }
}
