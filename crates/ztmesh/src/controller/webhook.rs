//! The admission webhook of `ztmesh controller --kubernetes`
//! (`--webhook-addr`, `--webhook-tls-dir`): ztmesh-webhook's server over
//! the namespaces ztmesh-kube reads and ztmesh-inject's patch (the
//! same code as `ztmesh inject`), its metrics on the admin registry.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the injector puts in a pod besides the control plane's names:
/// the proxy image and the trust anchors, read from the identity
/// directory at each admission so a rotated anchor is injected at once.
pub(super) struct InjectValues {
    pub(super) config: ztmesh_inject::Config,
    pub(super) anchors: PathBuf,
}

/// `POST /inject`: ztmesh-inject's `admission_patch`, the same code as
/// `ztmesh inject --manual`.
struct Inject(InjectValues);

impl ztmesh_webhook::Injector for Inject {
    fn patch(
        &self,
        kind: &str,
        object: &serde_json::Value,
        namespace: &ztmesh_webhook::NamespaceMeta,
    ) -> Result<ztmesh_webhook::Patched, ztmesh_webhook::InjectError> {
        let anchors = std::fs::read_to_string(&self.0.anchors).map_err(|source| {
            ztmesh_webhook::InjectError::new(AnchorsUnreadable {
                path: self.0.anchors.clone(),
                source,
            })
        })?;
        let config = ztmesh_inject::Config {
            trust_anchors_pem: anchors,
            ..self.0.config.clone()
        };
        let out = ztmesh_inject::admission_patch(kind, object, &namespace.annotations, &config)
            .map_err(ztmesh_webhook::InjectError::new)?;
        Ok(ztmesh_webhook::Patched {
            patch: out.patch,
            report: out.report.to_string(),
        })
    }
}

/// The trust anchors could not be read, so nothing is injected (a proxy
/// with no anchors could trust no one).
#[derive(Debug, thiserror::Error)]
#[error("reading the trust anchors {}: {source}", path.display())]
struct AnchorsUnreadable {
    path: PathBuf,
    source: std::io::Error,
}

/// Binds `addr` and loads the serving certificate from `tls_dir`
/// (`tls.crt`, `tls.key`; re-read when they change), then serves until
/// the returned task is aborted. The bound address, and the task.
pub(super) async fn spawn(
    addr: SocketAddr,
    tls_dir: &Path,
    namespaces: ztmesh_kube::namespaces::KubeNamespaces,
    metrics: ztmesh_webhook::Metrics,
    inject: InjectValues,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let tls = ztmesh_webhook::CertFiles::from_dir(tls_dir)
        .with_context(|| format!("the webhook's serving certificate in {}", tls_dir.display()))?
        .server_config()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admission webhook on {addr}"))?;
    let bound = listener.local_addr()?;
    let webhook =
        ztmesh_webhook::Webhook::new(Arc::new(Inject(inject)), Arc::new(namespaces), metrics);
    let task = tokio::spawn(ztmesh_webhook::serve(
        listener,
        tls,
        Arc::new(webhook),
        ztmesh_webhook::Limits::default(),
        std::future::pending(),
    ));
    Ok((bound, task))
}
