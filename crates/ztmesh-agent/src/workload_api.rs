//! The SPIFFE Workload API over the agent's state.
//!
//! Every call must carry `workload.spiffe.io: true` (else InvalidArgument,
//! as the specification says). The SVID and bundle calls then attest the
//! caller: its credentials against the WorkloadAttestation resources of
//! this node, re-read at each call; a caller that matches none is refused
//! with PermissionDenied naming its credentials. Streams send at once and
//! again whenever an SVID is renewed or the bundle changes.

use crate::jwt::JwtSource;
use crate::svids::{Bundle, SlotState, Svids};
use futures::FutureExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use ztmesh_attestation::{Attestations, WorkloadIdentity};
use ztmesh_spiffe_api::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use ztmesh_spiffe_api::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    SECURITY_HEADER, SECURITY_HEADER_VALUE, ValidateJwtsvidRequest, ValidateJwtsvidResponse,
    X509BundlesRequest, X509BundlesResponse, X509svid, X509svidRequest, X509svidResponse,
};

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct WorkloadApi {
    pub(crate) svids: Arc<Svids>,
    pub(crate) jwt: Arc<JwtSource>,
    pub(crate) attestations: PathBuf,
    pub(crate) node: String,
    pub(crate) proc_root: PathBuf,
}

impl WorkloadApi {
    pub fn into_server(self) -> SpiffeWorkloadApiServer<Self> {
        SpiffeWorkloadApiServer::new(self)
    }

    /// The identities of the caller of `req`, or why it gets none.
    fn attest<T>(&self, req: &Request<T>) -> Result<Vec<WorkloadIdentity>, Status> {
        check_header(req)?;
        let caller = crate::peer::caller(req, &self.proc_root).ok_or_else(|| {
            Status::permission_denied("the kernel gave no peer credentials for this connection")
        })?;
        let attestations = Attestations::load(&self.attestations).map_err(|e| {
            tracing::error!(error = %e, "WorkloadAttestation resources are invalid");
            Status::unavailable(format!(
                "the agent's WorkloadAttestation resources are invalid: {e}"
            ))
        })?;
        let ids = attestations.identities_for(&self.node, &caller);
        if ids.is_empty() {
            let reason = format!(
                "no identity issued: the caller ({}) matches no WorkloadAttestation for node {:?}",
                crate::peer::describe(&caller),
                self.node
            );
            tracing::info!(%reason, "refused an unattested caller");
            return Err(Status::permission_denied(reason));
        }
        Ok(ids)
    }
}

fn check_header<T>(req: &Request<T>) -> Result<(), Status> {
    match req.metadata().get(SECURITY_HEADER).map(|v| v.to_str()) {
        Some(Ok(SECURITY_HEADER_VALUE)) => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "security header missing from request: every Workload API call must carry {SECURITY_HEADER}: {SECURITY_HEADER_VALUE}"
        ))),
    }
}

/// Waits until every slot has a state (SVID or failure).
async fn all_settled(slots: &mut [watch::Receiver<SlotState>]) -> bool {
    for slot in slots.iter_mut() {
        if slot.wait_for(|s| s.is_some()).await.is_err() {
            return false;
        }
    }
    true
}

/// Waits for a change in any slot or in the bundle; false once none can change.
async fn any_change(
    slots: &mut [watch::Receiver<SlotState>],
    bundle: &mut watch::Receiver<Bundle>,
) -> bool {
    let slot_changes = futures::future::select_all(slots.iter_mut().map(|s| s.changed().boxed()));
    tokio::select! {
        (r, _, _) = slot_changes => r.is_ok(),
        r = bundle.changed() => r.is_ok(),
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Streamed<X509svidResponse>;
    type FetchX509BundlesStream = Streamed<X509BundlesResponse>;
    type FetchJWTBundlesStream = Streamed<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let ids = self.attest(&req)?;
        let mut slots: Vec<_> = ids.iter().map(|id| self.svids.subscribe(id)).collect();
        let mut bundle = self.svids.bundle();
        if !all_settled(&mut slots).await {
            return Err(Status::unavailable("the agent is stopping"));
        }
        // The first answer (or why there is none) goes back as the call's result.
        let first = x509_response(&slots, &bundle.borrow_and_update())?;
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut next = Ok(first);
            loop {
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    return;
                }
                tokio::select! {
                    changed = any_change(&mut slots, &mut bundle) => if !changed { return },
                    () = tx.closed() => return,
                }
                let b = bundle.borrow_and_update().clone();
                next = x509_response(&slots, &b);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_x509_bundles(
        &self,
        req: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.attest(&req)?;
        let mut bundle = self.svids.bundle();
        let domain = self.svids.trust().domain().to_string();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                let b = bundle.borrow_and_update().concat();
                let resp = X509BundlesResponse {
                    crl: Vec::new(),
                    bundles: [(domain.clone(), b)].into(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = bundle.changed() => if r.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_jwtsvid(
        &self,
        req: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let ids = self.attest(&req)?;
        let req = req.into_inner();
        if req.audience.is_empty() || req.audience.iter().any(|a| a.is_empty()) {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        let mut spiffe_ids: Vec<String> = ids.iter().map(|id| self.svids.spiffe_id(id)).collect();
        if !req.spiffe_id.is_empty() {
            if !spiffe_ids.contains(&req.spiffe_id) {
                return Err(Status::permission_denied(format!(
                    "no identity issued: the caller is not entitled to {:?} (it is {})",
                    req.spiffe_id,
                    spiffe_ids.join(", ")
                )));
            }
            spiffe_ids = vec![req.spiffe_id];
        }
        let mut svids = Vec::new();
        for id in spiffe_ids {
            let token = self.jwt.mint(&id, &req.audience).await?;
            svids.push(Jwtsvid {
                spiffe_id: id,
                svid: token,
                hint: String::new(),
            });
        }
        Ok(Response::new(JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        req: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.attest(&req)?;
        let bundle = self.jwt.bundle(true).await?;
        let resp = JwtBundlesResponse {
            bundles: [(bundle.trust_domain.clone(), bundle.jwks.clone())].into(),
        };
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            // The controller's key does not change while it runs: one
            // answer, then the stream stays open until the caller leaves.
            if tx.send(Ok(resp)).await.is_ok() {
                tx.closed().await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn validate_jwtsvid(
        &self,
        req: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        check_header(&req)?;
        let req = req.into_inner();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let (spiffe_id, claims) = self.jwt.validate(&req.svid, &req.audience).await?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id,
            claims: Some(crate::jwt::to_struct(claims)),
        }))
    }
}

/// The X.509-SVIDs of `slots` that are there, or why there are none.
fn x509_response(
    slots: &[watch::Receiver<SlotState>],
    bundle: &Bundle,
) -> Result<X509svidResponse, Status> {
    let bundle = bundle.concat();
    let mut svids = Vec::new();
    let mut errors = Vec::new();
    for slot in slots {
        match &*slot.borrow() {
            Some(Ok(svid)) => svids.push(X509svid {
                spiffe_id: svid.spiffe_id.clone(),
                x509_svid: svid.chain.concat(),
                x509_svid_key: svid.key_pkcs8.clone(),
                bundle: bundle.clone(),
                hint: String::new(),
            }),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    if svids.is_empty() {
        return Err(Status::unavailable(format!(
            "no X.509-SVID could be obtained from the controller: {}",
            errors.join("; ")
        )));
    }
    Ok(X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles: Default::default(),
    })
}
