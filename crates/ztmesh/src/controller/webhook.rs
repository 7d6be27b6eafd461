//! The admission webhook of `ztmesh controller --kubernetes`
//! (`--webhook-addr`, `--webhook-tls-dir`): ztmesh-webhook's server over
//! the namespaces ztmesh-kube reads and [`injector`], its metrics on the
//! admin registry.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The injector `POST /inject` applies. Until ztmesh-inject is merged in,
/// none: pods are admitted unchanged (and enforcement refuses them where
/// it applies).
fn injector() -> Arc<dyn ztmesh_webhook::Injector> {
    Arc::new(ztmesh_webhook::NoInjector)
}

/// Binds `addr` and loads the serving certificate from `tls_dir`
/// (`tls.crt`, `tls.key`; re-read when they change), then serves until
/// the returned task is aborted. The bound address, and the task.
pub(super) async fn spawn(
    addr: SocketAddr,
    tls_dir: &Path,
    namespaces: ztmesh_kube::namespaces::KubeNamespaces,
    metrics: ztmesh_webhook::Metrics,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tls = ztmesh_webhook::CertFiles::from_dir(tls_dir)
        .with_context(|| format!("the webhook's serving certificate in {}", tls_dir.display()))?
        .server_config()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admission webhook on {addr}"))?;
    let bound = listener.local_addr()?;
    let webhook = ztmesh_webhook::Webhook::new(injector(), Arc::new(namespaces), metrics);
    let task = tokio::spawn(ztmesh_webhook::serve(
        listener,
        tls,
        Arc::new(webhook),
        ztmesh_webhook::Limits::default(),
        std::future::pending(),
    ));
    Ok((bound, task))
}
