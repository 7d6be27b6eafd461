//! Stage (outbound HTTP): a peer proxy's error headers stop here.
//!
//! The server's proxy names its reasons in `l5d-proxy-error` (and asks for
//! the connection to be closed with `l5d-proxy-connection: close`) for the
//! client's proxy, not for the application: they name peers' addresses.
//! As linkerd2-proxy's outbound does, both are removed from responses
//! before the application sees them, and a peer's request to close turns
//! into `Connection: close` on an HTTP/1 connection to the application.

use http::{HeaderValue, Response, Version};

pub const L5D_PROXY_ERROR: &str = "l5d-proxy-error";
pub const L5D_PROXY_CONNECTION: &str = "l5d-proxy-connection";

/// Strips the peer's error headers; true when the peer asked to close.
pub fn strip<B>(rsp: &mut Response<B>, app_version: Version) -> bool {
    let headers = rsp.headers_mut();
    headers.remove(L5D_PROXY_ERROR);
    let close = headers
        .remove(L5D_PROXY_CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    if close && app_version < Version::HTTP_2 {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_headers_table() {
        let cases = [
            (vec![], Version::HTTP_11, false, None),
            (
                vec![(L5D_PROXY_ERROR, "client 10.0.0.1:4: no route")],
                Version::HTTP_11,
                false,
                None,
            ),
            (
                vec![(L5D_PROXY_ERROR, "x"), (L5D_PROXY_CONNECTION, "close")],
                Version::HTTP_11,
                true,
                Some("close"),
            ),
            (
                vec![(L5D_PROXY_CONNECTION, "Close")],
                Version::HTTP_2,
                true,
                None,
            ),
        ];
        for (headers, version, want_close, want_connection) in cases {
            let mut b = Response::builder().header("x-app", "kept");
            for (k, v) in &headers {
                b = b.header(*k, *v);
            }
            let mut rsp = b.body(()).unwrap();
            assert_eq!(strip(&mut rsp, version), want_close, "{headers:?}");
            assert!(rsp.headers().get(L5D_PROXY_ERROR).is_none());
            assert!(rsp.headers().get(L5D_PROXY_CONNECTION).is_none());
            assert_eq!(
                rsp.headers()
                    .get(http::header::CONNECTION)
                    .map(|v| v.to_str().unwrap()),
                want_connection
            );
            assert_eq!(rsp.headers()["x-app"], "kept");
        }
    }
}
