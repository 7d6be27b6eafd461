//! A running controller: where it listens, whether its manifests are in
//! force, and how to stop it.

use crate::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use ztmesh_identity::IdentityName;

/// The addresses the controller's listeners are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addrs {
    /// Identity (Certify).
    pub identity: SocketAddr,
    /// InboundServerPolicies and OutboundPolicies (with manifests).
    pub policy: Option<SocketAddr>,
    /// Destination (with manifests).
    pub destination: Option<SocketAddr>,
    /// The viz API (with manifests and a viz server).
    pub viz: Option<SocketAddr>,
    /// The admin server (`/metrics`, `/ready`), if asked for.
    pub admin: Option<SocketAddr>,
    /// The SPIFFE bundle endpoint, if asked for.
    pub bundle_endpoint: Option<SocketAddr>,
}

/// Stops the controller: every listener stops accepting, open streams get
/// [`crate::SHUTDOWN_GRACE`] to finish. Cloneable; dropping every handle
/// (and the [`Running`]) stops it too.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(pub(crate) Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// The controller, spawned by [`crate::Builder::spawn`].
#[derive(Debug)]
pub struct Running {
    pub(crate) addrs: Addrs,
    pub(crate) identity_name: IdentityName,
    pub(crate) destination_name: IdentityName,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) shutdown: ShutdownHandle,
    pub(crate) ready: watch::Receiver<bool>,
    pub(crate) task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The identity the identity service proves off loopback.
    pub fn identity_name(&self) -> &IdentityName {
        &self.identity_name
    }

    /// The identity policy and destination prove off loopback.
    pub fn destination_name(&self) -> &IdentityName {
        &self.destination_name
    }

    /// Where the manifests' last good content is recorded (with manifests).
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until everything is served: with manifests, once their first
    /// scan is in the indexes (policy, destination and the viz API are
    /// served from then on); without, at once. False if the controller
    /// stopped first ([`Running::wait`] says why).
    pub async fn ready(&self) -> bool {
        let mut ready = self.ready.clone();
        ready.wait_for(|ready| *ready).await.is_ok()
    }

    /// Waits until the controller has stopped: after a shutdown, once its
    /// streams are drained (at most [`crate::SHUTDOWN_GRACE`]), or at once
    /// with the error that stopped it.
    pub async fn wait(self) -> Result<(), Error> {
        self.task.await?
    }

    /// Shuts down and waits until stopped.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.shutdown.shutdown();
        self.wait().await
    }
}
