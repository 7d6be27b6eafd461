//! The controller's half of node certification, transport-free: a node
//! proves itself with its token, names the identity it wants by SPIFFE ID,
//! and gets a leaf only if a WorkloadAttestation assigns that identity to
//! that node. The CA, the CSR checks and the certificate are the identity
//! service's, so a workload's SVID is the certificate its proxy would get.

use crate::node_token::{NodeTokenError, NodeTokenVerifier};
use crate::resource::{Attestations, ResourceError, WorkloadIdentity};
use std::path::Path;
use std::time::SystemTime;
use ztmesh_identity::ca::CaError;
use ztmesh_identity::csr::CsrError;
use ztmesh_identity::{Ca, IssuedCertificate, NameError};

pub struct NodeCertifyRequest<'a> {
    pub node_token: &'a [u8],
    pub spiffe_id: &'a str,
    pub csr: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum NodeCertifyError {
    #[error("node token rejected: {0}")]
    Unauthenticated(#[from] NodeTokenError),
    #[error("requested identity {spiffe_id:?} is invalid: {error}")]
    BadIdentity { spiffe_id: String, error: NameError },
    #[error(
        "node {node:?} may not be issued {identity}: no WorkloadAttestation assigns it to this node"
    )]
    NotAssigned { node: String, identity: String },
    #[error("the controller's WorkloadAttestation resources are invalid: {0}")]
    Attestations(#[from] ResourceError),
    #[error(transparent)]
    BadCsr(#[from] CsrError),
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Certifies `req` with `ca`, if the resources at `attestations` (read now,
/// so edits apply to the next request) assign the identity to the node.
pub fn certify_for_node(
    req: NodeCertifyRequest<'_>,
    verifier: &NodeTokenVerifier,
    attestations: &Path,
    ca: &Ca,
    now: SystemTime,
) -> Result<(String, IssuedCertificate), NodeCertifyError> {
    let node = verifier.verify(req.node_token, now)?;
    let identity = ztmesh_identity::IdentityName::parse_spiffe(
        req.spiffe_id,
        ca.trust_domain().control_plane_ns(),
    )
    .and_then(|id| {
        if id.trust_domain() == ca.trust_domain() {
            Ok(id)
        } else {
            Err(NameError::NotASpiffeId(format!(
                "{} (this controller's trust domain is {})",
                req.spiffe_id,
                ca.trust_domain().domain()
            )))
        }
    })
    .map_err(|error| NodeCertifyError::BadIdentity {
        spiffe_id: req.spiffe_id.into(),
        error,
    })?;
    let wanted = WorkloadIdentity {
        namespace: identity.namespace().into(),
        service_account: identity.service_account().into(),
    };
    if !Attestations::load(attestations)?.node_may_have(&node, &wanted) {
        return Err(NodeCertifyError::NotAssigned {
            node,
            identity: req.spiffe_id.into(),
        });
    }
    let csr = ztmesh_identity::csr::validate(req.csr, &identity)?;
    Ok((node, ca.issue(&identity, csr.public_key(), now)?))
}
