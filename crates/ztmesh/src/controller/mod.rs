//! `ztmesh controller`: the control plane process.
//!
//! It serves `io.linkerd.proxy.identity.Identity/Certify` and, with
//! `--manifests DIR`, `io.linkerd.proxy.inbound.InboundServerPolicies` from
//! the policy index that the directory feeds ([`policy`]). The issuer
//! is read from `--identity-dir` at start (the controller refuses to start
//! without a valid one) and then re-read every `--issuer-poll-interval`
//! ([`issuer_reload`]): a new valid issuer signs from the next request on, an
//! invalid one is refused with a logged reason and the previous one stays in
//! force. Connections accepted on loopback are plaintext; any other is TLS
//! with the controller's own identity ([`own_identity`]).
//!
//! Every listener is bound before anything is served: one that cannot be
//! bound stops the process with an error naming its address. The manifests
//! are read on a thread of their own ([`policy::Scanner`]); policy and
//! destination are served once the first scan is in the indexes, identity
//! at once. On SIGTERM or Ctrl-C every listener stops, open streams get
//! [`SHUTDOWN_GRACE`] to finish, and then the process exits.

mod issuer_reload;
pub(crate) mod own_identity;
mod policy;

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use ztmesh_identity::TrustDomain;
use ztmesh_identity::token::TokenSigner;

#[derive(clap::Args)]
pub struct Args {
    /// Directory holding ca.crt and the issuer (issuer.crt + issuer.key from
    /// `ztmesh install`, or cert-manager's tls.crt + tls.key); watched for changes.
    #[arg(long, required_unless_present = "check")]
    identity_dir: Option<PathBuf>,
    /// Directory of YAML manifests (Linkerd policy resources, Pods,
    /// ExternalWorkloads, ...), watched; edits reach the proxies within 1s.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Validate --manifests, print every problem, and exit (non-zero on errors).
    #[arg(long, requires = "manifests")]
    check: bool,
    /// Where InboundServerPolicies listens (needs --manifests).
    #[arg(long, default_value = "127.0.0.1:8090")]
    policy_addr: SocketAddr,
    /// Where Destination (Get, GetProfile) listens (needs --manifests).
    #[arg(long, default_value = "127.0.0.1:8086")]
    destination_addr: SocketAddr,
    /// Where the viz API listens (GET /stat: per-workload figures the
    /// controller aggregates from the proxies' admin ports; GET /status: the
    /// refused manifests, why, and what of each is in force, as JSON; needs --manifests).
    #[arg(long, default_value_t = crate::viz::api::default_addr())]
    viz_addr: SocketAddr,
    /// Have the viz API read the proxies' figures from this Prometheus
    /// server (`http://host:port`) instead of scraping their admin ports.
    /// Series are matched to workloads by their `namespace` and `pod`
    /// labels, or by `instance` (the proxy's admin address, IP:4191).
    #[arg(long)]
    prometheus: Option<crate::viz::prometheus::Prometheus>,
    /// The cluster's DNS domain, in service names (`svc.ns.svc.DOMAIN`).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Networks the cluster-* default policies and legacy ServerAuthorizations trust.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
    )]
    cluster_networks: Vec<ipnet::IpNet>,
    /// The cluster-wide default inbound policy.
    #[arg(long, default_value = "all-unauthenticated")]
    default_inbound_policy: String,
    /// Where Identity.Certify listens. On a loopback address it is plaintext;
    /// elsewhere TLS with the controller's identity.
    #[arg(long, default_value = "127.0.0.1:8080")]
    identity_addr: SocketAddr,
    /// Lifetime of issued workload certificates (clamped to the issuer's).
    #[arg(long, default_value = "24h", value_parser = crate::duration)]
    identity_ttl: Duration,
    /// The trust domain identities must belong to.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's namespace, part of every identity name.
    #[arg(long, default_value = "linkerd")]
    control_plane_namespace: String,
    /// The key that verifies local service-account tokens [default: IDENTITY_DIR/token.key].
    #[arg(long)]
    token_key: Option<PathBuf>,
    /// How often the issuer files are checked for changes.
    #[arg(long, default_value = "1s", value_parser = crate::duration)]
    issuer_poll_interval: Duration,
    /// Where the last good content of every manifest is recorded (atomically;
    /// a directory created 0700, with one subdirectory manifests-HASH per
    /// manifests directory), so that a file refused at start-up keeps its
    /// last good content in force across restarts [default: IDENTITY_DIR/.ztmesh-state]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Manifest files larger than this are refused unread (bytes, or KiB, MiB, GiB);
    /// files nested deeper than 100 levels are refused before parsing.
    #[arg(long, default_value = "1MiB", value_parser = ztmesh_resources::bounds::parse_size)]
    manifest_size_limit: u64,
}

/// How long open connections and streams get to finish after SIGTERM.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        let dir = args
            .manifests
            .as_deref()
            .expect("clap requires --manifests with --check");
        return policy::check(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(args));
    // Whatever is left (connections past the grace period) is dropped.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Binds `addr` for `what`; the error names both.
async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} to {addr}"))
}

/// The listeners of policy, destination and the viz API.
struct ManifestListeners {
    policy: tokio::net::TcpListener,
    destination: tokio::net::TcpListener,
    viz: tokio::net::TcpListener,
}

/// The state directory for `manifests` under `root`: `manifests-HASH`,
/// HASH the FNV-1a of the directory's canonical path, so controllers of
/// different manifests directories never share one.
fn state_dir_for(root: &Path, manifests: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let canonical = std::fs::canonicalize(manifests)
        .or_else(|_| std::path::absolute(manifests))
        .unwrap_or_else(|_| manifests.to_path_buf());
    let hash = canonical
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    root.join(format!("manifests-{hash:016x}"))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("handling SIGTERM")?;
    // Every listener first: a port in use stops the process before anything is served.
    let listener = bind(args.identity_addr, "identity service").await?;
    let manifest_listeners = match &args.manifests {
        None => None,
        Some(_) => Some(ManifestListeners {
            policy: bind(args.policy_addr, "policy service").await?,
            destination: bind(args.destination_addr, "destination service").await?,
            viz: bind(args.viz_addr, "viz API").await?,
        }),
    };
    let trust = TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    let identity_dir = args
        .identity_dir
        .clone()
        .expect("clap requires --identity-dir");
    let (mut reloader, ca) = issuer_reload::IssuerReloader::start(
        identity_dir.clone(),
        trust.clone(),
        args.identity_ttl,
    )
    .with_context(|| {
        format!(
            "loading the identity issuer from {}",
            identity_dir.display()
        )
    })?;
    let token_key = args
        .token_key
        .clone()
        .unwrap_or_else(|| identity_dir.join(ztmesh_identity::install::TOKEN_KEY_FILE));
    let pem = std::fs::read(&token_key)
        .with_context(|| format!("reading the token key {}", token_key.display()))?;
    let verifier =
        Arc::new(TokenSigner::from_pem(&pem, &token_key.display().to_string())?.verifier());

    let own_name = trust.identity(&args.control_plane_namespace, "linkerd-identity")?;
    let mut own = own_identity::OwnIdentity::new(own_name.clone())?;
    own.refresh(&ca.borrow(), SystemTime::now())?;
    let tls = ztmesh_tls::server_config(own.store(), ztmesh_tls::TlsVersions::Tls13Only, &[b"h2"])?;
    // Destination and policy prove linkerd-destination's identity, as in Linkerd.
    let dst_name = trust.identity(&args.control_plane_namespace, "linkerd-destination")?;
    let mut dst_own = own_identity::OwnIdentity::new(dst_name.clone())?;
    dst_own.refresh(&ca.borrow(), SystemTime::now())?;
    let dst_tls = ztmesh_tls::server_config(
        dst_own.store(),
        ztmesh_tls::TlsVersions::Tls13Only,
        &[b"h2"],
    )?;

    let local = listener.local_addr()?;
    println!(
        "identity service listening on {local} (plaintext on loopback addresses, TLS as {own_name} on others)"
    );

    let interval = args.issuer_poll_interval;
    let reload_ca = ca.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = SystemTime::now();
            reloader.poll(now);
            for own in [&mut own, &mut dst_own] {
                if let Err(error) = own.refresh(&reload_ca.borrow(), now) {
                    tracing::error!(%error, "could not renew a controller certificate");
                }
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal(term).await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mut servers = tokio::task::JoinSet::new();
    let service = ztmesh_grpc::identity::IdentityService::new(ca, verifier);
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_service(service.into_server());
    let identity = ztmesh_grpc::server::serve(listener, router, tls, stopped(stop_rx.clone()));
    servers.spawn(async move {
        (
            "identity service",
            identity.await.map_err(anyhow::Error::from),
        )
    });

    // Kept until the end: dropping it stops the scanner thread.
    let mut _scanner_stop = None;
    if let (Some(dir), Some(listeners)) = (&args.manifests, manifest_listeners) {
        let cluster = ztmesh_policy::ClusterInfo {
            networks: args.cluster_networks.clone(),
            default_policy: args
                .default_inbound_policy
                .parse()
                .map_err(anyhow::Error::msg)?,
            control_plane_ns: args.control_plane_namespace.clone(),
            trust_domain: args.trust_domain.clone(),
            ..Default::default()
        };
        let indexes = policy::Indexes {
            policy: Arc::new(std::sync::Mutex::new(ztmesh_policy::Index::new(cluster))),
            outbound: Arc::new(std::sync::Mutex::new(
                ztmesh_policy::outbound::OutboundIndex::new(&args.cluster_domain),
            )),
            destination: Arc::new(std::sync::Mutex::new(ztmesh_destination::Index::new(
                ztmesh_destination::DestinationCluster {
                    control_plane_ns: args.control_plane_namespace.clone(),
                    trust_domain: args.trust_domain.clone(),
                    cluster_domain: args.cluster_domain.clone(),
                },
            ))),
        };
        let state_root = args
            .state_dir
            .clone()
            .unwrap_or_else(|| identity_dir.join(".ztmesh-state"));
        let state_dir = state_dir_for(&state_root, dir);
        let limits = ztmesh_resources::bounds::Limits {
            max_bytes: args.manifest_size_limit,
            ..Default::default()
        };
        let status = Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
        let scanner = policy::Scanner::start(
            dir.clone(),
            state_dir.clone(),
            limits,
            indexes.clone(),
            status.clone(),
        )
        .context("starting the manifest scanner")?;

        let viz_source = match args.prometheus.clone() {
            Some(server) => crate::viz::api::Source::Prometheus {
                server,
                admin_port: 4191,
            },
            None => crate::viz::api::Source::Scrape { admin_port: 4191 },
        };
        println!(
            "viz API listening on {} (plain HTTP: GET /stat?namespace=NS&window=SECONDS, GET /status: refused manifests as JSON); figures {}",
            listeners.viz.local_addr()?,
            match &viz_source {
                crate::viz::api::Source::Prometheus { server, .. } =>
                    format!("from Prometheus at {server}"),
                crate::viz::api::Source::Scrape { admin_port } =>
                    format!("scraped from the proxies' admin port {admin_port}"),
            }
        );
        println!(
            "policy service listening on {} (plaintext on loopback addresses, TLS as {dst_name} on others); manifests from {}",
            listeners.policy.local_addr()?,
            dir.display()
        );
        println!(
            "destination service listening on {} (plaintext on loopback addresses, TLS as {dst_name} on others)",
            listeners.destination.local_addr()?
        );

        // Policy is served from the first complete scan, never from an empty index.
        let policy::Scanner { ready, stop } = scanner;
        _scanner_stop = Some(stop);
        tokio::select! {
            r = ready => {
                r.context("the manifest scanner stopped before its first scan")??;
                println!(
                    "manifests from {} in force; last good content recorded in {}",
                    dir.display(),
                    state_dir.display()
                );
            }
            _ = stopped(stop_rx.clone()) => {}
        }
        let viz = crate::viz::api::serve(
            listeners.viz,
            indexes.policy.clone(),
            viz_source,
            status,
            stopped(stop_rx.clone()),
        );
        servers.spawn(async move {
            viz.await;
            ("viz API", Ok(()))
        });
        let policy_router = tonic::transport::Server::builder()
            .add_service(
                ztmesh_grpc::inbound::InboundPolicyService::new(indexes.policy.clone())
                    .into_server(),
            )
            .add_service(
                ztmesh_grpc::outbound::OutboundPolicyService::new(indexes.outbound.clone())
                    .into_server(),
            );
        let destination_router = tonic::transport::Server::builder().add_service(
            ztmesh_grpc::destination::DestinationService::new(indexes.destination.clone())
                .into_server(),
        );
        let policy = ztmesh_grpc::server::serve(
            listeners.policy,
            policy_router,
            dst_tls.clone(),
            stopped(stop_rx.clone()),
        );
        servers.spawn(async move { ("policy service", policy.await.map_err(anyhow::Error::from)) });
        let destination = ztmesh_grpc::server::serve(
            listeners.destination,
            destination_router,
            dst_tls,
            stopped(stop_rx.clone()),
        );
        servers.spawn(async move {
            (
                "destination service",
                destination.await.map_err(anyhow::Error::from),
            )
        });
    }

    // Until a signal, or until a server fails (then the process does too).
    let failed = tokio::select! {
        biased;
        _ = stopped(stop_rx.clone()) => None,
        Some(done) = servers.join_next() => match done {
            // It saw the signal first.
            Ok((_, Ok(()))) if *stop_rx.borrow() => None,
            Ok((what, Ok(()))) => Some(anyhow::anyhow!("the {what} stopped unexpectedly")),
            Ok((what, Err(e))) => Some(e.context(format!("serving the {what}"))),
            Err(e) => Some(anyhow::anyhow!("a server task failed: {e}")),
        },
    };
    if let Some(error) = failed {
        servers.abort_all();
        return Err(error);
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = servers.join_next().await {
            if let Ok((what, Err(error))) = done {
                tracing::warn!(%error, "the {what} did not stop cleanly");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "streams still open after {}s; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
        servers.abort_all();
    }
    println!("controller stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C; `term` is registered before anything is served.
async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
