//! `ztmesh demo`: a whole local mesh on this machine, no Kubernetes and no
//! root: a fresh install, a real controller process serving booksapp's
//! manifests, workload identities certified by the proxy's own identity
//! client (a refused request, an issuer rotation picked up without a
//! restart), then booksapp's four workloads each behind a real proxy
//! (explicit mode, loopback addresses 127.0.9.2-5): mTLS with both
//! identities, the seed's authorization policy enforced and explained, and
//! live figures from the controller's viz API. Each step prints what it did
//! and checks it; everything is stopped at the end (or kept with `--keep`).
//!
//! [`identity`] holds the certification steps, [`mesh`] the workloads and
//! what they show, [`compliance`] the final compliance report (with its
//! one deliberately non-compliant edge: the plaintext client).

mod compliance;
mod identity;
mod mesh;

use anyhow::{Context, bail};
use identity::{certify_with_token, certify_workload};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use ztmesh_identity::install::{self, InstallOptions};
use ztmesh_identity::token::TokenSigner;
use ztmesh_proxy::identity::IdentityStatus;

#[derive(clap::Args)]
pub struct Args {
    /// The demo's directory: identity files, manifests, logs [default: a new temporary directory, removed at the end].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep the mesh running after the demo (stop it with Ctrl-C).
    #[arg(long)]
    keep: bool,
}

const CERTIFIED: [(&str, &str); 3] = [
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
        "controller: identity, destination, policy and viz API on loopback ports, serving booksapp's manifests",
    );
    let (controller, cp) = start_controller(&dir, args.keep)?;
    println!(
        "    controller pid {}: identity {}, destination {}, policy {}, viz API {}",
        controller.0.id(),
        cp.identity,
        cp.destination,
        cp.policy,
        cp.viz
    );
    let addr = cp.identity.clone();
    let mut procs = mesh::Processes::default();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        step(3, "identities: each proxy identity client generates a key, sends a CSR with its token, verifies the chain");
        let signer = TokenSigner::from_pem(&std::fs::read(dir.join(install::TOKEN_KEY_FILE))?, "token.key")?;
        for (ns, sa) in CERTIFIED {
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

        step(6, "workloads: booksapp's apps, each behind its own ztmesh proxy (explicit mode: no iptables, no root)");
        mesh::start_workloads(&mut procs, &dir, &cp, &signer).await?;

        step(7, "mTLS and authorization: the seed's policy (only books and webapp may GET authors' routes)");
        mesh::show_policy(&dir.join("logs")).await?;

        step(8, "explain: why traffic was denied, from the controller's policy");
        mesh::explain_denial(&cp.policy)?;

        step(9, "observe: live figures aggregated by the controller from the proxies");
        mesh::show_traffic(&cp.viz).await?;
        mesh::show_edges(&dir.join("manifests"))?;

        step(10, "compliance: `ztmesh check --compliance`, the seed's invariants and the hardening checklist");
        compliance::show(&dir, &cp, args.keep).await?;
        Ok(())
    })?;

    println!("\nall steps passed.");
    if args.keep || args.dir.is_some() {
        println!("identity directory: {}", dir.display());
    }
    if args.keep {
        println!(
            "\nthe mesh is still running; try:\n  curl -x http://127.0.9.4:4140 http://authors.booksapp.svc.cluster.local:7001/authors.json   # as webapp\n  curl -x http://127.0.9.5:4140 http://authors.booksapp.svc.cluster.local:7001/authors.json   # as traffic: 403\n  ztmesh viz stat deploy -n booksapp      # the controller at {}, from its context file\n  ztmesh viz edges -n booksapp\n  ztmesh viz tap deploy/webapp -n booksapp   # and viz top\n  ztmesh viz dashboard\n  ztmesh authz deploy/authors -n booksapp --manifests {}\n  ztmesh diagnose policy -n booksapp --from deploy/traffic --to deploy/authors:7001 --manifests {}\n  ztmesh check                  # and check --proxy, check --compliance\n  ztmesh identity deploy/authors -n booksapp\nCtrl-C to stop",
            cp.viz,
            dir.join("manifests").display(),
            dir.join("manifests").display()
        );
        // Until Ctrl-C or SIGTERM; then every process is stopped.
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            anyhow::Ok(())
        })?;
        println!("stopping the mesh");
    }
    drop(procs);
    drop(controller);
    if args.dir.is_none() && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn start_controller(dir: &Path, keep: bool) -> anyhow::Result<(Controller, mesh::ControlPlane)> {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;
    std::fs::write(manifests.join("booksapp.yaml"), mesh::MANIFESTS)
        .with_context(|| format!("writing {}", manifests.display()))?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log = std::fs::File::create(logs.join("controller.log"))?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .arg("controller")
        .args(["--issuer-poll-interval", "200ms"])
        .args(["--identity-addr", "127.0.0.1:0"])
        .args(["--destination-addr", "127.0.0.1:0"])
        .args(["--policy-addr", "127.0.0.1:0"])
        .args(["--viz-addr", "127.0.0.1:0"])
        .arg("--identity-dir")
        .arg(dir)
        .arg("--manifests")
        .arg(&manifests)
        // Only a kept mesh becomes the CLI's default controller; otherwise
        // the context goes to the demo's directory (for the command step 10
        // prints).
        .envs((!keep).then(|| ("ZTMESH_CONTEXT", dir.join(compliance::CONTEXT_FILE))))
        .stdout(Stdio::piped())
        .stderr(log)
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
    let mut found: [Option<String>; 4] = Default::default();
    let services = [
        "identity service",
        "destination service",
        "policy service",
        "viz API",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        for (i, service) in services.iter().enumerate() {
            if let Some(rest) = line.split(&format!("{service} listening on ")).nth(1) {
                found[i] = rest.split_whitespace().next().map(String::from);
            }
        }
        if let [Some(identity), Some(destination), Some(policy), Some(viz)] = &found {
            return Ok((
                controller,
                mesh::ControlPlane {
                    identity: identity.clone(),
                    destination: destination.clone(),
                    policy: policy.clone(),
                    viz: viz.clone(),
                },
            ));
        }
    }
    bail!(
        "the controller did not start within 20s (log: {})",
        logs.join("controller.log").display()
    )
}
