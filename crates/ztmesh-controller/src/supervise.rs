//! What runs once the controller is spawned: [`supervise`] serves the
//! policy, destination and viz APIs from the first complete scan of the
//! resources (never from an empty index), then waits for a shutdown
//! (draining for at most [`SHUTDOWN_GRACE`]) or a failed server.

use crate::manifests::{Indexes, Scanner};
use crate::store_feed::Feeder;
use crate::{Error, SHUTDOWN_GRACE};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A future that completes when the controller shuts down.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a viz API server is given: its bound listener, the policy index,
/// the manifests' status (`GET /status`) and the shutdown signal.
pub struct VizContext {
    pub listener: TcpListener,
    pub index: Arc<Mutex<ztmesh_policy::Index>>,
    pub status: Arc<Mutex<serde_json::Value>>,
    pub shutdown: ShutdownSignal,
}

/// Serves the viz API (the CLI's `viz` module provides it).
pub type VizServer = Box<dyn FnOnce(VizContext) -> ShutdownSignal + Send>;

/// Completes once a shutdown is asked for (or every handle is dropped).
pub(crate) fn stopped(mut rx: watch::Receiver<bool>) -> ShutdownSignal {
    Box::pin(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
}

/// The listeners of policy, destination and the viz API.
pub(crate) struct ManifestListeners {
    pub(crate) policy: TcpListener,
    pub(crate) destination: TcpListener,
    pub(crate) viz: Option<TcpListener>,
}

/// What serves the manifests once their first scan is in.
pub(crate) struct ManifestServing {
    pub(crate) source: Source,
    pub(crate) listeners: ManifestListeners,
    pub(crate) indexes: Indexes,
    pub(crate) status: Arc<Mutex<serde_json::Value>>,
    pub(crate) viz: Option<VizServer>,
    pub(crate) tls: Arc<rustls::ServerConfig>,
}

/// Where the resources come from.
pub(crate) enum Source {
    Dir(Scanner),
    Feed(Feeder),
}

pub(crate) type Servers = JoinSet<(&'static str, Result<(), tonic::transport::Error>)>;

/// The state directory for `manifests` under `root`: `manifests-HASH`,
/// HASH the FNV-1a of the directory's canonical path, so controllers of
/// different manifests directories never share one.
pub fn state_dir_for(root: &Path, manifests: &Path) -> PathBuf {
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

/// Serves the manifests once their first scan is in, then runs until a
/// shutdown (then drains for at most [`SHUTDOWN_GRACE`]) or until a server
/// fails (then the controller does too).
pub(crate) async fn supervise(
    mut servers: Servers,
    manifests: Option<ManifestServing>,
    stop: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
) -> Result<(), Error> {
    // Kept until the end: dropping it stops the scanner thread (or the feed).
    let mut _scanner_stop = None;
    let mut _feeder = None;
    match manifests {
        None => {
            ready.send_replace(true);
        }
        Some(m) => {
            let first_scan = match m.source {
                Source::Dir(scanner) => {
                    _scanner_stop = Some(scanner.stop);
                    Box::pin(async move {
                        scanner
                            .ready
                            .await
                            .map_err(|_| Error::ScannerStopped)?
                            .map_err(Error::from)
                    })
                        as Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>
                }
                Source::Feed(Feeder { ready, task }) => {
                    _feeder = Some(task);
                    Box::pin(async move { ready.await.map_err(|_| Error::StoreStopped) })
                }
            };
            // Policy is served from the first complete scan, never from an empty index.
            let serve = tokio::select! {
                r = first_scan => {
                    r?;
                    true
                }
                _ = stopped(stop.clone()) => false,
            };
            if serve {
                serve_manifests(
                    &mut servers,
                    m.listeners,
                    m.indexes,
                    m.status,
                    m.viz,
                    m.tls,
                    &stop,
                );
                ready.send_replace(true);
            }
        }
    }

    let failed = tokio::select! {
        biased;
        _ = stopped(stop.clone()) => None,
        Some(done) = servers.join_next() => match done {
            // It saw the shutdown first.
            Ok((_, Ok(()))) if *stop.borrow() => None,
            Ok((what, Ok(()))) => Some(Error::Stopped { what }),
            Ok((what, Err(source))) => Some(Error::Serve { what, source }),
            Err(e) => Some(Error::Task(e)),
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
    Ok(())
}

fn serve_manifests(
    servers: &mut Servers,
    listeners: ManifestListeners,
    indexes: Indexes,
    status: Arc<Mutex<serde_json::Value>>,
    viz: Option<VizServer>,
    tls: Arc<rustls::ServerConfig>,
    stop: &watch::Receiver<bool>,
) {
    if let (Some(listener), Some(viz)) = (listeners.viz, viz) {
        let served = viz(VizContext {
            listener,
            index: indexes.policy.clone(),
            status,
            shutdown: stopped(stop.clone()),
        });
        servers.spawn(async move {
            served.await;
            ("viz API", Ok(()))
        });
    }
    let policy_router = tonic::transport::Server::builder()
        .add_service(
            ztmesh_grpc::inbound::InboundPolicyService::new(indexes.policy.clone()).into_server(),
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
        tls.clone(),
        stopped(stop.clone()),
    );
    servers.spawn(async move { ("policy service", policy.await) });
    let destination = ztmesh_grpc::server::serve(
        listeners.destination,
        destination_router,
        tls,
        stopped(stop.clone()),
    );
    servers.spawn(async move { ("destination service", destination.await) });
}
