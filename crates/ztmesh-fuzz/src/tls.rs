//! `client_hello`: the inbound ClientHello / SNI peek
//! ([`ztmesh_proxy::inbound::detect_tls::detect`]).
//!
//! Input: the connection's first bytes, as they are. Invariants: an SNI
//! that is found lies within the TLS record and is lowercase; and since the
//! proxy stops reading at the first answer that is not `NeedMore`, any
//! prefix (within `MAX_PEEK`) that already answers answers the same.

use crate::input::prefix_lens;
use ztmesh_proxy::inbound::detect_tls::{Detected, MAX_PEEK, detect};

pub fn client_hello(data: &[u8]) {
    let detected = detect(data);
    if let Detected::ClientHello { sni: Some(sni) } = &detected {
        let record_len = usize::from(u16::from_be_bytes([data[3], data[4]]));
        let record = &data[5..5 + record_len];
        assert!(
            sni.is_empty()
                || record
                    .windows(sni.len())
                    .any(|w| w.eq_ignore_ascii_case(sni.as_bytes())),
            "SNI {sni:?} is not in the record"
        );
        assert!(!sni.bytes().any(|b| b.is_ascii_uppercase()), "{sni:?}");
    }
    if data.len() <= MAX_PEEK {
        for k in prefix_lens(data.len()) {
            let early = detect(&data[..k]);
            if early != Detected::NeedMore {
                assert_eq!(early, detected, "the first {k} bytes answered otherwise");
            }
        }
    }
}
