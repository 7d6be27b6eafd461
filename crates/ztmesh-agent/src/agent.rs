//! Running the agent: binds the Workload API socket, connects to the
//! controller, and serves until stopped.

use crate::jwt::JwtSource;
use crate::node_token::{NodeToken, NodeTokenReadError};
use crate::svids::Svids;
use crate::workload_api::WorkloadApi;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use ztmesh_attestation::{Attestations, ResourceError};
use ztmesh_identity::TrustDomain;
use ztmesh_proxy_api::client::{ClientError, ControlPlaneTarget};

/// Everything the agent needs; the CLI fills it from flags.
pub struct AgentConfig {
    /// The Workload API's Unix socket (made world-connectable: every local
    /// process may ask, attestation decides what it gets).
    pub socket: PathBuf,
    /// This node's name, as the node token and the resources name it.
    pub node: String,
    /// The node token (`ztmesh token create --node NAME`).
    pub node_token: NodeToken,
    /// The controller's identity service, `host:port`.
    pub controller_addr: String,
    /// The identity the controller's identity service proves over TLS.
    pub controller_name: String,
    /// DER trust anchors: verify the controller, and the first bundle.
    pub trust_anchors: Vec<Vec<u8>>,
    /// WorkloadAttestation resources (file or directory), read at each call.
    pub attestations: PathBuf,
    pub trust: TrustDomain,
    /// Where /proc is (tests may point elsewhere).
    pub proc_root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Attestations(#[from] ResourceError),
    #[error("binding the Workload API socket {}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error(transparent)]
    NodeToken(#[from] NodeTokenReadError),
    #[error("the trust anchors: {0}")]
    Anchors(#[from] rustls::Error),
    #[error("the controller's address: {0}")]
    Controller(#[from] ClientError),
    #[error("serving the Workload API")]
    Serve(#[from] tonic::transport::Error),
}

/// How long open streams may run on after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running agent.
pub struct Agent {
    socket: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let bind_err = |source| AgentError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(bind_err)?,
        Ok(_) => return Err(AgentError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).map_err(bind_err)?;
    Ok(listener)
}

impl Agent {
    /// Checks the resources (an invalid one fails here), binds the socket
    /// and serves in the background.
    pub async fn spawn(cfg: AgentConfig) -> Result<Self, AgentError> {
        Attestations::load(&cfg.attestations)?;
        let mut roots = rustls::RootCertStore::empty();
        for der in &cfg.trust_anchors {
            roots.add(rustls_pki_types_der(der))?;
        }
        let channel = ztmesh_proxy_api::client::channel(ControlPlaneTarget {
            addr: cfg.controller_addr.clone(),
            server_name: cfg.controller_name.clone(),
            roots: Some(Arc::new(roots)),
        })?;
        let node_token = cfg.node_token.clone();
        node_token.read()?;
        let jwt = Arc::new(JwtSource::new(channel.clone(), node_token.clone()));
        let svids = Svids::new(
            channel,
            node_token,
            cfg.trust.clone(),
            cfg.trust_anchors.clone(),
        );
        let api = WorkloadApi {
            svids,
            jwt,
            attestations: cfg.attestations.clone(),
            node: cfg.node.clone(),
            proc_root: cfg.proc_root.clone(),
        };
        let listener = bind(&cfg.socket)?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(api.into_server())
                .serve_with_incoming_shutdown(
                    UnixListenerStream::new(listener)
                        .map(|conn| conn.map(crate::authority::AuthorityFix::new)),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )
                .await?;
            Ok(())
        });
        tracing::info!(socket = %cfg.socket.display(), node = %cfg.node, "serving the SPIFFE Workload API");
        Ok(Self {
            socket: cfg.socket,
            stop,
            task,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops serving, gives open streams [`SHUTDOWN_GRACE`] to end, and
    /// removes the socket.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        self.stop.send_replace(true);
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the Workload API task failed");
                Ok(())
            }
            Err(_) => {
                // Workload API streams never end by themselves.
                self.task.abort();
                Ok(())
            }
        };
        let _ = std::fs::remove_file(&self.socket);
        result
    }

    /// Serves until the server stops by itself (an error).
    pub async fn wait(&mut self) -> Result<(), AgentError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the Workload API task failed");
                Ok(())
            }
        }
    }
}

fn rustls_pki_types_der(der: &[u8]) -> rustls::pki_types::CertificateDer<'static> {
    rustls::pki_types::CertificateDer::from(der.to_vec())
}
