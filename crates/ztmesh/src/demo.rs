//! `ztmesh demo`: what the mesh can do so far, end to end on this machine.
//!
//! Today that is workload identity: a fresh install, a real controller
//! process, three booksapp workloads certified by the proxy's own identity
//! client, a refused request, and an issuer rotation picked up without a
//! restart. Each step prints what it did; the controller is stopped at the
//! end (or kept with `--keep`).

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use ztmesh_identity::install::{self, InstallOptions};
use ztmesh_identity::token::{ServiceAccount, TokenSigner};
use ztmesh_proxy::identity::{Documents, IdentityConfig, IdentityDaemon, IdentityStatus};

#[derive(clap::Args)]
pub struct Args {
    /// Where to put the demo's identity directory [default: a new temporary directory].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep the controller running after the demo (stop it with Ctrl-C).
    #[arg(long)]
    keep: bool,
}

const WORKLOADS: [(&str, &str); 3] = [
    ("booksapp", "webapp"),
    ("booksapp", "books"),
    ("booksapp", "authors"),
];

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("ztmesh-demo-{}", std::process::id()));
            tmp
        }
    };
    step(1, "install: trust anchor, identity issuer and token key");
    let opts = InstallOptions {
        force: true,
        ..Default::default()
    };
    let installed = install::install(&dir, &opts, SystemTime::now())?;
    for f in &installed.files {
        println!("    wrote {}", f.display());
    }
    println!(
        "    trust anchor SHA-256 {}",
        installed.anchor_fingerprints[0]
    );

    step(
        2,
        "controller: Identity.Certify on a loopback port (plaintext on loopback, TLS elsewhere)",
    );
    let (mut controller, addr) = start_controller(&dir)?;
    println!("    controller pid {} serving on {addr}", controller.0.id());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        step(3, "workloads: each proxy identity client generates a key, sends a CSR with its token, verifies the chain");
        let signer = TokenSigner::from_pem(&std::fs::read(dir.join(install::TOKEN_KEY_FILE))?, "token.key")?;
        for (ns, sa) in WORKLOADS {
            let status = certify_workload(&dir, &addr, &signer, ns, sa).await?;
            let IdentityStatus::Ready { expiry } = status else {
                bail!("{sa} did not get a certificate: {status:?}");
            };
            println!(
                "    {sa:<8} {sa}.{ns}.serviceaccount.identity.linkerd.cluster.local  spiffe://cluster.local/ns/{ns}/sa/{sa}  until {}",
                ztmesh_identity::rfc3339(expiry)
            );
        }

        step(4, "refusal: the books token asking for the authors identity");
        match certify_with_token(&dir, &addr, &signer, ("booksapp", "books"), ("booksapp", "authors")).await {
            Err(e) => println!("    refused as it should be: {e}"),
            Ok(_) => bail!("the controller issued a certificate to the wrong service account"),
        }

        step(5, "rotation: a new issuer under the same anchor, picked up without a restart");
        let before = std::fs::read(dir.join(install::ISSUER_CERT_FILE))?;
        install::rotate_issuer(&dir, &opts, SystemTime::now())?;
        let after = std::fs::read(dir.join(install::ISSUER_CERT_FILE))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let chain = certify_with_token(&dir, &addr, &signer, ("booksapp", "books"), ("booksapp", "books")).await?;
            if chain.get(1).map(|c| ztmesh_identity::pem::encode("CERTIFICATE", c).into_bytes()) == Some(after.clone()) {
                println!("    new certificates chain through the rotated issuer; old one no longer used");
                break;
            }
            if Instant::now() > deadline {
                bail!("the controller did not pick up the rotated issuer within 10s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if before == after {
            bail!("the rotated issuer is identical to the old one");
        }
        Ok(())
    })?;

    println!("\nall steps passed.");
    if args.keep || args.dir.is_some() {
        println!("identity directory: {}", dir.display());
    }
    if args.keep {
        println!("controller still serving on {addr}; Ctrl-C to stop");
        controller.0.wait()?;
    } else if args.dir.is_none() {
        drop(controller);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn start_controller(dir: &Path) -> anyhow::Result<(Controller, String)> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .args([
            "controller",
            "--identity-addr",
            "127.0.0.1:0",
            "--issuer-poll-interval",
            "200ms",
            "--identity-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the controller")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let controller = Controller(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
            && let Some(rest) = line.split("listening on ").nth(1)
        {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            return Ok((controller, addr));
        }
    }
    bail!("the controller did not start within 20s")
}

fn token_file(
    dir: &Path,
    signer: &TokenSigner,
    ns: &str,
    sa: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let token = signer.sign(
        &ServiceAccount {
            namespace: ns.into(),
            name: sa.into(),
        },
        Duration::from_secs(3600),
        SystemTime::now(),
    )?;
    let path = dir.join(format!("{ns}-{sa}.token"));
    install::write_atomically(&path, token.as_bytes(), true)?;
    Ok(path)
}

fn workload_env(
    dir: &Path,
    addr: &str,
    token: &Path,
    name: &str,
) -> anyhow::Result<IdentityConfig> {
    let env: std::collections::HashMap<String, String> = [
        (
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            String::from_utf8(std::fs::read(dir.join(install::ANCHORS_FILE))?)?,
        ),
        (
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            token.display().to_string(),
        ),
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", addr.to_string()),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local".into(),
        ),
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", name.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(IdentityConfig::from_env(&env)?)
}

/// Runs one proxy identity client until it holds a certificate.
async fn certify_workload(
    dir: &Path,
    addr: &str,
    signer: &TokenSigner,
    ns: &str,
    sa: &str,
) -> anyhow::Result<IdentityStatus> {
    let name = format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let config = workload_env(dir, addr, &token_file(dir, signer, ns, sa)?, &name)?;
    let client = identity_client(&config)?;
    let daemon = IdentityDaemon::new(&config, Documents::generate(&name)?, client)
        .map_err(anyhow::Error::msg)?;
    let mut status = daemon.status();
    let task = tokio::spawn(daemon.run());
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| *s != IdentityStatus::Pending),
    )
    .await;
    task.abort();
    match result {
        Ok(Ok(s)) => Ok(s.clone()),
        _ => bail!("{name}: no certificate within 10s"),
    }
}

/// One Certify round for `want` using `token_for`'s token; returns the chain.
async fn certify_with_token(
    dir: &Path,
    addr: &str,
    signer: &TokenSigner,
    token_for: (&str, &str),
    want: (&str, &str),
) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    let name = format!(
        "{}.{}.serviceaccount.identity.linkerd.cluster.local",
        want.1, want.0
    );
    let config = workload_env(
        dir,
        addr,
        &token_file(dir, signer, token_for.0, token_for.1)?,
        &name,
    )?;
    let client = identity_client(&config)?;
    let mut daemon = IdentityDaemon::new(&config, Documents::generate(&name)?, client)
        .map_err(anyhow::Error::msg)?;
    daemon.refresh().await?;
    Ok(daemon
        .store()
        .get()
        .map(|c| c.cert.clone())
        .unwrap_or_default())
}

fn identity_client(
    config: &IdentityConfig,
) -> anyhow::Result<
    linkerd2_proxy_api::identity::identity_client::IdentityClient<tonic::transport::Channel>,
> {
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: config.svc_addr.clone(),
        server_name: config.svc_name.clone(),
        roots: Some(ztmesh_tls::roots_from_pem(
            config.trust_anchors_pem.as_bytes(),
        )?),
    })?;
    Ok(linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel))
}
