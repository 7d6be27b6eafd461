//! `ztmesh controller`: the control plane process, a thin call into the
//! ztmesh-controller library.
//!
//! It parses the flags, builds and spawns the controller (every listener
//! is bound before anything is served; one that cannot be bound stops the
//! process with an error naming its address), prints where each service
//! listens, and on SIGTERM or Ctrl-C shuts it down: every listener stops,
//! open streams get [`ztmesh_controller::SHUTDOWN_GRACE`] to finish, and
//! the process exits. The viz API it serves is the CLI's ([`crate::viz`]).
//! `--check` validates a manifests directory and exits ([`check`]).
//! The SPIFFE federation flags are [`federation`]'s.
//! `--kubernetes` ([`KubeArgs`]) reads the resources from the Kubernetes
//! API instead (ztmesh-kube's store, given to the builder), checks
//! Certify's tokens with TokenReview, joins the election of the replica
//! that writes HTTPRoute status (releasing its Lease on SIGTERM), and
//! with `--identity-issuer-secret` copies the issuer from its Secret into
//! the identity directory; with `--webhook-addr` it serves the admission
//! webhook ([`webhook`]).

mod check;
mod federation;
mod webhook;

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The controller's own certificates, as its tap client uses them.
pub(crate) mod own_identity {
    pub(crate) use ztmesh_controller::own_identity::OwnIdentity;
}

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
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    federation: federation::FederationArgs,
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
    /// Where the identity service (Certify) listens. On a loopback address it is plaintext;
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
    /// Serve SVIDs to `ztmesh agent` (NodeIdentity, on the identity
    /// listener), for the identities these WorkloadAttestation resources
    /// (a YAML file or directory, read at each request) assign to each node.
    #[arg(long)]
    workload_attestations: Option<PathBuf>,
    /// How often the issuer files are read where the identity directory
    /// cannot be watched (no inotify); otherwise each change is read at once.
    #[arg(long, default_value = "1s", value_parser = crate::duration)]
    issuer_poll_interval: Duration,
    /// Where the last good content of every manifest is recorded (atomically;
    /// a directory created 0700, with one subdirectory manifests-HASH per
    /// manifests directory), so that a file refused at start-up keeps its
    /// last good content in force across restarts; with --kubernetes, the
    /// last good version of each custom resource, in its subdirectory
    /// kubernetes [default: IDENTITY_DIR/.ztmesh-state]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Manifest files larger than this are refused unread (bytes, or KiB, MiB, GiB);
    /// files nested deeper than 100 levels are refused before parsing.
    #[arg(long, default_value = "1MiB", value_parser = ztmesh_resources::bounds::parse_size)]
    manifest_size_limit: u64,
    /// Don't record this controller's addresses in the CLI's context file
    /// (by default, with --manifests, they are written there once every
    /// listener is bound, so `ztmesh viz`, `check` and the rest find it).
    #[arg(long)]
    no_context: bool,
    /// Where the admin server listens: GET /metrics (Prometheus text: the
    /// Kubernetes store's ztmesh_kube_objects_rejected_total{kind},
    /// ztmesh_kube_objects{kind}, ztmesh_kube_synced) and GET /ready
    /// [default with --kubernetes: 127.0.0.1:9996; otherwise none]
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
}

/// The admin address with --kubernetes when none is given (Linkerd's
/// destination admin port, on loopback).
const KUBE_ADMIN_ADDR: &str = "127.0.0.1:9996";

/// The Kubernetes flags.
#[derive(clap::Args)]
struct KubeArgs {
    /// Read the resources from the Kubernetes API instead of --manifests
    /// (in-cluster config, or KUBECONFIG): Namespaces, ServiceAccounts,
    /// Services, EndpointSlices (Services' endpoints), Pods (meshed when labelled
    /// linkerd.io/control-plane-ns=<--control-plane-namespace>) and
    /// Linkerd's and the Gateway API's custom resources, watched; Certify's
    /// tokens are checked by the API's TokenReview (audience identity.l5d.io)
    /// instead of the local token key.
    #[arg(long, conflicts_with_all = ["manifests", "check"])]
    kubernetes: bool,
    /// This replica's name in the election of the one that writes HTTPRoute
    /// status (with --kubernetes; the Lease ztmesh-controller-write in the
    /// control plane namespace) [default: the host name].
    #[arg(long, env = "POD_NAME", requires = "kubernetes")]
    replica_name: Option<String>,
    /// Copy the trust anchors (ConfigMap linkerd-identity-trust-roots) and
    /// the issuer (Secret linkerd-identity-issuer: Linkerd's crt.pem/key.pem,
    /// or an external issuer's kubernetes.io/tls) from the control plane
    /// namespace into --identity-dir, now and on every change (a bad
    /// issuer is refused and the last good one stays).
    #[arg(long, requires = "kubernetes")]
    identity_issuer_secret: bool,
    /// Serve the admission webhook here (HTTPS): POST /inject, the proxy
    /// injector (MutatingWebhookConfiguration
    /// linkerd-proxy-injector-webhook-config), and POST /validate, injection
    /// enforcement (ValidatingWebhookConfiguration
    /// ztmesh-injection-enforcement: pods without linkerd-proxy are refused
    /// in namespaces labelled config.ztmesh.io/enforce-injection=true,
    /// unless annotated config.ztmesh.io/injection-exempt=<reason>).
    /// Its metrics are on the admin server.
    #[arg(long, requires_all = ["kubernetes", "webhook_tls_dir"])]
    webhook_addr: Option<SocketAddr>,
    /// The webhook's serving certificate: a directory with tls.crt and
    /// tls.key (the Secret linkerd-proxy-injector-k8s-tls, mounted), re-read
    /// when they change.
    #[arg(long, requires = "webhook_addr")]
    webhook_tls_dir: Option<PathBuf>,
    /// The proxy image the webhook injects, without its tag (the
    /// `linkerd-proxy` and `linkerd-init` containers run it).
    #[arg(long, default_value = "ztmesh", requires = "webhook_addr")]
    proxy_image: String,
    /// The proxy image's tag, also written as `linkerd.io/proxy-version`.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"), requires = "webhook_addr")]
    proxy_version: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.check {
        let dir = args
            .manifests
            .as_deref()
            .expect("clap requires --manifests with --check");
        return check::check(dir);
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

/// The controller the flags describe.
fn builder(args: &Args) -> anyhow::Result<ztmesh_controller::Builder> {
    let identity_dir = args
        .identity_dir
        .clone()
        .expect("clap requires --identity-dir");
    let mut builder = ztmesh_controller::Builder::new(identity_dir)
        .identity_addr(args.identity_addr)
        .identity_ttl(args.identity_ttl)
        .trust_domain(&args.trust_domain)
        .control_plane_namespace(&args.control_plane_namespace)
        .issuer_poll_interval(args.issuer_poll_interval);
    if let Some(key) = &args.token_key {
        builder = builder.token_key(key);
    }
    if let Some(path) = &args.workload_attestations {
        builder = builder.workload_attestations(path);
    }
    if let Some(config) = args.federation.config() {
        builder = builder.federation(config);
    }
    if args.manifests.is_some() || args.kube.kubernetes {
        let default_policy = args
            .default_inbound_policy
            .parse()
            .map_err(anyhow::Error::msg)?;
        builder = builder
            .policy_addr(args.policy_addr)
            .destination_addr(args.destination_addr)
            .cluster_domain(&args.cluster_domain)
            .cluster_networks(args.cluster_networks.clone())
            .default_inbound_policy(default_policy)
            .viz(args.viz_addr, viz_server(viz_source(args), tapper(args)));
    }
    if let Some(dir) = &args.manifests {
        builder = builder
            .manifests(dir)
            .manifest_limits(ztmesh_resources::bounds::Limits {
                max_bytes: args.manifest_size_limit,
                ..Default::default()
            });
        if let Some(state) = &args.state_dir {
            builder = builder.state_dir(state);
        }
    }
    Ok(builder)
}

/// The proxies' admin port, where the viz API and `/compliance` reach them.
const PROXY_ADMIN_PORT: u16 = 4191;

fn viz_source(args: &Args) -> crate::viz::api::Source {
    match args.prometheus.clone() {
        Some(server) => crate::viz::api::Source::Prometheus {
            server,
            admin_port: PROXY_ADMIN_PORT,
        },
        None => crate::viz::api::Source::Scrape {
            admin_port: PROXY_ADMIN_PORT,
        },
    }
}

/// The tap identity the viz API holds (`GET /tap`), issued from the
/// identity directory's issuer; without it, tap says why.
fn tapper(args: &Args) -> Option<std::sync::Arc<crate::viz::tap::client::Tapper>> {
    let dir = args.identity_dir.clone()?;
    match crate::viz::tap::client::Tapper::new(
        dir,
        &args.control_plane_namespace,
        &args.trust_domain,
    ) {
        Ok(t) => {
            tracing::info!(identity = t.name(), "the viz API taps proxies");
            Some(std::sync::Arc::new(t))
        }
        Err(e) => {
            tracing::warn!("no tap through the viz API: {e}");
            None
        }
    }
}

fn viz_server(
    source: crate::viz::api::Source,
    tapper: Option<std::sync::Arc<crate::viz::tap::client::Tapper>>,
) -> ztmesh_controller::VizServer {
    let dashboard = crate::viz::dashboard::Dashboard {
        tapper,
        admin_port: source.admin_port(),
    };
    Box::new(move |cx: ztmesh_controller::VizContext| {
        Box::pin(async move {
            crate::viz::api::serve(
                cx.listener,
                cx.index,
                source,
                cx.status,
                dashboard,
                cx.shutdown,
            )
            .await
        })
    })
}

/// Writes the context file (a failure is a warning: the controller serves
/// all the same).
fn record_context(args: &Args, addrs: &ztmesh_controller::Addrs) {
    let (Some(viz), Some(destination), Some(policy)) = (addrs.viz, addrs.destination, addrs.policy)
    else {
        return;
    };
    let context = crate::mesh_context::MeshContext {
        viz,
        identity: addrs.identity,
        destination,
        policy,
        identity_dir: args.identity_dir.as_ref().map(|d| absolute(d)),
        manifests: args.manifests.as_ref().map(|d| absolute(d)),
        written_by: "controller".into(),
        pid: std::process::id(),
    };
    match crate::mesh_context::save(&crate::mesh_context::ProcessEnv, &context) {
        Ok(path) => println!(
            "context recorded in {} (the CLI's default --controller)",
            path.display()
        ),
        Err(e) => tracing::warn!("{e}"),
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("handling SIGTERM")?;
    let mut builder = builder(&args)?;
    // Kept until the controller stops: the election and status writer.
    let mut _replica = None;
    let mut _issuer_sync = None;
    let mut _webhook = None;
    let mut _trust_roots = None;
    if args.kube.kubernetes {
        let client = ztmesh_kube::client(None).await?;
        if args.kube.identity_issuer_secret {
            let dir = args
                .identity_dir
                .clone()
                .expect("clap requires --identity-dir");
            let ns = &args.control_plane_namespace;
            ztmesh_kube::issuer_secret::sync_once(&client, ns, &dir).await?;
            _issuer_sync = Some(AbortOnDrop(ztmesh_kube::issuer_secret::keep_synced(
                client.clone(),
                ns,
                dir,
            )));
        }
        _trust_roots = Some(AbortOnDrop(ztmesh_kube::trust_roots::keep_copied(
            client.clone(),
            &args.control_plane_namespace,
        )));
        builder = builder.token_reviewer(std::sync::Arc::new(
            ztmesh_kube::token_review::KubeTokenReviewer::new(client.clone()),
        ));
        let replica_name = match &args.kube.replica_name {
            Some(name) => name.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| format!("ztmesh-{}", std::process::id())),
        };
        let metrics = ztmesh_kube::Metrics::default();
        let mut registry = ztmesh_controller::Registry::default();
        metrics.register(&mut registry);
        if let (Some(addr), Some(dir)) = (args.kube.webhook_addr, &args.kube.webhook_tls_dir) {
            let webhook_metrics = ztmesh_webhook::Metrics::default();
            webhook_metrics.register(&mut registry);
            let namespaces = ztmesh_kube::namespaces::KubeNamespaces::start(client.clone());
            let inject = webhook::InjectValues {
                config: ztmesh_inject::Config {
                    control_plane_namespace: args.control_plane_namespace.clone(),
                    cluster_domain: args.cluster_domain.clone(),
                    identity_trust_domain: args.trust_domain.clone(),
                    proxy_image: args.kube.proxy_image.clone(),
                    proxy_version: args.kube.proxy_version.clone(),
                    default_inbound_policy: args.default_inbound_policy.clone(),
                    cluster_networks: args
                        .cluster_networks
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    ..ztmesh_inject::Config::default()
                },
                anchors: args
                    .identity_dir
                    .as_ref()
                    .expect("clap requires --identity-dir")
                    .join("ca.crt"),
            };
            let (bound, task) =
                webhook::spawn(addr, dir, namespaces, webhook_metrics, inject).await?;
            println!(
                "admission webhook listening on {bound} (HTTPS: POST /inject, POST /validate); certificate from {}",
                dir.display()
            );
            _webhook = Some(AbortOnDrop(task));
        }
        let admin = args
            .admin_addr
            .unwrap_or_else(|| KUBE_ADMIN_ADDR.parse().expect("a valid address"));
        builder = builder.admin(admin, registry);
        let mut replica = ztmesh_kube::start_replica(
            client,
            &args.control_plane_namespace,
            &replica_name,
            metrics,
            kube_last_good(&args),
        )
        .await?;
        builder = builder.store(replica.feed.take().expect("a new replica has its feed"));
        _replica = Some(replica);
    }
    if !args.kube.kubernetes
        && let Some(addr) = args.admin_addr
    {
        builder = builder.admin(addr, ztmesh_controller::Registry::default());
    }
    let running = builder.spawn().await?;
    let addrs = running.addrs().clone();
    let dst_name = running.destination_name().clone();
    println!(
        "identity service listening on {} (plaintext on loopback addresses, TLS as {} on others)",
        addrs.identity,
        running.identity_name()
    );
    let source = match &args.manifests {
        Some(dir) => format!("manifests from {}", dir.display()),
        None => "resources from the Kubernetes API".into(),
    };
    if let Some(endpoint) = addrs.bundle_endpoint {
        println!(
            "SPIFFE bundle endpoint listening on {endpoint} (https_web: GET answers trust domain {}'s bundle)",
            args.trust_domain
        );
    }
    if let Some(admin) = addrs.admin {
        println!("admin server listening on {admin} (plain HTTP: GET /metrics, GET /ready)");
    }
    if let (Some(policy), Some(destination)) = (addrs.policy, addrs.destination) {
        if let Some(viz) = addrs.viz {
            println!(
                "viz API listening on {viz} (plain HTTP: GET /stat?namespace=NS&window=SECONDS, GET /status: refused manifests as JSON); figures {}",
                match viz_source(&args) {
                    crate::viz::api::Source::Prometheus { server, .. } =>
                        format!("from Prometheus at {server}"),
                    crate::viz::api::Source::Scrape { admin_port } =>
                        format!("scraped from the proxies' admin port {admin_port}"),
                }
            );
        }
        println!(
            "policy service listening on {policy} (plaintext on loopback addresses, TLS as {dst_name} on others); {source}"
        );
        println!(
            "destination service listening on {destination} (plaintext on loopback addresses, TLS as {dst_name} on others)"
        );
    }
    if !args.no_context {
        record_context(&args, &addrs);
    }
    crate::check::serve_compliance_for(match (addrs.viz, addrs.destination, addrs.policy) {
        (Some(viz), Some(destination), Some(policy)) => crate::check::Served::Mesh(
            crate::check::mesh::Resolved {
                viz: viz.to_string(),
                identity: Some(addrs.identity),
                destination: Some(destination),
                policy: Some(policy),
                identity_dir: args.identity_dir.as_ref().map(|d| absolute(d)),
                manifests: args.manifests.as_ref().map(|d| absolute(d)),
            },
            crate::check::ProxyPorts {
                admin: PROXY_ADMIN_PORT,
                ..Default::default()
            },
        ),
        _ => crate::check::Served::Unavailable,
    });
    let shutdown = running.shutdown_handle();
    let signalled = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.shutdown();
    };
    tokio::pin!(signalled);
    let mut signal_seen = false;
    let ready = tokio::select! {
        ready = running.ready() => ready,
        _ = &mut signalled => {
            signal_seen = true;
            false
        }
    };
    if ready && args.kube.kubernetes {
        println!("resources from the Kubernetes API in force");
    }
    if ready && let (Some(dir), Some(state_dir)) = (&args.manifests, running.state_dir()) {
        println!(
            "manifests from {} in force; last good content recorded in {}",
            dir.display(),
            state_dir.display()
        );
    }
    let wait = running.wait();
    tokio::pin!(wait);
    // Until a signal, or until a server fails (then the process does too).
    // On a signal, the Lease is released first, so that another replica
    // writes status at once rather than once it expires.
    let result = if signal_seen {
        step_down(&mut _replica).await;
        wait.await
    } else {
        tokio::select! {
            result = &mut wait => result,
            _ = &mut signalled => {
                step_down(&mut _replica).await;
                wait.await
            }
        }
    };
    step_down(&mut _replica).await;
    result?;
    println!("controller stopped");
    Ok(())
}

/// Where the Kubernetes store records the last good version of each
/// custom resource: STATE_DIR/kubernetes. One that cannot be created is
/// reported; the store then keeps last good versions only while it runs.
fn kube_last_good(args: &Args) -> Option<ztmesh_kube::last_good::LastGoodDir> {
    let state = match (&args.state_dir, &args.identity_dir) {
        (Some(state), _) => state.clone(),
        (None, Some(identity)) => identity.join(".ztmesh-state"),
        (None, None) => return None,
    };
    match ztmesh_kube::last_good::LastGoodDir::open(state.join("kubernetes")) {
        Ok(dir) => Some(dir),
        Err(error) => {
            tracing::warn!(
                error = %anyhow::Error::from(error),
                "refused objects keep their last good version only while the controller runs"
            );
            None
        }
    }
}

/// Releases this replica's Lease (with --kubernetes), once.
async fn step_down(replica: &mut Option<ztmesh_kube::Replica>) {
    if let Some(mut replica) = replica.take() {
        replica.step_down().await;
    }
}

/// Stops a background task when the controller stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
