//! `ztmesh token create`: a service-account token for a local workload.

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use ztmesh_identity::token::{ServiceAccount, TokenSigner};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a signed token (JWT, audience identity.l5d.io) for NS/SA on stdout.
    Create(CreateArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The identity directory written by `ztmesh install` (reads token.key).
    #[arg(long)]
    dir: PathBuf,
    /// The workload's namespace.
    #[arg(long, short = 'n')]
    namespace: String,
    /// The workload's service account.
    #[arg(long)]
    service_account: String,
    /// How long the token is valid.
    #[arg(long, default_value = "24h", value_parser = crate::flags::duration)]
    ttl: Duration,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Create(args) = cmd;
    if args.ttl.as_secs() == 0 {
        anyhow::bail!("--ttl must be at least 1s");
    }
    // The names must make a valid identity; refuse now rather than at Certify.
    ztmesh_identity::TrustDomain::default().identity(&args.namespace, &args.service_account)?;
    let path = args.dir.join(ztmesh_identity::install::TOKEN_KEY_FILE);
    let pem = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (run `ztmesh install --dir {}` first)",
            path.display(),
            args.dir.display()
        )
    })?;
    let signer = TokenSigner::from_pem(&pem, &path.display().to_string())?;
    let token = signer.sign(
        &ServiceAccount {
            namespace: args.namespace,
            name: args.service_account,
        },
        args.ttl,
        SystemTime::now(),
    )?;
    println!("{token}");
    Ok(())
}
