//! Stage (outbound HTTP): a peer proxy's error headers stop here.
//!
//! The server's proxy names its reasons in `l5d-proxy-error` (and asks for
//! the connection to be closed with `l5d-proxy-connection: close`) for the
//! client's proxy, not for the application: they name peers' addresses.
//! As linkerd2-proxy's outbound does, both are removed from responses
//! before the application sees them (the reason is logged by the caller),
//! and a meshed peer's request to close turns into `Connection: close` on
//! an HTTP/1 connection to the application.

use http::{HeaderValue, Response, Version};

pub(crate) const L5D_PROXY_ERROR: &str = "l5d-proxy-error";
pub(crate) const L5D_PROXY_CONNECTION: &str = "l5d-proxy-connection";

/// What a peer's response said to this proxy.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerErrors {
    /// The peer's `l5d-proxy-error`, for the log.
    pub(crate) error: Option<String>,
    /// The peer asked to close, and is a meshed proxy whose word counts.
    pub(crate) close: bool,
}

/// Strips the peer's error headers; `meshed`: the endpoint is a proxy
/// that proved its identity (only its request to close is honoured).
pub(crate) fn strip<B>(rsp: &mut Response<B>, app_version: Version, meshed: bool) -> PeerErrors {
    let headers = rsp.headers_mut();
    let error = headers
        .remove(L5D_PROXY_ERROR)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let connection = headers.remove(L5D_PROXY_CONNECTION);
    let close = meshed && connection.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    if close && app_version < Version::HTTP_2 {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    PeerErrors { error, close }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_headers_table() {
        let no_route = "client 10.0.0.1:4: no route";
        let cases = [
            (vec![], Version::HTTP_11, true, None, false, None),
            (
                vec![(L5D_PROXY_ERROR, no_route)],
                Version::HTTP_11,
                true,
                Some(no_route),
                false,
                None,
            ),
            (
                vec![(L5D_PROXY_ERROR, "x"), (L5D_PROXY_CONNECTION, "close")],
                Version::HTTP_11,
                true,
                Some("x"),
                true,
                Some("close"),
            ),
            (
                vec![(L5D_PROXY_CONNECTION, "Close")],
                Version::HTTP_2,
                true,
                None,
                true,
                None,
            ),
            // An unmeshed server's word does not close the app's connection.
            (
                vec![(L5D_PROXY_CONNECTION, "close")],
                Version::HTTP_11,
                false,
                None,
                false,
                None,
            ),
        ];
        for (headers, version, meshed, want_error, want_close, want_connection) in cases {
            let mut b = Response::builder().header("x-app", "kept");
            for (k, v) in &headers {
                b = b.header(*k, *v);
            }
            let mut rsp = b.body(()).unwrap();
            let got = strip(&mut rsp, version, meshed);
            assert_eq!(got.error.as_deref(), want_error, "{headers:?}");
            assert_eq!(got.close, want_close, "{headers:?}");
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
