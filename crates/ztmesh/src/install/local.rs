//! `ztmesh install --dir`: the identity directory a local controller
//! serves from (ztmesh-identity's `install`).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use ztmesh_identity::install::{self, InstallOptions};
use ztmesh_identity::{TrustDomain, rfc3339};

/// What to do to the directory.
pub(super) enum Action {
    Install,
    ImportIssuer(PathBuf),
    RotateIssuer,
}

pub(super) fn run(
    dir: &Path,
    trust: TrustDomain,
    validity: (std::time::Duration, std::time::Duration),
    force: bool,
    action: &Action,
) -> anyhow::Result<()> {
    let opts = InstallOptions {
        trust,
        anchor_validity: validity.0,
        issuer_validity: validity.1,
        force,
    };
    let now = SystemTime::now();
    let installed = if let Action::RotateIssuer = action {
        install::rotate_issuer(dir, &opts, now)
    } else if let Action::ImportIssuer(from) = action {
        install::import_issuer(dir, from, &opts, now)
    } else {
        install::install(dir, &opts, now)
    }
    .with_context(|| format!("installing identity into {}", dir.display()))?;
    for file in &installed.files {
        println!("wrote {}", file.display());
    }
    for fp in &installed.anchor_fingerprints {
        println!("trust anchor SHA-256 fingerprint: {fp}");
    }
    let issuer_until = installed
        .issuer_not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!(
        "identity issuer valid until: {} (unix {issuer_until})",
        rfc3339(installed.issuer_not_after)
    );
    Ok(())
}
