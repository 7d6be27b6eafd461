//! An in-process Workload API server for tests (the `test-util` feature):
//! FetchX509SVID over a Unix socket, streaming whatever the test sends,
//! and refusing calls without the `workload.spiffe.io: true` metadata as
//! the specification requires (InvalidArgument). [`issue_svid`] mints an
//! X.509-SVID (the SPIFFE ID as the only SAN) under a given issuer.
//! `ztmesh agent` is the real server; this one has no attestation.

use super::proto::{self, X509Svid, X509SvidRequest, X509SvidResponse};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

#[derive(Debug)]
pub struct TestWorkloadApi {
    current: watch::Sender<Option<X509SvidResponse>>,
    /// Bumped to end every open stream.
    epoch: watch::Sender<u64>,
    streams: AtomicUsize,
    refused: AtomicUsize,
}

impl TestWorkloadApi {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            current: watch::channel(None).0,
            epoch: watch::channel(0).0,
            streams: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
    }

    /// Sends `msg` on every open stream, and first on every new one.
    pub fn send(&self, msg: X509SvidResponse) {
        self.current.send_replace(Some(msg));
    }

    /// Ends every open stream, as a restarting agent does.
    pub fn end_streams(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Streams opened (with the required metadata).
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    /// Calls refused for missing the required metadata.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::UnixListener) {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(Service(self))
            .serve_with_incoming(incoming)
            .await;
    }
}

#[derive(Clone, Debug)]
struct Service(Arc<TestWorkloadApi>);

impl tonic::server::NamedService for Service {
    const NAME: &'static str = proto::SERVICE;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Service {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != proto::FETCH_X509_SVID {
                return Ok(
                    tonic::Status::unimplemented("not served by this test server").into_http(),
                );
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(Fetch(api), req).await)
        })
    }
}

struct Fetch(Arc<TestWorkloadApi>);

type SvidStream = tokio_stream::wrappers::ReceiverStream<Result<X509SvidResponse, tonic::Status>>;

impl tonic::server::ServerStreamingService<X509SvidRequest> for Fetch {
    type Response = X509SvidResponse;
    type ResponseStream = SvidStream;
    type Future = BoxFuture<Result<tonic::Response<SvidStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<X509SvidRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let header = req.metadata().get(proto::SECURITY_HEADER);
            if header.and_then(|v| v.to_str().ok()) != Some(proto::SECURITY_HEADER_VALUE) {
                api.refused.fetch_add(1, Ordering::SeqCst);
                return Err(tonic::Status::invalid_argument(
                    "security header missing from request",
                ));
            }
            api.streams.fetch_add(1, Ordering::SeqCst);
            let mut current = api.current.subscribe();
            let mut epoch = api.epoch.subscribe();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                current.mark_changed();
                loop {
                    tokio::select! {
                        changed = current.changed() => if changed.is_err() { return },
                        // The stream ends when the sender is dropped.
                        _ = epoch.changed() => return,
                    }
                    let msg = current.borrow_and_update().clone();
                    if let Some(msg) = msg
                        && tx.send(Ok(msg)).await.is_err()
                    {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(SvidStream::new(rx)))
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("minting a test SVID: {0}")]
pub struct IssueError(String);

/// An X.509-SVID for `spiffe_id`, valid for `ttl`, signed by the issuer
/// (`issuer_chain[0]`, with `issuer_key_pem`), with `bundle` (DER anchors).
pub fn issue_svid(
    issuer_chain: &[Vec<u8>],
    issuer_key_pem: &str,
    spiffe_id: &str,
    ttl: Duration,
    bundle: &[Vec<u8>],
) -> Result<X509Svid, IssueError> {
    let err = |e: rcgen::Error| IssueError(e.to_string());
    let issuer_key = rcgen::KeyPair::from_pem(issuer_key_pem).map_err(err)?;
    let issuer_der = rustls_pki_types::CertificateDer::from(
        issuer_chain
            .first()
            .ok_or_else(|| IssueError("no issuer certificate".into()))?
            .clone(),
    );
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der, issuer_key).map_err(err)?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe_id.try_into().map_err(err)?)];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + ttl).into();
    let leaf = params.signed_by(&key, &issuer).map_err(err)?;
    let mut x509_svid = leaf.der().to_vec();
    for der in issuer_chain {
        x509_svid.extend_from_slice(der);
    }
    Ok(X509Svid {
        spiffe_id: spiffe_id.into(),
        x509_svid,
        x509_svid_key: key.serialize_der(),
        bundle: bundle.concat(),
        hint: String::new(),
    })
}
