//! The inbound path: connections from other workloads (and from outside the
//! mesh) to this workload, as a stack of small stages, one file each, in
//! the order [`accept`] runs them:
//!
//! 1. [`accept`]: accept; [`transport`]: the dialed address must be the
//!    pod's;
//! 2. [`detect_tls`]: read the first bytes (bounded by the detect timeout)
//!    and look for a ClientHello naming this proxy's identity;
//! 3. [`tls`]: terminate mesh TLS and learn the client's identity; the
//!    stage's answer is one typed [`tls::ClientTls`] (terminated, passed
//!    through, or plaintext and why) from which authorization and metric
//!    labels are derived; [`transport`]: a transport header is honoured
//!    only from an identified client, never to the proxy's own ports;
//! 4. [`detect_protocol`]: HTTP/1, HTTP/2 or opaque on the (decrypted)
//!    stream, within the detect timeout (opaque ports and passed-through
//!    TLS skip it);
//! 5. [`policy`]: each port's policy from the controller, kept current;
//!    [`authorize`]: an opaque connection is decided once, before it is
//!    forwarded (and closed if an update revokes it), an HTTP connection
//!    request by request (ztmesh-authz), denials answered in one place;
//! 6. [`forward`]: to the application, as a bidirectional copy with
//!    half-close for opaque streams; [`http`]: request by request over a
//!    keep-alive pool for HTTP/1 and HTTP/2, counted, with [`client_id`]:
//!    the verified identity in `l5d-client-id`, never a forged one.
//!
//! [`builder`] assembles the stack. Each stage reads only the parameters
//! it needs.

pub(crate) mod accept;
pub(crate) mod authorize;
pub(crate) mod builder;
pub(crate) mod client_id;
pub mod detect_protocol;
pub mod detect_tls;
#[cfg(test)]
mod federation_tests;
pub(crate) mod forward;
pub(crate) mod http;
pub(crate) mod policy;
pub(crate) mod tls;
pub(crate) mod transport;

pub use accept::{Inbound, InboundTarget};
pub use authorize::{DefaultPolicy, UnknownDefaultPolicy};
pub use builder::{DEFAULT_DETECT_TIMEOUT, InboundBuilder};
pub use policy::Policies;
pub use transport::Targets;
