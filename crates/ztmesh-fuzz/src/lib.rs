//! The bodies of ztmesh's fuzz targets, one `pub fn <target>(data: &[u8])`
//! each, so that the fuzzers and CI run the same code.
//!
//! Layout: this crate is a workspace member (built and tested by `cargo test
//! --workspace`, no nightly needed); `fuzz/` at the repository's root is
//! cargo-fuzz's own workspace (its `fuzz_targets/<target>.rs` are one-line
//! calls into this crate, built with `RUSTC_BOOTSTRAP=1 cargo fuzz build`);
//! `fuzz/corpus/<target>/` holds each target's minimised corpus and
//! `fuzz/regressions/<target>/` the inputs of past findings, all replayed by
//! `tests/replay.rs`; `examples/seed_corpus.rs` wrote the first seeds from
//! real inputs (a rustls ClientHello, an rcgen CSR, a signed token, ...).
//!
//! The property of every target is that no input panics, hangs or exhausts
//! memory; where a parse succeeds each also asserts an invariant of the
//! result (a round trip, a value lying within the input, an answer that
//! does not change as more bytes arrive, an oracle for what must pass).
//! Targets that need several values read them from the input's first bytes
//! (`input::Input`, a leaf every target may use); each module's
//! documentation gives its input's layout.

#![forbid(unsafe_code)]

mod admin;
mod csr;
mod input;
mod manifest;
mod protocol;
mod tap;
mod tls;
mod token;
mod transport;

pub use self::admin::admin_http;
pub use self::csr::{REQUESTED_IDENTITY, csr};
pub use self::manifest::manifest;
pub use self::protocol::detect_protocol;
pub use self::tap::tap_observe;
pub use self::tls::client_hello;
pub use self::token::{FUZZ_KEY_PEM, now, token};
pub use self::transport::transport_header;

/// Every target, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("client_hello", client_hello),
    ("transport_header", transport_header),
    ("detect_protocol", detect_protocol),
    ("manifest", manifest),
    ("csr", csr),
    ("token", token),
    ("tap_observe", tap_observe),
    ("admin_http", admin_http),
];
