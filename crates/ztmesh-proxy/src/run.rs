//! Running the proxy: configuration from the environment, the identity
//! daemon, the inbound stack (through [`crate::inbound::InboundBuilder`]),
//! the outbound proxy when a destination service is configured, the tap
//! and admin listeners, until a signal or `/shutdown`; then a drain of the
//! open connections, bounded by the shutdown grace period. Shared by the
//! `ztmesh-proxy` binary and `ztmesh proxy`.

use crate::admin::Admin;
use crate::config::{Env, OsEnv};
use crate::identity::workload_api::SvidDaemon;
use crate::identity::{Documents, IdentityDaemon, IdentityMode};
use crate::inbound::{InboundBuilder, InboundTarget, Targets};
use crate::proxy_config::{Mode, ProxyConfig};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for a configuration error, as linkerd2-proxy uses it.
pub(crate) const EX_CONFIG: u8 = 64;

/// How long readiness waits for the declared ports' policies.
pub(crate) const POLICY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn main_from_env() -> ExitCode {
    let filter = OsEnv
        .get("LINKERD2_PROXY_LOG")
        .unwrap_or_else(|| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    // LINKERD2_PROXY_LOG_FORMAT: plain (the default, as Linkerd's injector
    // sets it) or json, one object per line.
    let format = OsEnv.get(crate::proxy_config::LOG_FORMAT);
    let _ = match format
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("plain") => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        Some("json") => logs.json().try_init(),
        Some(other) => {
            eprintln!(
                "ztmesh-proxy: invalid configuration: {}={other:?}: expected plain or json",
                crate::proxy_config::LOG_FORMAT
            );
            return ExitCode::from(EX_CONFIG);
        }
    };
    let (config, warnings) = match ProxyConfig::from_env(&OsEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ztmesh-proxy: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    for w in warnings {
        tracing::warn!("{w}");
    }
    raise_open_files_limit();
    // Certify needs a key and CSR; the Workload API sends its own key.
    let documents = match &config.identity {
        IdentityMode::Certify(c) => {
            let documents = match &c.dir {
                Some(dir) if dir.join("key.p8").exists() => Documents::load(dir),
                _ => Documents::generate(&c.local_name),
            };
            match documents {
                Ok(d) => Some(d),
                Err(e) => {
                    eprintln!("ztmesh-proxy: {e}");
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
        IdentityMode::WorkloadApi(_) => None,
    };
    // One core: a single-threaded runtime, as linkerd2-proxy does with LINKERD2_PROXY_CORES=1.
    let runtime = match config.cores {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ztmesh-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run(config, documents).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ztmesh-proxy: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(
    config: ProxyConfig,
    documents: Option<Documents>,
) -> Result<(), Box<dyn std::error::Error>> {
    // Every handshake, mesh and control plane, reads `trust`, which
    // follows the bundle (file or Workload API).
    let roots = ztmesh_tls::roots_from_pem(config.identity.trust_anchors_pem().as_bytes())?;
    let trust = ztmesh_tls::Trust::new(roots)?;
    let (store, status, identity_metrics) = match (&config.identity, documents) {
        (IdentityMode::Certify(c), Some(documents)) => {
            let channel = control_plane(&c.svc_addr, &c.svc_name, &trust)?;
            let client =
                linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel);
            let daemon = IdentityDaemon::new(c, documents, client)?.with_trust(trust.clone());
            let handles = (daemon.store(), daemon.status(), daemon.metrics());
            tokio::spawn(daemon.run());
            handles
        }
        (IdentityMode::Certify(_), None) => return Err(NoDocuments.into()),
        (IdentityMode::WorkloadApi(c), _) => {
            tracing::info!(workload_api = %c.workload_api.0.display(), identity = %c.spiffe_id, "identity from the SPIFFE Workload API");
            let daemon = SvidDaemon::new(c, trust.clone());
            let handles = (daemon.store(), daemon.status(), daemon.metrics());
            tokio::spawn(daemon.run());
            handles
        }
    };
    if let Some(path) = config.identity.trust_anchors_file() {
        let file = crate::identity::anchors::AnchorsFile::new(
            path.to_path_buf(),
            config.identity.trust_anchors_pem().as_bytes(),
            trust.clone(),
            identity_metrics.clone(),
        );
        tracing::info!(path = %path.display(), "following the trust bundle file");
        tokio::spawn(file.follow(crate::identity::anchors::POLL));
    }
    if let Some(path) = &config.federated_bundles_file {
        let file =
            crate::identity::federated::FederatedFile::new(path.to_path_buf(), trust.clone());
        tracing::info!(path = %path.display(), "following the federated trust bundles file");
        tokio::spawn(file.follow(crate::identity::federated::POLL));
    }

    let server_tls = ztmesh_tls::mesh_server_config_live(
        store.clone(),
        trust.clone(),
        ztmesh_tls::TlsVersions::Tls13Only,
        &[crate::transport_header::ALPN],
    )?;
    let policy_channel = match &config.policy {
        Some(p) => Some((control_plane(&p.addr, &p.name, &trust)?, p.workload.clone())),
        None => {
            tracing::warn!(
                default = config.default_policy.name(),
                "LINKERD2_PROXY_POLICY_SVC_ADDR is not set: the default inbound policy applies to every port"
            );
            None
        }
    };
    let outbound_policies = policy_channel.as_ref().map(|(channel, _)| channel.clone());
    let policies = Arc::new(crate::inbound::Policies::new(
        policy_channel,
        config.default_policy.server(&config.cluster_networks),
    ));
    let authz_metrics = Arc::new(crate::authz_metrics::AuthzMetrics::default());
    let route_metrics = Arc::new(crate::route_metrics::RouteMetrics::default());
    // Ready only once the ports the workload declares have their policy
    // (bounded: past the limit, the default policy stands in for them).
    let (policy_ready_tx, policy_ready) = tokio::sync::watch::channel(false);
    {
        let (policies, ports) = (
            policies.clone(),
            config.inbound_ports.iter().copied().collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            if !policies.wait_answered(&ports, POLICY_WAIT).await {
                tracing::warn!(
                    ?ports,
                    "no inbound policy from the controller within {POLICY_WAIT:?}; the default policy applies until it answers"
                );
            }
            let _ = policy_ready_tx.send(true);
        });
    }
    let tracer = match &config.trace {
        Some((addr, name, rate)) => {
            let channel = control_plane(addr, name, &trust)?;
            tracing::info!(collector = %addr, sample_rate = rate, "exporting spans over OTLP");
            Some(Arc::new(crate::trace::Tracer::new(
                channel,
                config.identity.identity().to_string(),
                *rate,
            )))
        }
        None => None,
    };
    let taps = Arc::new(crate::tap::Taps::default());
    let tcp_metrics = Arc::new(crate::metrics::TcpMetrics::default());
    let tcp_metrics_out = tcp_metrics.clone();
    let http_metrics = Arc::new(crate::metrics::HttpMetrics::default());
    let http_metrics_out = http_metrics.clone();
    let inbound = InboundBuilder::new(
        config.identity.local_name().to_string(),
        tokio_rustls::TlsAcceptor::from(server_tls),
        match config.mode {
            Mode::Explicit { app } => InboundTarget::App(app),
            Mode::Transparent => InboundTarget::OriginalDst,
        },
        policies.clone(),
    )
    .detect_timeout(config.detect_timeout)
    .authority_labels(config.inbound_authority_labels)
    .opaque_ports(config.opaque_ports.iter().copied())
    .targets(Targets {
        inbound_ips: config.inbound_ips.clone(),
        own_ports: [
            config.inbound_addr.port(),
            config.outbound_addr.port(),
            config.admin_addr.port(),
            config.control_addr.port(),
        ]
        .into(),
    })
    .metrics(tcp_metrics.clone(), http_metrics.clone())
    .authz_metrics(authz_metrics.clone())
    .tracer(tracer.clone())
    .taps(taps.clone())
    .trust(trust.clone())
    .build();
    // Every listener is bound before anything is served: a port that is
    // taken stops the proxy at once, naming the address.
    let bind = |addr: std::net::SocketAddr, what: &'static str| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding the {what} listener to {addr}: {e}"))
    };
    let inbound_listener = bind(config.inbound_addr, "inbound").await?;
    let admin_listener = bind(config.admin_addr, "admin").await?;
    let outbound_listener = match &config.destination {
        Some(_) => Some(bind(config.outbound_addr, "outbound").await?),
        None => None,
    };
    let control_listener = match &config.tap_identity {
        Some(_) => Some(bind(config.control_addr, "control (tap)").await?),
        None => None,
    };
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::watch::channel(false);
    let admin = Arc::new(Admin {
        identity: status.clone(),
        identity_metrics,
        tcp: tcp_metrics,
        http: http_metrics,
        authz: authz_metrics,
        routes: route_metrics.clone(),
        policy_ready,
        shutdown_enabled: config.shutdown_endpoint,
        shutdown: shutdown_tx,
        scrapes: Default::default(),
    });
    tracing::info!(
        identity = %config.identity.identity(),
        inbound = %inbound_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        mode = ?config.mode,
        "ztmesh-proxy listening"
    );
    let (drain, drain_watch) = crate::drain::channel();
    // Mesh TLS is served only with a certificate: until the first one is
    // installed, connections wait in the listen queue rather than fail.
    {
        let (status, drain_watch) = (status.clone(), drain_watch.clone());
        tokio::spawn(async move {
            certified(status).await;
            tracing::info!("certificate installed; accepting inbound connections");
            inbound.serve(inbound_listener, drain_watch).await;
        });
    }
    // The Tap API: mTLS only, for the tap identity only.
    if let (Some(tap_identity), Some(listener)) = (&config.tap_identity, control_listener) {
        let tls = ztmesh_tls::mesh_server_config_live(
            store.clone(),
            trust.clone(),
            ztmesh_tls::TlsVersions::Tls13Only,
            &[b"h2"],
        )?;
        let router = tonic::transport::Server::builder().add_service(
            linkerd2_proxy_api::tap::tap_server::TapServer::new(crate::tap::TapService(
                taps.clone(),
            )),
        );
        tracing::info!(control = %listener.local_addr()?, %tap_identity, "tap listening (mTLS, for the tap identity only)");
        tokio::spawn(ztmesh_proxy_api::server::serve_mtls_only(
            listener,
            router,
            tls,
            tap_identity.clone(),
            std::future::pending(),
        ));
    }
    let admin_open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(admin.serve(admin_listener, admin_open.clone()));

    match (&config.destination, outbound_listener) {
        (Some((addr, name)), Some(listener)) => {
            let channel = control_plane(addr, name, &trust)?;
            let discovery = Arc::new(crate::outbound::GrpcDiscovery::new(
                channel,
                config.destination_context.clone(),
                config.profile_networks.clone(),
                outbound_policies,
            ));
            let tls = Arc::new(crate::outbound::connect::ClientTls::live(trust, store));
            let outbound = Arc::new(
                crate::outbound::OutboundBuilder::new(discovery, tls)
                    .metrics(tcp_metrics_out, http_metrics_out, route_metrics.clone())
                    .tracer(tracer)
                    .taps(taps.clone())
                    .detect_timeout(config.detect_timeout)
                    .app_uids(config.app_uids.clone())
                    .build(),
            );
            let transparent = match config.mode {
                Mode::Explicit { .. } => {
                    tracing::info!(outbound = %listener.local_addr()?, "outbound HTTP proxy listening (set HTTP_PROXY to it)");
                    false
                }
                Mode::Transparent => {
                    tracing::info!(outbound = %listener.local_addr()?, "transparent outbound listening");
                    true
                }
            };
            let (status, drain_watch) = (status.clone(), drain_watch.clone());
            tokio::spawn(async move {
                // Without a certificate the peers would see no identity.
                certified(status).await;
                outbound.serve(listener, transparent, drain_watch).await;
            });
        }
        _ => {
            tracing::warn!("LINKERD2_PROXY_DESTINATION_SVC_ADDR is not set: no outbound proxying")
        }
    }
    drop(drain_watch);
    let proxied = drain.watcher_counter();
    tokio::spawn(crate::trim::run(move || {
        proxied() + admin_open.load(std::sync::atomic::Ordering::Relaxed)
    }));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
        _ = shutdown_rx.wait_for(|s| *s) => tracing::info!("shutdown requested; shutting down"),
    }
    let open = drain.watchers();
    let grace = config.shutdown_grace;
    if drain.drain(grace).await {
        tracing::info!(connections = open, "drained; exiting");
    } else {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; exiting"
        );
    }
    Ok(())
}

/// Certify was configured but no key and CSR were made (a caller's bug).
#[derive(Debug, thiserror::Error)]
#[error("the identity key and CSR are missing")]
struct NoDocuments;

/// Completes once the proxy holds a certificate.
async fn certified(mut status: tokio::sync::watch::Receiver<crate::identity::IdentityStatus>) {
    let _ = status
        .wait_for(|s| matches!(s, crate::identity::IdentityStatus::Ready { .. }))
        .await;
}

/// A channel to one of the control plane's services: plaintext when the
/// address is loopback, otherwise TLS verifying `name` against the bundle
/// in use at each dial (so a rotated anchor is followed here too).
fn control_plane(
    addr: &str,
    name: &str,
    trust: &Arc<ztmesh_tls::Trust>,
) -> Result<tonic::transport::Channel, ztmesh_proxy_api::client::ClientError> {
    ztmesh_proxy_api::client::channel_live(addr, name, trust.clone())
}

/// A proxy holds two descriptors per proxied connection: raise the soft
/// limit on open files to the hard one, as far as the system allows.
fn raise_open_files_limit() {
    match crate::sys::raise_open_files_limit() {
        Ok(Some((before, after))) => {
            tracing::debug!(before, after, "raised the open files limit")
        }
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "cannot raise the open files limit"),
    }
}
