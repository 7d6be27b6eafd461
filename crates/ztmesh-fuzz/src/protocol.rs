//! `detect_protocol`: HTTP/1, HTTP/2 or opaque on a (decrypted) stream
//! ([`ztmesh_proxy::inbound::detect_protocol::detect_protocol`]).
//!
//! Input: the stream's first bytes, as they are. Invariant: the proxy reads
//! until the first answer that is not `None` (need more), so the answer
//! must not depend on how the bytes were split into reads: any prefix that
//! already answers answers as the whole input does.

use crate::input::prefix_lens;
use ztmesh_proxy::inbound::detect_protocol::detect_protocol as detect;

pub fn detect_protocol(data: &[u8]) {
    let whole = detect(data);
    for k in prefix_lens(data.len()) {
        if let Some(early) = detect(&data[..k]) {
            assert_eq!(Some(early), whole, "the first {k} bytes answered otherwise");
        }
    }
}
