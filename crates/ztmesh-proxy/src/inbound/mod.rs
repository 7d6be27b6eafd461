//! The inbound path: connections from other workloads (and from outside the
//! mesh) to this workload, as a stack of small stages, one file each:
//!
//! 1. [`accept`]: accept, bound the time to the first bytes, hand on;
//! 2. [`detect_tls`]: peek for a ClientHello naming this proxy's identity;
//! 3. [`tls`]: terminate mesh TLS and learn the client's identity;
//!    [`transport`]: the dialed address must be the pod's, and a transport
//!    header is honoured only from an identified client, never to the
//!    proxy's own ports;
//! 4. [`policy`]: each port's policy from the controller, kept current;
//!    [`authorize`]: every opaque connection and every request decided
//!    against it (ztmesh-authz), denials answered in one place;
//! 5. [`detect_protocol`]: HTTP/1, HTTP/2 or opaque, within the detect timeout;
//! 6. [`forward`]: to the application, as a bidirectional copy with half-close
//!    for opaque streams; [`http`]: request by request over a keep-alive pool
//!    for HTTP/1 and HTTP/2, counted, with [`client_id`]: the verified
//!    identity in `l5d-client-id`, never a forged one.
//!
//! Each stage reads only the parameters it needs.

pub mod accept;
pub mod authorize;
pub mod client_id;
pub mod detect_protocol;
pub mod detect_tls;
pub mod forward;
pub mod http;
pub mod policy;
pub mod tls;
pub mod transport;
