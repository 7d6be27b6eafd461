//! The controller's half of node certification, transport-free: a node
//! proves itself with its token, names the identity it wants by SPIFFE ID,
//! and gets a leaf ([`certify_for_node`]) or a JWT-SVID
//! ([`mint_jwt_for_node`]) only if a WorkloadAttestation assigns that
//! identity to that node. The CA, the CSR checks and the certificate are the identity
//! service's, so a workload's SVID is the certificate its proxy would get.

use crate::jwt_svid::{JwtError, JwtSigner};
use crate::node_token::{NodeTokenError, NodeTokenVerifier};
use crate::resource::{Attestations, ResourceError, WorkloadIdentity};
use std::path::Path;
use std::time::SystemTime;
use ztmesh_identity::ca::CaError;
use ztmesh_identity::csr::CsrError;
use ztmesh_identity::{Ca, IdentityName, IssuedCertificate, NameError, TrustDomain};

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
    #[error(transparent)]
    Jwt(#[from] JwtError),
}

/// The node `node_token` proves and the identity `spiffe_id` names, if
/// the resources at `attestations` (read now, so edits apply to the next
/// request) assign that identity to that node.
fn authorize(
    node_token: &[u8],
    spiffe_id: &str,
    verifier: &NodeTokenVerifier,
    attestations: &Path,
    trust: &TrustDomain,
    now: SystemTime,
) -> Result<(String, IdentityName), NodeCertifyError> {
    let node = verifier.verify(node_token, now)?;
    let identity = IdentityName::parse_spiffe(spiffe_id, trust.control_plane_ns())
        .and_then(|id| {
            if id.trust_domain() == trust {
                Ok(id)
            } else {
                Err(NameError::NotASpiffeId(format!(
                    "{spiffe_id} (this controller's trust domain is {})",
                    trust.domain()
                )))
            }
        })
        .map_err(|error| NodeCertifyError::BadIdentity {
            spiffe_id: spiffe_id.into(),
            error,
        })?;
    let wanted = WorkloadIdentity {
        namespace: identity.namespace().into(),
        service_account: identity.service_account().into(),
    };
    if !Attestations::load(attestations)?.node_may_have(&node, &wanted) {
        return Err(NodeCertifyError::NotAssigned {
            node,
            identity: spiffe_id.into(),
        });
    }
    Ok((node, identity))
}

/// Certifies `req` with `ca`, if the node may have the identity: an
/// X.509-SVID naming it by its SPIFFE ID alone.
pub fn certify_for_node(
    req: NodeCertifyRequest<'_>,
    verifier: &NodeTokenVerifier,
    attestations: &Path,
    ca: &Ca,
    now: SystemTime,
) -> Result<(String, IssuedCertificate), NodeCertifyError> {
    let (node, identity) = authorize(
        req.node_token,
        req.spiffe_id,
        verifier,
        attestations,
        ca.trust_domain(),
        now,
    )?;
    let csr = ztmesh_identity::csr::validate(req.csr, &identity)?;
    Ok((node, ca.issue_svid(&identity, csr.public_key(), now)?))
}

/// A JWT-SVID for `spiffe_id` and `audience`, if the node may have the identity.
#[allow(clippy::too_many_arguments)]
pub fn mint_jwt_for_node(
    node_token: &[u8],
    spiffe_id: &str,
    audience: &[String],
    verifier: &NodeTokenVerifier,
    attestations: &Path,
    trust: &TrustDomain,
    signer: &JwtSigner,
    now: SystemTime,
) -> Result<(String, String), NodeCertifyError> {
    let (node, identity) = authorize(node_token, spiffe_id, verifier, attestations, trust, now)?;
    Ok((node, signer.sign(&identity.spiffe_id(), audience, now)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeTokenSigner;
    use std::time::Duration;
    use ztmesh_test_support::{TestPki, csr_for};

    const RESOURCE: &str = "apiVersion: ztmesh.io/v1alpha1\nkind: WorkloadAttestation\nmetadata: {name: web}\nspec: {namespace: demo, serviceAccount: web, nodes: [node-a], selectors: [unix:uid:1000]}\n";

    #[test]
    fn refusals_and_issuance() {
        let pki = TestPki::new();
        let ca = pki.ca(Duration::from_secs(3600));
        let signer = NodeTokenSigner::from_pem(
            &std::fs::read(pki.dir().join("token.key")).expect("token.key"),
            "token.key",
        )
        .expect("signer");
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let node_a = signer.sign("node-a", hour, now).expect("token");
        let node_b = signer.sign("node-b", hour, now).expect("token");
        let tmp = tempfile::tempdir().expect("tempdir");
        let good = tmp.path().join("good.yaml");
        std::fs::write(&good, RESOURCE).expect("write");
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(&bad, RESOURCE.replace("unix:uid:1000", "unix:uid:x")).expect("write");
        let web = "spiffe://cluster.local/ns/demo/sa/web";
        let (_, web_csr) = csr_for(&pki.identity("demo", "web").to_string());
        let (_, other_csr) = csr_for(&pki.identity("demo", "other").to_string());
        type Check = fn(&NodeCertifyError) -> bool;
        // (token, spiffe id, csr, resources) -> outcome
        let table: Vec<(&str, &str, &[u8], &Path, Option<Check>)> = vec![
            (&node_a, web, &web_csr, &good, None),
            (
                "",
                web,
                &web_csr,
                &good,
                Some(|e| matches!(e, NodeCertifyError::Unauthenticated(_))),
            ),
            (
                &node_b,
                web,
                &web_csr,
                &good,
                Some(|e| matches!(e, NodeCertifyError::NotAssigned { .. })),
            ),
            (
                &node_a,
                "spiffe://other.org/ns/demo/sa/web",
                &web_csr,
                &good,
                Some(|e| matches!(e, NodeCertifyError::BadIdentity { .. })),
            ),
            (
                &node_a,
                "demo/web",
                &web_csr,
                &good,
                Some(|e| matches!(e, NodeCertifyError::BadIdentity { .. })),
            ),
            (
                &node_a,
                web,
                &other_csr,
                &good,
                Some(|e| matches!(e, NodeCertifyError::BadCsr(_))),
            ),
            (
                &node_a,
                web,
                &web_csr,
                &bad,
                Some(|e| matches!(e, NodeCertifyError::Attestations(_))),
            ),
        ];
        for (i, (token, id, csr, resources, want)) in table.into_iter().enumerate() {
            let got = certify_for_node(
                NodeCertifyRequest {
                    node_token: token.as_bytes(),
                    spiffe_id: id,
                    csr,
                },
                &signer.verifier(),
                resources,
                &ca,
                now,
            );
            match (got, want) {
                (Ok((node, issued)), None) => {
                    assert_eq!(node, "node-a", "row {i}");
                    assert!(!issued.leaf.is_empty(), "row {i}");
                }
                (Err(e), Some(check)) => assert!(check(&e), "row {i}: {e}"),
                (got, _) => panic!("row {i}: unexpected {:?}", got.map(|(n, _)| n)),
            }
        }
    }
}
