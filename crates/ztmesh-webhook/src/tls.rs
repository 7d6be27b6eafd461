//! The serving certificate: `tls.crt` (the chain, leaf first) and
//! `tls.key` in a directory, as the Secret `linkerd-proxy-injector-k8s-tls`
//! is mounted. [`CertFiles`] answers every handshake; before it, it looks
//! at the files (inode, modification time, size: a Secret volume swaps
//! them by symlink) and re-reads them when they changed. A pair that does
//! not load is logged and the last good one kept.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no certificate in it")]
    NoCertificate(PathBuf),
    #[error("{0}: no private key in it")]
    NoKey(PathBuf),
    #[error("{path}: {source}")]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{key}: not the key of the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// What identifies a file's version: (inode, modified, length).
type Stamp = Option<(u64, std::time::SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.modified().ok()?, meta.len()))
}

struct Loaded {
    stamps: (Stamp, Stamp),
    key: Arc<CertifiedKey>,
}

/// The certificate and key files, re-read when they change.
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl CertFiles {
    /// `dir/tls.crt` and `dir/tls.key`, loaded now (an error if they don't load).
    pub fn from_dir(dir: &Path) -> Result<Arc<Self>, TlsError> {
        Self::new(dir.join("tls.crt"), dir.join("tls.key"))
    }

    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Arc<Self>, TlsError> {
        let provider = ztmesh_tls::provider();
        let stamps = (stamp(&cert), stamp(&key));
        let loaded = load(&cert, &key, &provider)?;
        Ok(Arc::new(Self {
            cert,
            key,
            provider,
            current: Mutex::new(Loaded {
                stamps,
                key: loaded,
            }),
        }))
    }

    /// A server configuration over these files (HTTP/2 and HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The current certificate, re-read first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps != current.stamps {
            current.stamps = stamps;
            match load(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert.display(), "webhook serving certificate reloaded");
                    current.key = key;
                }
                Err(error) => {
                    tracing::warn!(%error, "webhook serving certificate not reloaded; the last good one stays")
                }
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(cert)?[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.into()));
    }
    let der = rustls_pemfile::private_key(&mut &read(key)?[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key.into()))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::BadKey {
            path: key.into(),
            source,
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.into(),
        key: key.into(),
    })?;
    Ok(Arc::new(certified))
}
