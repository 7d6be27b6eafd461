//! `ztmesh install`: the identity directory a controller serves from.

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use ztmesh_identity::install::{self, InstallOptions};
use ztmesh_identity::{TrustDomain, rfc3339};

#[derive(clap::Args)]
#[command(after_help = "Files written to DIR:\n  \
    ca.crt      trust anchor (give it to every proxy as LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS)\n  \
    ca.key      the anchor's key, 0600 (needed only by --rotate-issuer; move it offline otherwise)\n  \
    issuer.crt  identity issuer, signed by the anchor\n  \
    issuer.key  its key, 0600\n  \
    token.key   key that signs local service-account tokens, 0600\n\n\
    With --issuer-from, an issuer made elsewhere (cert-manager's tls.crt, tls.key and ca.crt,\n\
    e.g. from Vault) is validated and copied in instead of generating one.")]
pub struct Args {
    /// Directory to write the identity files to (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// The trust domain workload identities end in.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's namespace, part of every identity name.
    #[arg(long, default_value = "linkerd")]
    control_plane_namespace: String,
    /// How long the trust anchor is valid.
    #[arg(long, default_value = "8760h", value_parser = crate::flags::duration)]
    anchor_validity: Duration,
    /// How long the identity issuer is valid.
    #[arg(long, default_value = "8760h", value_parser = crate::flags::duration)]
    issuer_validity: Duration,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// Import an issuer from a directory in cert-manager's layout.
    #[arg(long, value_name = "DIR", conflicts_with = "rotate_issuer")]
    issuer_from: Option<PathBuf>,
    /// Replace only the issuer, signed by the existing anchor (ca.crt + ca.key).
    #[arg(long)]
    rotate_issuer: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let trust = TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    let opts = InstallOptions {
        trust,
        anchor_validity: args.anchor_validity,
        issuer_validity: args.issuer_validity,
        force: args.force,
    };
    let now = SystemTime::now();
    let installed = if args.rotate_issuer {
        install::rotate_issuer(&args.dir, &opts, now)
    } else if let Some(from) = &args.issuer_from {
        install::import_issuer(&args.dir, from, &opts, now)
    } else {
        install::install(&args.dir, &opts, now)
    }
    .with_context(|| format!("installing identity into {}", args.dir.display()))?;
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
