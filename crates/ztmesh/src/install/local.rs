//! `ztmesh install --dir`: the identity directory a local controller
//! serves from (ztmesh-identity's `install`).

use super::Args;
use anyhow::Context;
use std::path::Path;
use std::time::SystemTime;
use ztmesh_identity::install::{self, InstallOptions};
use ztmesh_identity::{TrustDomain, rfc3339};

pub(super) fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let trust = TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    let opts = InstallOptions {
        trust,
        anchor_validity: args.anchor_validity,
        issuer_validity: args.issuer_validity,
        force: args.force,
    };
    let now = SystemTime::now();
    let installed = if args.rotate_issuer {
        install::rotate_issuer(dir, &opts, now)
    } else if let Some(from) = &args.issuer_from {
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
