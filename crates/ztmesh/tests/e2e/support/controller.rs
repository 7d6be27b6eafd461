//! The controller in process, through the ztmesh-controller builder, for
//! tests that run it on the host: no child process, no log lines parsed
//! for addresses. It runs on a runtime of its own, on a thread of its own,
//! so sync tests and async ones alike can start it; dropping it shuts it
//! down and waits (bounded) until its ports are free.
//!
//! Tests that need the binary itself (its log lines, its viz API, which
//! belongs to the CLI, a kill -9, or a network namespace) start the real
//! `ztmesh controller` instead ([`super::controller`], [`super::LocalMesh::start_with`]).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use ztmesh_controller::{Addrs, Builder};

/// A controller running in this process.
pub struct InProcessController {
    addrs: Addrs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid")
}

impl InProcessController {
    /// Spawns `builder`'s controller and waits until it is ready (with
    /// manifests: their first scan is in force).
    pub fn start(builder: Builder) -> Self {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("in-process-controller".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the controller");
                runtime.block_on(async move {
                    let running = match builder.spawn().await {
                        Ok(running) => running,
                        Err(e) => {
                            let _ = started_tx.send(Err(format!("{e:?}")));
                            return;
                        }
                    };
                    let ready = running.ready().await;
                    let _ = started_tx.send(Ok((running.addrs().clone(), ready)));
                    let _ = stopped.await;
                    tokio::time::timeout(
                        ztmesh_controller::SHUTDOWN_GRACE + Duration::from_secs(1),
                        running.shutdown(),
                    )
                    .await
                    .expect("the controller stops within its grace period")
                    .expect("the controller stops cleanly");
                });
            })
            .expect("a thread for the controller");
        let (addrs, ready) = started
            .recv_timeout(Duration::from_secs(20))
            .expect("the controller starts within 20s")
            .unwrap_or_else(|e| panic!("the controller did not start: {e}"));
        assert!(ready, "the controller stopped before it was ready");
        Self {
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The controller for the install in `identity_dir`, identity only, on
    /// an ephemeral loopback port.
    pub fn identity_only(identity_dir: &Path) -> Self {
        Self::start(Builder::new(identity_dir).identity_addr(loopback0()))
    }

    /// The controller for the install in `identity_dir` and the manifests
    /// in `manifests`, every service on an ephemeral loopback port.
    pub fn with_manifests(identity_dir: &Path, manifests: &Path) -> Self {
        Self::start(
            Builder::new(identity_dir)
                .identity_addr(loopback0())
                .manifests(manifests)
                .policy_addr(loopback0())
                .destination_addr(loopback0()),
        )
    }

    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// Shuts the controller down and waits until it has stopped (its ports
    /// free); panics if it did not stop cleanly. Idempotent.
    pub fn interrupt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for InProcessController {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// [`InProcessController::identity_only`] and its identity address, as
/// [`super::controller`] returns them.
pub fn in_process_controller(identity_dir: &Path) -> (InProcessController, String) {
    let controller = InProcessController::identity_only(identity_dir);
    let addr = controller.addrs().identity.to_string();
    (controller, addr)
}
