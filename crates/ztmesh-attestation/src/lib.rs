//! Who a local caller is, and which node may ask for which identity: the
//! domain half of `ztmesh agent` and of the controller's node identity
//! service, free of tonic and of any kernel call.
//!
//! Layout: [`selector`] parses `unix:uid:1000`-style selectors and matches
//! them against a [`selector::Caller`] (the kernel's peer credentials and
//! what /proc tells of the process, gathered by the agent); [`resource`]
//! reads and validates `WorkloadAttestation` resources from a file or a
//! directory and answers both questions: which identities a caller on a
//! node gets ([`resource::Attestations::identities_for`]) and whether a
//! node may be issued an identity
//! ([`resource::Attestations::node_may_have`]); [`node_token`] signs and
//! verifies the node tokens the agent authenticates with; [`jwt_svid`]
//! signs JWT-SVIDs (the controller) and validates them against a JWT
//! bundle (the agent); [`certify`] is the controller's decision for both.

#![forbid(unsafe_code)]

pub mod certify;
pub mod jwt_svid;
pub mod node_token;
pub mod resource;
pub mod selector;

pub use self::certify::{
    NodeCertifyError, NodeCertifyRequest, certify_for_node, mint_jwt_for_node,
};
pub use self::jwt_svid::{JwtBundle, JwtError, JwtSigner};
pub use self::node_token::{NodeTokenError, NodeTokenSigner, NodeTokenVerifier};
pub use self::resource::{Attestations, ResourceError, WorkloadIdentity};
pub use self::selector::{Caller, Selector, SelectorError};
