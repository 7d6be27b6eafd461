//! `transport_header`: the opaque transport header
//! ([`ztmesh_proxy::transport_header::TransportHeader`]).
//!
//! Input: the bytes that follow the mTLS handshake, as they are.
//! Invariants: the sync `decode` and the async `read` agree (same header or
//! same error, and `read` consumes exactly what `decode` says it took); a
//! decoded header re-encodes to bytes that decode to the same header.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use ztmesh_proxy::transport_header::{HeaderError, TransportHeader};

pub fn transport_header(data: &[u8]) {
    let decoded = TransportHeader::decode(data);
    let mut rest = data;
    let read = ready(TransportHeader::read(&mut rest));
    match (&decoded, &read) {
        (Ok((h, used)), Ok(r)) => {
            assert_eq!(h, r);
            assert_eq!(*used, data.len() - rest.len(), "read consumed otherwise");
        }
        (Err(d), Err(r)) => assert_eq!(kind(d), kind(r)),
        _ => panic!("decode said {decoded:?}, read said {read:?}"),
    }
    if let Ok((h, _)) = decoded {
        let bytes = h.encode();
        let (again, used) = TransportHeader::decode(&bytes).expect("an encoded header decodes");
        assert_eq!(again, h);
        assert_eq!(used, bytes.len());
    }
}

/// The error's kind, without the message text (`read_exact` and a short
/// buffer word the same `UnexpectedEof` differently).
fn kind(e: &HeaderError) -> String {
    match e {
        HeaderError::Io(io) => format!("io {:?}", io.kind()),
        other => other.to_string(),
    }
}

/// Runs a future that never waits (reading from a slice) to its end.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading from a slice never waits"),
    }
}
