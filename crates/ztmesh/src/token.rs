//! `ztmesh token create`: a service-account token for a local workload,
//! or with `--node NAME` a node token for `ztmesh agent` (same key,
//! another audience and subject: see [`ztmesh_attestation::node_token`]).

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use ztmesh_attestation::NodeTokenSigner;
use ztmesh_identity::token::{ServiceAccount, TokenSigner};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a signed token (JWT, audience identity.l5d.io) for NS/SA on
    /// stdout; with --node NAME, a node token for `ztmesh agent`.
    Create(CreateArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The identity directory written by `ztmesh install` (reads token.key).
    #[arg(long)]
    dir: PathBuf,
    /// The workload's namespace.
    #[arg(long, short = 'n', required_unless_present = "node")]
    namespace: Option<String>,
    /// The workload's service account.
    #[arg(long, required_unless_present = "node")]
    service_account: Option<String>,
    /// A node token for the agent on node NAME instead (`ztmesh agent
    /// --node NAME`); the controller serves it only the identities its
    /// WorkloadAttestation resources assign to NAME.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["namespace", "service_account"])]
    node: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "24h", value_parser = crate::flags::duration)]
    ttl: Duration,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Create(args) = cmd;
    if args.ttl.as_secs() == 0 {
        anyhow::bail!("--ttl must be at least 1s");
    }
    let path = args.dir.join(ztmesh_identity::install::TOKEN_KEY_FILE);
    let pem = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (run `ztmesh install --dir {}` first)",
            path.display(),
            args.dir.display()
        )
    })?;
    let what = path.display().to_string();
    let token = match (args.node, args.namespace, args.service_account) {
        (Some(node), _, _) => {
            NodeTokenSigner::from_pem(&pem, &what)?.sign(&node, args.ttl, SystemTime::now())?
        }
        (None, Some(namespace), Some(name)) => {
            // The names must make a valid identity; refuse now rather than at Certify.
            ztmesh_identity::TrustDomain::default().identity(&namespace, &name)?;
            TokenSigner::from_pem(&pem, &what)?.sign(
                &ServiceAccount { namespace, name },
                args.ttl,
                SystemTime::now(),
            )?
        }
        _ => anyhow::bail!("give --namespace and --service-account, or --node"),
    };
    println!("{token}");
    Ok(())
}
