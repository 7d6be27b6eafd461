//! `ztmesh.node.v1.NodeIdentity/CertifyWorkload`: the controller signs
//! X.509-SVIDs for `ztmesh agent`, authenticated by a node token and
//! authorized by the WorkloadAttestation resources
//! ([`ztmesh_attestation::certify_for_node`]); the issuer's key stays here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use ztmesh_attestation::{NodeCertifyError, NodeCertifyRequest, NodeTokenVerifier};
use ztmesh_identity::Ca;
use ztmesh_identity::ca::CaError;
use ztmesh_spiffe_api::node::node_identity_server::{NodeIdentity, NodeIdentityServer};
use ztmesh_spiffe_api::node::{CertifyWorkloadRequest, CertifyWorkloadResponse};

pub struct NodeIdentityService {
    ca: watch::Receiver<Arc<Ca>>,
    verifier: NodeTokenVerifier,
    attestations: PathBuf,
}

impl NodeIdentityService {
    /// Serves with the current CA of `ca`, node tokens checked by
    /// `verifier`, and the WorkloadAttestation resources at `attestations`
    /// (a file or directory, read at each request).
    pub fn new(
        ca: watch::Receiver<Arc<Ca>>,
        verifier: NodeTokenVerifier,
        attestations: PathBuf,
    ) -> Self {
        Self {
            ca,
            verifier,
            attestations,
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
            Err(error) => {
                let status = status_for(&error);
                tracing::warn!(spiffe_id = %req.spiffe_id, code = ?status.code(), %error, "refused workload certificate");
                Err(status)
            }
        }
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
    }
}
