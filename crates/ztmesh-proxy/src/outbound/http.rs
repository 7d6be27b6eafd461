//! Stage (outbound HTTP): serve the application's HTTP connection and route
//! each request on its own.
//!
//! Per request: find the target (the original destination in transparent
//! mode, the absolute URI's authority in explicit mode), ask
//! [`Discovery`] for its endpoints and policy, and hand the request to the
//! [`Router`] (its route's timeout and retries; each try on an endpoint
//! picked by the balancer, over a shared connection). Failures come back
//! as a [`Failure`] and are answered here, in one place
//! ([`rescue`]): 400 / 403 / 502 / 503 / 504 with `l5d-proxy-error`
//! naming the cause (gRPC callers: `grpc-status`).

use super::discovery::Discovery;
use super::error::{Caller, Failure, rescue};
use super::route_policy::{Call, Router};
use crate::metrics::StatsCache;
use crate::proxy_http::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Time allowed for a request head from its first byte (an idle
/// kept-alive connection is never closed: [`crate::head_timeout`]).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The outbound HTTP router, shared by all outbound connections.
pub struct HttpOutbound {
    pub(crate) discovery: Arc<dyn Discovery>,
    pub(crate) router: Router,
    /// Client spans for traced requests (with a collector configured).
    pub(crate) tracer: Option<Arc<crate::trace::Tracer>>,
}

/// Where a connection's requests go.
#[derive(Clone, Copy, Debug)]
pub enum Dst {
    /// Transparent mode: the address the application connected to.
    OrigDst(SocketAddr),
    /// Explicit mode: each request's absolute URI names its target.
    AbsoluteUri,
}

impl HttpOutbound {
    /// Serves one application connection until it closes.
    pub(crate) async fn serve<I>(
        self: Arc<Self>,
        io: I,
        http2: bool,
        dst: Dst,
        client: Option<SocketAddr>,
        drain: crate::drain::Watch,
    ) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let cache = Arc::new(StatsCache::default());
        let clock = (!http2).then(crate::head_timeout::HeadClock::default);
        let service_clock = clock.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let (this, cache, clock) = (self.clone(), cache.clone(), service_clock.clone());
            // Only tap reads it: no allocation per request otherwise.
            if let Some(client) = client
                && this.router.forward.taps.is_active()
            {
                req.extensions_mut()
                    .insert(crate::proxy_http::ClientAddr(client));
            }
            async move {
                if let Some(c) = &clock {
                    c.request();
                }
                let rsp = this.route(req, dst, &cache).await;
                Ok::<_, std::convert::Infallible>(crate::head_timeout::respond(clock.as_ref(), rsp))
            }
        });
        // HTTP/2 bounds its own frames: only HTTP/1 heads are timed here.
        match clock {
            None => {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(io), service);
                crate::drain::serve(conn, drain, |c| c.graceful_shutdown()).await
            }
            Some(clock) => {
                crate::head_timeout::serve_http1(io, clock, HEAD_TIMEOUT, service, drain).await
            }
        }
    }

    /// Routes one request; never fails (failures become proxy responses,
    /// here and nowhere else).
    pub async fn route<B>(&self, req: Request<B>, dst: Dst, cache: &StatsCache) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + 'static,
    {
        let caller = Caller::of(&req);
        self.send(req.map(|b| b.boxed()), dst, cache)
            .await
            .unwrap_or_else(|failure| rescue(&failure, caller))
    }

    async fn send(
        &self,
        req: Request<Body>,
        dst: Dst,
        cache: &StatsCache,
    ) -> Result<Response<Body>, Failure> {
        let target = match dst {
            Dst::OrigDst(addr) => addr.to_string(),
            Dst::AbsoluteUri => {
                absolute_authority(req.uri()).ok_or_else(|| Failure::NotAbsoluteForm {
                    uri: req.uri().to_string(),
                })?
            }
        };
        let mut resolution = self.discovery.resolve(&target).await?;
        if let (Dst::AbsoluteUri, Some(addr)) = (dst, resolution.loopback_outside_mesh()) {
            return Err(Failure::LoopbackOutsideMesh(addr));
        }
        let policy = self.discovery.policy(&target).await;
        resolution.accrual = policy.as_ref().and_then(|p| p.accrual);
        let authority = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(String::from)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| target.clone());
        let (mut parts, body) = req.into_parts();
        // The server's proxy learns the logical name (its metrics' and
        // tap's authority), as linkerd2-proxy's `l5d-dst-canonical`.
        if let Some(logical) = resolution
            .logical
            .as_deref()
            .filter(|_| !resolution.outside_mesh)
            && let Ok(value) = http::HeaderValue::from_str(logical)
        {
            parts
                .headers
                .insert(crate::proxy_http::CANONICAL_DST, value);
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("http://{authority}{path}")
            .parse()
            .map_err(|error| Failure::InvalidAuthority {
                authority: authority.clone(),
                error,
            })?;
        let call = Call {
            resolution: &resolution,
            policy: policy.as_deref(),
            authority: &authority,
            cache,
        };
        let mut req = Request::from_parts(parts, body);
        let span = self
            .tracer
            .as_ref()
            .and_then(|t| t.start(&mut req, crate::trace::Kind::Client));
        let answer = self.router.dispatch(call, req).await;
        if let Some(span) = span {
            span.finish(super::forward::status_of(&answer));
        }
        answer
    }
}

/// `host:port` of an absolute-form URI (port 80 when absent).
fn absolute_authority(uri: &http::Uri) -> Option<String> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let a = uri.authority()?;
    Some(match a.port_u16() {
        Some(_) => a.to_string(),
        None => format!("{}:80", a.host()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_authorities() {
        let cases = [
            (
                "http://books.booksapp.svc.cluster.local:7000/x",
                Some("books.booksapp.svc.cluster.local:7000"),
            ),
            ("http://10.0.0.1/", Some("10.0.0.1:80")),
            ("/books", None),
            ("https://a:443/", None),
        ];
        for (uri, want) in cases {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(absolute_authority(&uri).as_deref(), want, "{uri}");
        }
    }
}
