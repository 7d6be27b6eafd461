//! The real Identity service for tests: in process, where a test can take
//! it down and count calls, or served over gRPC on a loopback port.

use crate::TestPki;
use linkerd2_proxy_api::identity::identity_server::Identity;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use ztmesh_grpc::identity::IdentityService;
use ztmesh_identity::token::TokenVerifier;

/// The real Identity service with an outage switch and a call counter.
pub struct SwitchableIdentity {
    inner: IdentityService<TokenVerifier>,
    down: AtomicBool,
    calls: Mutex<Vec<tokio::time::Instant>>,
}

impl SwitchableIdentity {
    /// Issues leaves of `ttl` from `pki`'s issuer.
    pub fn new(pki: &TestPki, ttl: Duration) -> Arc<Self> {
        let (_tx, rx) = watch::channel(Arc::new(pki.ca(ttl)));
        Arc::new(Self {
            inner: IdentityService::new(rx, Arc::new(pki.token_signer().verifier())),
            down: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// While down, every call fails with UNAVAILABLE.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().expect("calls lock").len()
    }

    /// When each call arrived, on tokio's clock (the paused clock in tests).
    pub fn call_times(&self) -> Vec<tokio::time::Instant> {
        self.calls.lock().expect("calls lock").clone()
    }
}

#[tonic::async_trait]
impl Identity for SwitchableIdentity {
    async fn certify(
        &self,
        req: tonic::Request<CertifyRequest>,
    ) -> Result<tonic::Response<CertifyResponse>, tonic::Status> {
        self.calls
            .lock()
            .expect("calls lock")
            .push(tokio::time::Instant::now());
        if self.down.load(Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("test control plane is down"));
        }
        self.inner.certify(req).await
    }
}

/// Serves the real Identity service for `pki` on 127.0.0.1 (plaintext, as
/// every loopback listener is); stops when the returned sender is dropped.
pub async fn serve_identity(
    pki: &TestPki,
    ttl: Duration,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let (_ca_tx, ca) = watch::channel(Arc::new(pki.ca(ttl)));
    let service = IdentityService::new(ca, Arc::new(pki.token_signer().verifier()));
    let router = tonic::transport::Server::builder().add_service(service.into_server());
    let creds = ztmesh_tls::CredentialsStore::new();
    let tls = ztmesh_tls::server_config(creds, ztmesh_tls::TlsVersions::Tls13Only, &[b"h2"])
        .expect("TLS config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _keep = _ca_tx;
        let _ = ztmesh_grpc::server::serve(listener, router, tls, async {
            let _ = stopped.await;
        })
        .await;
    });
    (addr, stop)
}
