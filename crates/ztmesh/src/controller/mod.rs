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

mod issuer_reload;
pub(crate) mod own_identity;
mod policy;

use anyhow::Context;
use std::net::SocketAddr;
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
    /// controller aggregates from the proxies' admin ports; needs --manifests).
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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        let dir = args
            .manifests
            .as_deref()
            .expect("clap requires --manifests with --check");
        return policy::check(dir);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
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

    let listener = tokio::net::TcpListener::bind(args.identity_addr)
        .await
        .with_context(|| format!("binding the identity service to {}", args.identity_addr))?;
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
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let service = ztmesh_grpc::identity::IdentityService::new(ca, verifier);
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_service(service.into_server());
    let identity = ztmesh_grpc::server::serve(listener, router, tls, stopped(stop_rx.clone()));

    let policy = async {
        let Some(dir) = &args.manifests else {
            return Ok(());
        };
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
        let mut store = ztmesh_store::ManifestDir::new(dir.clone());
        policy::apply_scan(&mut store, &indexes);
        for f in
            ztmesh_policy::references::findings(&indexes.policy.lock().expect("policy index lock"))
        {
            tracing::warn!("{f}");
        }
        tokio::spawn(policy::watch_manifests(store, indexes.clone()));

        let bind = |addr: SocketAddr, what: &'static str| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the {what} service to {addr}"))
        };
        let policy_listener = bind(args.policy_addr, "policy").await?;
        let destination_listener = bind(args.destination_addr, "destination").await?;
        let viz_listener = bind(args.viz_addr, "viz API").await?;
        let viz_source = match args.prometheus.clone() {
            Some(server) => crate::viz::api::Source::Prometheus {
                server,
                admin_port: 4191,
            },
            None => crate::viz::api::Source::Scrape { admin_port: 4191 },
        };
        println!(
            "viz API listening on {} (plain HTTP: GET /stat?namespace=NS&window=SECONDS); figures {}",
            viz_listener.local_addr()?,
            match &viz_source {
                crate::viz::api::Source::Prometheus { server, .. } =>
                    format!("from Prometheus at {server}"),
                crate::viz::api::Source::Scrape { admin_port } =>
                    format!("scraped from the proxies' admin port {admin_port}"),
            }
        );
        tokio::spawn(crate::viz::api::serve(
            viz_listener,
            indexes.policy.clone(),
            viz_source,
        ));
        println!(
            "policy service listening on {} (plaintext on loopback addresses, TLS as {dst_name} on others); manifests from {}",
            policy_listener.local_addr()?,
            dir.display()
        );
        println!(
            "destination service listening on {} (plaintext on loopback addresses, TLS as {dst_name} on others)",
            destination_listener.local_addr()?
        );
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
        let (p, d) = tokio::join!(
            ztmesh_grpc::server::serve(
                policy_listener,
                policy_router,
                dst_tls.clone(),
                stopped(stop_rx.clone())
            ),
            ztmesh_grpc::server::serve(
                destination_listener,
                destination_router,
                dst_tls,
                stopped(stop_rx.clone())
            ),
        );
        p?;
        d?;
        anyhow::Ok(())
    };
    let (identity, policy) = tokio::join!(identity, policy);
    identity?;
    policy?;
    println!("controller stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
