//! The SPIFFE Workload API as the proxy's identity source (set by
//! `LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS`).
//!
//! - [`proto`]: the X.509 messages of `workload.proto`, written from the
//!   specification (no crate on crates.io offered the server side too
//!   without a large tree), and a DER splitter for its concatenated
//!   certificates.
//! - [`client`]: gRPC over the Unix socket with the required metadata.
//! - [`svid`]: follows FetchX509SVID, installs the proxy's SVID and the
//!   bundle sent with it, keeps the last good one on a bad update.
//! - `test_server` (feature `test-util`): an in-process server for tests.

pub mod client;
pub mod proto;
pub mod svid;
#[cfg(any(test, feature = "test-util"))]
pub mod test_server;

pub use self::svid::SvidDaemon;
