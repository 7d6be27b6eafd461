//! `ztmesh.node.v1.NodeIdentity`: the controller signs X.509-SVIDs
//! (CertifyWorkload) and JWT-SVIDs (MintJwtSvid) for `ztmesh agent`,
//! authenticated by a node token and authorized by the WorkloadAttestation
//! resources ([`ztmesh_attestation::certify_for_node`],
//! [`ztmesh_attestation::mint_jwt_for_node`]), and serves the JWT bundle
//! (GetJwtBundle); the signing keys stay here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use ztmesh_attestation::{
    JwtError, JwtSigner, NodeCertifyError, NodeCertifyRequest, NodeTokenVerifier,
};
use ztmesh_identity::Ca;
use ztmesh_identity::ca::CaError;
use ztmesh_spiffe_api::node::node_identity_server::{NodeIdentity, NodeIdentityServer};
use ztmesh_spiffe_api::node::{
    CertifyWorkloadRequest, CertifyWorkloadResponse, GetJwtBundleRequest, GetJwtBundleResponse,
    MintJwtSvidRequest, MintJwtSvidResponse,
};

pub struct NodeIdentityService {
    ca: watch::Receiver<Arc<Ca>>,
    verifier: NodeTokenVerifier,
    attestations: PathBuf,
    jwt: Arc<JwtSigner>,
}

impl NodeIdentityService {
    /// Serves with the current CA of `ca`, node tokens checked by
    /// `verifier`, and the WorkloadAttestation resources at `attestations`
    /// (a file or directory, read at each request), JWT-SVIDs signed by `jwt`.
    pub fn new(
        ca: watch::Receiver<Arc<Ca>>,
        verifier: NodeTokenVerifier,
        attestations: PathBuf,
        jwt: Arc<JwtSigner>,
    ) -> Self {
        Self {
            ca,
            verifier,
            attestations,
            jwt,
        }
    }

    pub fn into_server(self) -> NodeIdentityServer<Self> {
        NodeIdentityServer::new(self).max_decoding_message_size(crate::identity::MAX_REQUEST_BYTES)
    }
}

#[tonic::async_trait]
impl NodeIdentity for NodeIdentityService {
    async fn certify_workload(
        &self,
        req: Request<CertifyWorkloadRequest>,
    ) -> Result<Response<CertifyWorkloadResponse>, Status> {
        let req = req.into_inner();
        let ca = self.ca.borrow().clone();
        let result = ztmesh_attestation::certify_for_node(
            NodeCertifyRequest {
                node_token: &req.node_token,
                spiffe_id: &req.spiffe_id,
                csr: &req.certificate_signing_request,
            },
            &self.verifier,
            &self.attestations,
            &ca,
            SystemTime::now(),
        );
        match result {
            Ok((node, issued)) => {
                tracing::info!(%node, spiffe_id = %req.spiffe_id, "issued workload certificate to node");
                Ok(Response::new(CertifyWorkloadResponse {
                    leaf_certificate: issued.leaf.to_vec(),
                    intermediate_certificates: issued
                        .intermediates
                        .iter()
                        .map(|c| c.to_vec())
                        .collect(),
                    valid_until: issued
                        .valid_until
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or_default(),
                    trust_anchors: ca
                        .issuer()
                        .anchors()
                        .certificates()
                        .iter()
                        .map(|c| c.to_vec())
                        .collect(),
                }))
            }
            Err(error) => Err(self.refused(&req.spiffe_id, error)),
        }
    }

    async fn mint_jwt_svid(
        &self,
        req: Request<MintJwtSvidRequest>,
    ) -> Result<Response<MintJwtSvidResponse>, Status> {
        let req = req.into_inner();
        let ca = self.ca.borrow().clone();
        match ztmesh_attestation::mint_jwt_for_node(
            &req.node_token,
            &req.spiffe_id,
            &req.audience,
            &self.verifier,
            &self.attestations,
            ca.trust_domain(),
            &self.jwt,
            SystemTime::now(),
        ) {
            Ok((node, token)) => {
                tracing::info!(%node, spiffe_id = %req.spiffe_id, audience = ?req.audience, "issued JWT-SVID to node");
                Ok(Response::new(MintJwtSvidResponse { token }))
            }
            Err(error) => Err(self.refused(&req.spiffe_id, error)),
        }
    }

    async fn get_jwt_bundle(
        &self,
        req: Request<GetJwtBundleRequest>,
    ) -> Result<Response<GetJwtBundleResponse>, Status> {
        let req = req.into_inner();
        self.verifier
            .verify(&req.node_token, SystemTime::now())
            .map_err(|e| self.refused("", e.into()))?;
        Ok(Response::new(GetJwtBundleResponse {
            trust_domain: self.ca.borrow().trust_domain().domain().to_string(),
            jwks: self.jwt.jwks().to_vec(),
        }))
    }
}

impl NodeIdentityService {
    fn refused(&self, spiffe_id: &str, error: NodeCertifyError) -> Status {
        let status = status_for(&error);
        tracing::warn!(%spiffe_id, code = ?status.code(), %error, "refused a node's request");
        status
    }
}

/// Node refusals as gRPC codes.
pub fn status_for(error: &NodeCertifyError) -> Status {
    let msg = error.to_string();
    match error {
        NodeCertifyError::Unauthenticated(_) => Status::unauthenticated(msg),
        NodeCertifyError::BadIdentity { .. } | NodeCertifyError::BadCsr(_) => {
            Status::invalid_argument(msg)
        }
        NodeCertifyError::NotAssigned { .. } => Status::permission_denied(msg),
        NodeCertifyError::Attestations(_) => Status::failed_precondition(msg),
        NodeCertifyError::Ca(CaError::IssuerExpired(_)) => Status::unavailable(msg),
        NodeCertifyError::Ca(CaError::WrongTrustDomain { .. }) => Status::invalid_argument(msg),
        NodeCertifyError::Ca(CaError::Sign(_)) => Status::internal(msg),
        NodeCertifyError::Jwt(JwtError::NoAudience) => Status::invalid_argument(msg),
        NodeCertifyError::Jwt(_) => Status::internal(msg),
    }
}
