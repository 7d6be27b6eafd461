//! `tap_observe`: a Tap `ObserveRequest` from the wire, checked and matched
//! as the proxy's Tap service does ([`ztmesh_proxy::tap::observe_filter`],
//! [`ztmesh_proxy::tap::matches`]).
//!
//! Input: a big-endian u16 length, that many bytes of protobuf
//! `ObserveRequest`, then a request to match: `METHOD SP URI`, optionally
//! followed by `LF` and a `Host` value (parts that do not parse fall back
//! to `GET`, `/` and no `Host`). Invariants: a request that decodes
//! re-encodes to the same request; an accepted filter has a limit, and
//! matching obeys the combinators' laws (`not f` is the negation of `f`,
//! `all [f]` and `any [f]` are `f`).

use linkerd2_proxy_api::tap::ObserveRequest;
use linkerd2_proxy_api::tap::observe_request::{Match, r#match as m};
use prost::Message;
use ztmesh_proxy::tap::{matches, observe_filter};

pub fn tap_observe(data: &[u8]) {
    let (len, rest) = match data.split_first_chunk::<2>() {
        Some((len, rest)) => (usize::from(u16::from_be_bytes(*len)), rest),
        None => (0, data),
    };
    let (proto, http) = rest.split_at(len.min(rest.len()));
    let Ok(observe) = ObserveRequest::decode(proto) else {
        return;
    };
    assert_eq!(
        ObserveRequest::decode(observe.encode_to_vec().as_slice()).as_ref(),
        Ok(&observe)
    );
    let limit = observe.limit;
    let Ok((filter, accepted_limit)) = observe_filter(observe) else {
        return;
    };
    assert!(accepted_limit == limit && limit > 0);
    let req = request(http);
    let matched = matches(&filter, &req);
    let wrap = |m: m::Match| Match { r#match: Some(m) };
    let seq = || m::Seq {
        matches: vec![filter.clone()],
    };
    assert_eq!(
        matches(&wrap(m::Match::Not(Box::new(filter.clone()))), &req),
        !matched
    );
    assert_eq!(matches(&wrap(m::Match::All(seq())), &req), matched);
    assert_eq!(matches(&wrap(m::Match::Any(seq())), &req), matched);
}

fn request(bytes: &[u8]) -> http::Request<()> {
    let (line, host) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let (method, uri) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (&b"GET"[..], line),
    };
    let mut req = http::Request::new(());
    *req.method_mut() = http::Method::from_bytes(method).unwrap_or_default();
    *req.uri_mut() = http::Uri::try_from(uri).unwrap_or_default();
    if let Some(host) = host.and_then(|h| http::HeaderValue::from_bytes(h).ok()) {
        req.headers_mut().insert(http::header::HOST, host);
    }
    req
}
