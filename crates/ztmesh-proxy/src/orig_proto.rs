//! HTTP/1 requests carried over HTTP/2 between proxies, as linkerd2-proxy
//! does: the client proxy sends an HTTP/1.x request as HTTP/2 with
//! `l5d-orig-proto: HTTP/1.1` (or `HTTP/1.0`, with `; absolute-form` when
//! the request target was absolute), so that many application connections
//! share one multiplexed connection per endpoint; the server proxy removes
//! the header and sends HTTP/1.x to the application, marking its response
//! the same way so the client proxy restores the original version.
//! `Transfer-Encoding` is dropped on the HTTP/2 leg, where it is illegal
//! (HTTP/2 frames the body itself).

use http::header::{HeaderValue, TRANSFER_ENCODING};
use http::{Request, Response, Version};

pub(crate) const L5D_ORIG_PROTO: &str = "l5d-orig-proto";

/// Marks the client proxy's request as upgraded; `absolute_form` when the
/// application sent an absolute URI.
pub(crate) fn upgrade_request<B>(req: &mut Request<B>, absolute_form: bool) {
    let value = match (req.version(), absolute_form) {
        (Version::HTTP_10, false) => "HTTP/1.0",
        (Version::HTTP_10, true) => "HTTP/1.0; absolute-form",
        (_, false) => "HTTP/1.1",
        (_, true) => "HTTP/1.1; absolute-form",
    };
    req.headers_mut()
        .insert(L5D_ORIG_PROTO, HeaderValue::from_static(value));
    req.headers_mut().remove(TRANSFER_ENCODING);
    *req.version_mut() = Version::HTTP_2;
}

/// The client proxy restores the response's original version (the
/// request's, when the server proxy did not say).
pub(crate) fn restore_response<B>(rsp: &mut Response<B>, orig: Version) {
    let version = match rsp.headers_mut().remove(L5D_ORIG_PROTO) {
        Some(v) if v == "HTTP/1.0" => Version::HTTP_10,
        Some(v) if v == "HTTP/1.1" => Version::HTTP_11,
        _ => orig,
    };
    *rsp.version_mut() = version;
}

/// What the server proxy found on an HTTP/2 request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Downgraded {
    pub(crate) version: Version,
    pub(crate) absolute_form: bool,
}

/// The server proxy: an HTTP/2 request carrying `l5d-orig-proto` goes to
/// the application as the HTTP/1.x request it was. Unknown values are
/// left as HTTP/2 (and logged), as linkerd2-proxy does.
pub(crate) fn downgrade_request<B>(req: &mut Request<B>) -> Option<Downgraded> {
    if req.version() != Version::HTTP_2 {
        return None;
    }
    let value = req.headers_mut().remove(L5D_ORIG_PROTO)?;
    let bytes = value.as_bytes();
    let version = if bytes.starts_with(b"HTTP/1.1") {
        Version::HTTP_11
    } else if bytes.starts_with(b"HTTP/1.0") {
        Version::HTTP_10
    } else {
        tracing::warn!(value = ?value, "unknown {L5D_ORIG_PROTO} value; sending HTTP/2");
        return None;
    };
    *req.version_mut() = version;
    Some(Downgraded {
        version,
        absolute_form: bytes.ends_with(b"; absolute-form"),
    })
}

/// The server proxy marks the application's HTTP/1.x response for the
/// HTTP/2 leg back.
pub(crate) fn mark_response<B>(rsp: &mut Response<B>) {
    let value = match rsp.version() {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        _ => return,
    };
    rsp.headers_mut()
        .insert(L5D_ORIG_PROTO, HeaderValue::from_static(value));
    rsp.headers_mut().remove(TRANSFER_ENCODING);
    *rsp.version_mut() = Version::HTTP_2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_table() {
        // (version, absolute-form, header on the wire)
        let cases = [
            (Version::HTTP_11, false, "HTTP/1.1"),
            (Version::HTTP_11, true, "HTTP/1.1; absolute-form"),
            (Version::HTTP_10, false, "HTTP/1.0"),
            (Version::HTTP_10, true, "HTTP/1.0; absolute-form"),
        ];
        for (version, absolute_form, wire) in cases {
            let mut req = Request::builder()
                .version(version)
                .header(TRANSFER_ENCODING, "chunked")
                .body(())
                .unwrap();
            upgrade_request(&mut req, absolute_form);
            assert_eq!(req.version(), Version::HTTP_2);
            assert_eq!(req.headers()[L5D_ORIG_PROTO], wire);
            assert!(req.headers().get(TRANSFER_ENCODING).is_none());
            let down = downgrade_request(&mut req).expect("downgraded");
            assert_eq!(
                down,
                Downgraded {
                    version,
                    absolute_form
                }
            );
            assert_eq!(req.version(), version);
            assert!(req.headers().get(L5D_ORIG_PROTO).is_none());

            let mut rsp = Response::builder().version(version).body(()).unwrap();
            mark_response(&mut rsp);
            assert_eq!(rsp.version(), Version::HTTP_2);
            restore_response(&mut rsp, Version::HTTP_11);
            assert_eq!(rsp.version(), version, "{wire}");
            assert!(rsp.headers().get(L5D_ORIG_PROTO).is_none());
        }
    }

    #[test]
    fn plain_http2_and_unknown_values_stay_http2() {
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        assert_eq!(downgrade_request(&mut req), None);
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .header(L5D_ORIG_PROTO, "SPDY/3")
            .body(())
            .unwrap();
        assert_eq!(downgrade_request(&mut req), None);
        assert_eq!(req.version(), Version::HTTP_2);
        // An HTTP/1.1 request never carries a meaningful header.
        let mut req = Request::builder()
            .version(Version::HTTP_11)
            .header(L5D_ORIG_PROTO, "HTTP/1.1")
            .body(())
            .unwrap();
        assert_eq!(downgrade_request(&mut req), None);
    }
}
