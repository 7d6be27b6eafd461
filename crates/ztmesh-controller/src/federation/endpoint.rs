//! The SPIFFE bundle endpoint, `https_web` profile: `GET` on any path
//! answers the local trust domain's bundle document (the anchors in the
//! identity directory's `ca.crt`, read at each request, so a rotation is
//! served at once), over HTTPS with the configured serving certificate
//! (a Web PKI one: the profile's clients verify it with their CA roots).
//! `spiffe_sequence` is `ca.crt`'s modification time in seconds, which
//! grows with every change, across restarts too. The serving certificate
//! and key are read again every [`CERT_POLL`]: a renewed pair that matches
//! is used for new connections, one that does not is refused (logged) and
//! the last good pair stays.

use super::bundle;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::net::TcpListener;

/// How often the serving certificate files are read.
pub(crate) const CERT_POLL: Duration = Duration::from_secs(5);

pub(crate) struct Endpoint {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Arc<rustls::ServerConfig>,
    pub(crate) creds: Arc<ztmesh_tls::CredentialsStore>,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) anchors: PathBuf,
    pub(crate) refresh_hint: Duration,
}

/// The certificate chain (PEM, leaf first) and key in these files.
fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<
    (
        Vec<rustls_pki_types::CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    String,
> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let chain = ztmesh_identity::pem::certificates(&read(cert)?, &cert.display().to_string())
        .map_err(|e| e.to_string())?;
    let key = ztmesh_identity::pem::private_key(&read(key)?, &key.display().to_string())
        .map_err(|e| e.to_string())?;
    Ok((chain, key))
}

/// The credentials and TLS config presenting `cert` and `key`.
pub(crate) fn server_tls(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ztmesh_tls::CredentialsStore>, Arc<rustls::ServerConfig>), String> {
    let (chain, key) = read_pair(cert, key)?;
    let creds = ztmesh_tls::CredentialsStore::new();
    creds.set(chain, key).map_err(|e| e.to_string())?;
    let tls = ztmesh_tls::server_config(
        creds.clone(),
        ztmesh_tls::TlsVersions::AllowTls12,
        &[b"http/1.1"],
    )
    .map_err(|e| e.to_string())?;
    Ok((creds, tls))
}

/// Reads the serving pair every [`CERT_POLL`] and installs a changed, valid one.
async fn reload(cert: PathBuf, key: PathBuf, creds: Arc<ztmesh_tls::CredentialsStore>) {
    let mut last = (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
    let mut tick = tokio::time::interval(CERT_POLL);
    loop {
        tick.tick().await;
        let now = (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
        if now == last {
            continue;
        }
        last = now;
        match read_pair(&cert, &key)
            .and_then(|(chain, k)| creds.set(chain, k).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                tracing::info!(cert = %cert.display(), "bundle endpoint: serving certificate renewed")
            }
            Err(error) => {
                tracing::warn!(%error, "bundle endpoint: serving certificate refused; the last good one stays")
            }
        }
    }
}

/// The document for the anchors in `path` now.
fn document(path: &Path, refresh_hint: Duration) -> Result<String, String> {
    let pem = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let anchors =
        ztmesh_identity::pem::certificates(&pem, "trust anchors").map_err(|e| e.to_string())?;
    let sequence = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(bundle::encode(&anchors, sequence, refresh_hint))
}

pub(crate) async fn serve(endpoint: Endpoint, stopped: impl std::future::Future<Output = ()>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(endpoint.tls.clone());
    let anchors = Arc::new(endpoint.anchors);
    let hint = endpoint.refresh_hint;
    let reloading = tokio::spawn(reload(endpoint.cert, endpoint.key, endpoint.creds));
    let _stop_reloading = AbortOnDrop(reloading);
    tokio::pin!(stopped);
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = endpoint.listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "bundle endpoint: accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let anchors = anchors.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, body) = if req.method() != hyper::Method::GET {
                        (405, "GET only\n".to_string())
                    } else {
                        match document(&anchors, hint) {
                            Ok(doc) => (200, doc),
                            Err(e) => {
                                tracing::warn!(error = %e, "bundle endpoint: no bundle to serve");
                                (503, format!("{e}\n"))
                            }
                        }
                    };
                    let rsp = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                        .expect("a valid response");
                    std::future::ready(Ok::<_, std::convert::Infallible>(rsp))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
