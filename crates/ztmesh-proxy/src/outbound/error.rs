//! The outbound error edge: every way an outbound request can fail here
//! ([`Failure`]), and the one place ([`rescue`]) where a failure becomes
//! what the application sees.
//!
//! - 400: the request cannot be proxied as it is (not absolute-form in
//!   explicit mode, CONNECT without `host:port`, an invalid authority, a
//!   body that could not be read for a retry);
//! - 403: explicit mode does not relay to loopback addresses outside the
//!   mesh;
//! - 502: discovery refused, the endpoint could not be reached or the
//!   request to it failed;
//! - 503: no endpoint to send to (none known, or all of them out of the
//!   balancer by failure accrual);
//! - 504: discovery, the connection or the route's timeout ran out.
//!
//! Every answer names its cause in `l5d-proxy-error`. gRPC callers get, as
//! linkerd2-proxy answers them, HTTP 200 with the status in `grpc-status`
//! (and the reason in `grpc-message`): a gRPC client reads those, not the
//! HTTP status. A refused CONNECT also closes the application's
//! connection, which wanted a tunnel. A peer proxy's own errors are not
//! failures here: its response travels on, its headers stripped
//! ([`super::peer_errors`]).

use super::connect::ConnectError;
use super::discover::DiscoverError;
use crate::proxy_http::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) const L5D_PROXY_ERROR: &str = "l5d-proxy-error";

/// Why an outbound request got no answer from its target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(
        "{uri} is not absolute-form; this is an HTTP proxy: send http://host:port/path or CONNECT host:port"
    )]
    NotAbsoluteForm { uri: String },
    #[error("CONNECT needs host:port, not {uri:?}")]
    ConnectWithoutAuthority { uri: String },
    #[error("the request's authority {authority:?} is not valid: {error}")]
    InvalidAuthority {
        authority: String,
        error: http::uri::InvalidUri,
    },
    #[error("reading the request body: {0}")]
    RequestBody(hyper::Error),
    #[error(
        "{0} is a loopback address outside the mesh; the outbound proxy does not relay to this host's local services"
    )]
    LoopbackOutsideMesh(SocketAddr),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("every endpoint of {authority} is failing and out of the balancer (failure accrual)")]
    AllEndpointsFailing { authority: String },
    /// A tunnel's connection to the endpoint (CONNECT, opaque TCP).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A request on an endpoint's pooled connection (its connection
    /// failures included).
    #[error("the request to {addr} failed: {}", error_chain(.error))]
    Request {
        addr: SocketAddr,
        error: hyper_util::client::legacy::Error,
    },
    #[error("the request to {authority} timed out after {limit:?} (route {route:?})")]
    RouteTimeout {
        authority: String,
        limit: Duration,
        route: String,
    },
}

impl Failure {
    /// The HTTP status the application gets (gRPC callers: in the mapping
    /// of [`Failure::grpc_code`]).
    pub(crate) fn http_status(&self) -> StatusCode {
        match self {
            Self::NotAbsoluteForm { .. }
            | Self::ConnectWithoutAuthority { .. }
            | Self::InvalidAuthority { .. }
            | Self::RequestBody(_) => StatusCode::BAD_REQUEST,
            Self::LoopbackOutsideMesh(_) => StatusCode::FORBIDDEN,
            Self::Discover(DiscoverError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Discover(DiscoverError::NoEndpoints(_)) | Self::AllEndpointsFailing { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Discover(_) => StatusCode::BAD_GATEWAY,
            Self::Connect(ConnectError::Timeout { .. }) | Self::RouteTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Connect(_) => StatusCode::BAD_GATEWAY,
            Self::Request { error, .. } if caused_by_connect_timeout(error) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Request { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The gRPC status a gRPC caller gets: its deadline, if the route's
    /// timeout ran out; unavailable for every failure to reach the target.
    pub(crate) fn grpc_code(&self) -> tonic::Code {
        match self.http_status() {
            StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            _ if matches!(self, Self::RouteTimeout { .. }) => tonic::Code::DeadlineExceeded,
            _ => tonic::Code::Unavailable,
        }
    }
}

/// Who is waiting for the answer, which decides its form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    Http,
    /// A gRPC request (`content-type: application/grpc...`).
    Grpc,
    /// An explicit-mode CONNECT: the connection is closed after the answer.
    Connect,
}

impl Caller {
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc { Self::Grpc } else { Self::Http }
    }
}

/// The one place an outbound failure becomes a response.
pub(crate) fn rescue(failure: &Failure, caller: Caller) -> Response<Body> {
    let reason = failure.to_string();
    let header = HeaderValue::from_str(&reason.replace(['\r', '\n'], " "))
        .unwrap_or_else(|_| HeaderValue::from_static("outbound proxy error"));
    let mut rsp = match caller {
        Caller::Grpc => {
            let mut rsp = Response::new(body(Bytes::new()));
            let headers = rsp.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(failure.grpc_code() as i32));
            if let Ok(v) = HeaderValue::from_str(&grpc_message(&reason)) {
                headers.insert("grpc-message", v);
            }
            rsp
        }
        Caller::Http | Caller::Connect => {
            let mut rsp = Response::new(body(Bytes::from(format!("{reason}\n"))));
            *rsp.status_mut() = failure.http_status();
            rsp
        }
    };
    rsp.headers_mut().insert(L5D_PROXY_ERROR, header);
    if caller == Caller::Connect {
        rsp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    rsp
}

fn body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// gRPC's percent-encoding of `grpc-message`.
fn grpc_message(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for b in reason.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error and its causes, as one line.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

fn caused_by_connect_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(ConnectError::Timeout { .. }) = c.downcast_ref::<ConnectError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "10.0.0.1:80".parse().unwrap()
    }

    #[test]
    fn failures_map_to_statuses_table() {
        use tonic::Code;
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cases: Vec<(Failure, u16, Code, &str)> = vec![
            (
                Failure::NotAbsoluteForm { uri: "/x".into() },
                400,
                Code::InvalidArgument,
                "/x is not absolute-form",
            ),
            (
                Failure::ConnectWithoutAuthority { uri: "/".into() },
                400,
                Code::InvalidArgument,
                "CONNECT needs host:port",
            ),
            (
                Failure::InvalidAuthority {
                    authority: "a b".into(),
                    error: "http://a b/".parse::<http::Uri>().unwrap_err(),
                },
                400,
                Code::InvalidArgument,
                "the request's authority \"a b\" is not valid",
            ),
            (
                Failure::LoopbackOutsideMesh("127.0.0.1:9990".parse().unwrap()),
                403,
                Code::PermissionDenied,
                "127.0.0.1:9990 is a loopback address outside the mesh",
            ),
            (
                Failure::Discover(DiscoverError::Timeout),
                504,
                Code::Unavailable,
                "did not answer within",
            ),
            (
                Failure::Discover(DiscoverError::NoEndpoints("a:80".into())),
                503,
                Code::Unavailable,
                "a:80 has no endpoints",
            ),
            (
                Failure::Discover(DiscoverError::Rpc(Code::Internal, "boom".into())),
                502,
                Code::Unavailable,
                "the destination service refused",
            ),
            (
                Failure::Discover(DiscoverError::Dns("nowhere:80".into(), io())),
                502,
                Code::Unavailable,
                "resolving nowhere:80",
            ),
            (
                Failure::AllEndpointsFailing {
                    authority: "a:80".into(),
                },
                503,
                Code::Unavailable,
                "failure accrual",
            ),
            (
                Failure::Connect(ConnectError::Timeout { addr: addr() }),
                504,
                Code::Unavailable,
                "10.0.0.1:80 did not accept",
            ),
            (
                Failure::Connect(ConnectError::Tcp {
                    addr: addr(),
                    error: io(),
                }),
                502,
                Code::Unavailable,
                "connecting to 10.0.0.1:80",
            ),
            (
                Failure::Connect(ConnectError::Tls {
                    addr: addr(),
                    identity: "b.ns.serviceaccount.identity.linkerd.cluster.local".into(),
                    error: io(),
                }),
                502,
                Code::Unavailable,
                "mTLS to 10.0.0.1:80 as b.ns",
            ),
            (
                Failure::RouteTimeout {
                    authority: "a:80".into(),
                    limit: Duration::from_secs(5),
                    route: "GET /".into(),
                },
                504,
                Code::DeadlineExceeded,
                "the request to a:80 timed out after 5s (route \"GET /\")",
            ),
        ];
        for (failure, status, grpc, reason) in cases {
            assert_eq!(failure.http_status(), status, "{failure}");
            assert_eq!(failure.grpc_code(), grpc, "{failure}");

            let rsp = rescue(&failure, Caller::Http);
            assert_eq!(rsp.status(), status, "{failure}");
            let header = rsp.headers()[L5D_PROXY_ERROR].to_str().unwrap();
            assert!(header.contains(reason), "{header}");
            assert!(rsp.headers().get("grpc-status").is_none());
            assert!(rsp.headers().get(http::header::CONNECTION).is_none());

            let rsp = rescue(&failure, Caller::Grpc);
            assert_eq!(rsp.status(), 200, "{failure}");
            assert_eq!(rsp.headers()["grpc-status"], (grpc as i32).to_string());
            assert_eq!(rsp.headers()["content-type"], "application/grpc");
            assert!(
                rsp.headers()[L5D_PROXY_ERROR]
                    .to_str()
                    .unwrap()
                    .contains(reason)
            );

            let rsp = rescue(&failure, Caller::Connect);
            assert_eq!(rsp.status(), status, "{failure}");
            assert_eq!(rsp.headers()[http::header::CONNECTION], "close");
        }
    }

    #[tokio::test]
    async fn a_rescued_body_carries_the_reason() {
        let failure = Failure::Discover(DiscoverError::NoEndpoints("a:80".into()));
        let body = rescue(&failure, Caller::Http)
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"a:80 has no endpoints\n");
        let grpc = rescue(&failure, Caller::Grpc)
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert!(grpc.is_empty(), "a trailers-only gRPC answer");
    }

    #[test]
    fn callers_and_messages() {
        let req = |ct: Option<&str>| {
            let mut b = Request::builder();
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(()).unwrap()
        };
        assert_eq!(Caller::of(&req(None)), Caller::Http);
        assert_eq!(Caller::of(&req(Some("application/json"))), Caller::Http);
        assert_eq!(Caller::of(&req(Some("application/grpc"))), Caller::Grpc);
        assert_eq!(
            Caller::of(&req(Some("application/grpc+proto"))),
            Caller::Grpc
        );
        assert_eq!(grpc_message("50% off\né"), "50%25 off%0A%C3%A9");
    }
}
