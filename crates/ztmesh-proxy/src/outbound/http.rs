//! Stage (outbound HTTP): serve the application's HTTP connection and route
//! each request on its own.
//!
//! Per request: find the target (the original destination in transparent
//! mode, the absolute URI's authority in explicit mode), resolve its
//! endpoints, pick one by [`balance`](super::balance), and send the request
//! on that endpoint's shared connection from the [`pool`](super::pool):
//! HTTP/1 requests to an endpoint whose hint says h2 travel as HTTP/2 with
//! `l5d-orig-proto` ([`crate::orig_proto`]), upgrades (WebSocket) get an
//! HTTP/1.1 connection of their own ([`crate::http_upgrade`]). Requests are
//! counted with the endpoint's verified identity (`server_id`). Failures
//! answer 502 / 503 / 504 with `l5d-proxy-error` naming the cause.

use super::balance::Balancer;
use super::connect::{ConnectError, tls_label};
use super::discover::{Discover, DiscoverError, Endpoint, Resolution};
use super::pool::Pool;
use crate::inbound::http::{Body, proxy_error};
use crate::metrics::{HttpMetrics, StatsCache};
use crate::route_metrics::{RouteEvent, RouteMetrics};
use crate::{http_upgrade, orig_proto};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Time allowed for a request head from its first byte (an idle
/// kept-alive connection is never closed: [`crate::head_timeout`]).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The outbound HTTP router, shared by all outbound connections.
pub struct HttpOutbound {
    pub discover: Discover,
    pub balancer: Balancer,
    pub pool: Pool,
    pub metrics: Arc<HttpMetrics>,
    pub route_metrics: Arc<RouteMetrics>,
    /// OutboundPolicies (HTTPRoutes, weighted backends, failure accrual);
    /// None without a policy service.
    pub policies: Option<Arc<super::policy::Policies>>,
    pub accrual: super::accrual::Accrual,
    /// Client spans for traced requests (with a collector configured).
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    /// Live observers of this proxy's requests.
    pub taps: Arc<crate::tap::Taps>,
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
    pub async fn serve<I>(
        self: Arc<Self>,
        io: I,
        http2: bool,
        dst: Dst,
        drain: crate::drain::Watch,
    ) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let cache = Arc::new(StatsCache::default());
        let clock = (!http2).then(crate::head_timeout::HeadClock::default);
        let service_clock = clock.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (this, cache, clock) = (self.clone(), cache.clone(), service_clock.clone());
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

    /// Routes one request; never fails (errors become proxy responses).
    pub async fn route(
        &self,
        req: Request<Incoming>,
        dst: Dst,
        cache: &StatsCache,
    ) -> Response<Body> {
        let target = match dst {
            Dst::OrigDst(addr) => addr.to_string(),
            Dst::AbsoluteUri => match absolute_authority(req.uri()) {
                Some(a) => a,
                None => {
                    return proxy_error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{} is not absolute-form; this is an HTTP proxy: send http://host:port/path or CONNECT host:port",
                            req.uri()
                        ),
                    );
                }
            },
        };
        let mut resolution = match self.discover.endpoints(&target).await {
            Ok(r) => r,
            Err(e) => return proxy_error(discovery_status(&e), e.to_string()),
        };
        if let (Dst::AbsoluteUri, Some(addr)) = (dst, resolution.loopback_outside_mesh()) {
            return proxy_error(StatusCode::FORBIDDEN, loopback_refused(addr));
        }
        let policy = match &self.policies {
            Some(p) => p.get(&target).await,
            None => None,
        };
        resolution.accrual = policy.as_ref().and_then(|p| p.accrual);
        let authority = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(String::from)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| target.clone());
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = match format!("http://{authority}{path}").parse() {
            Ok(uri) => uri,
            Err(e) => {
                return proxy_error(
                    StatusCode::BAD_REQUEST,
                    format!("the request's authority {authority:?} is not valid: {e}"),
                );
            }
        };
        let mut req = Request::from_parts(parts, body.boxed());
        let span = self
            .tracer
            .as_ref()
            .and_then(|t| t.start(&mut req, crate::trace::Kind::Client));
        let rsp = self
            .dispatch(req, &resolution, policy.as_deref(), &authority, cache)
            .await;
        if let Some(span) = span {
            span.finish(rsp.status().as_u16());
        }
        rsp
    }

    /// The request with its route's policy: a ServiceProfile route, an
    /// HTTPRoute rule, or neither.
    async fn dispatch(
        &self,
        req: Request<Body>,
        resolution: &Resolution,
        policy: Option<&super::policy::OutboundPolicy>,
        authority: &str,
        cache: &StatsCache,
    ) -> Response<Body> {
        // A ServiceProfile route brings its timeout and retries.
        match resolution
            .profile
            .as_deref()
            .and_then(|p| p.route(&req).map(|r| (p, r)))
        {
            Some((profile, route)) if route.timeout.is_some() || route.retryable => {
                let call = super::route_policy::RouteCall {
                    out: self,
                    resolution,
                    profile,
                    route,
                    authority,
                    cache,
                };
                super::route_policy::send(call, req).await
            }
            Some((_, route)) => {
                let name = route.name.clone();
                self.route_metrics
                    .record(RouteEvent::Request, authority, &name);
                let rsp = self.attempt(resolution, req, authority, cache).await;
                let status = rsp.status().as_u16();
                self.route_metrics
                    .response(authority, &name, status, route.is_failure(status));
                rsp
            }
            None => match policy.and_then(|p| p.rule(&req)) {
                // An HTTPRoute: its backends and timeout.
                Some((name, rule)) => {
                    let call = super::route_policy::RuleCall {
                        out: self,
                        target: resolution,
                        route: name,
                        rule,
                        authority,
                        cache,
                    };
                    super::route_policy::send_rule(call, req).await
                }
                None => self.attempt(resolution, req, authority, cache).await,
            },
        }
    }

    /// One try: an endpoint picked by the balancer, the request sent on its
    /// shared connection, counted with the endpoint's identity.
    pub async fn attempt(
        &self,
        resolution: &Resolution,
        mut req: Request<Body>,
        authority: &str,
        cache: &StatsCache,
    ) -> Response<Body> {
        let started = tokio::time::Instant::now();
        // Failure accrual: endpoints serving a penalty are left out.
        let available: Vec<Endpoint>;
        let endpoints: &[Endpoint] = match &resolution.accrual {
            None => &resolution.endpoints,
            Some(_) => {
                available = resolution
                    .endpoints
                    .iter()
                    .filter(|e| self.accrual.available(e.addr))
                    .cloned()
                    .collect();
                if available.is_empty() {
                    return proxy_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "every endpoint of {authority} is failing and out of the balancer (failure accrual)"
                        ),
                    );
                }
                &available
            }
        };
        let (endpoint, load) = self
            .balancer
            .pick(endpoints, |e| e.addr, |n| fastrand::usize(..n));
        let endpoint = endpoint.clone();
        let counters = cache.get(
            &self.metrics,
            "outbound",
            authority,
            endpoint.addr,
            &tls_label(&endpoint),
            &crate::metrics::PolicyLabels::NONE,
        );
        counters.request();
        let server_id = endpoint
            .tls
            .as_ref()
            .map(|(id, _)| id.as_str())
            .unwrap_or("");
        let tapped = self
            .taps
            .request(false, &req, None, endpoint.addr, ("", server_id));
        let upgrade = http_upgrade::client_side(&mut req);
        let orig_version = req.version();
        let clients = self.pool.clients(&endpoint);
        let client = if upgrade.is_some() {
            &clients.http1
        } else if orig_version == Version::HTTP_2 {
            &clients.http2
        } else if endpoint.http2 {
            orig_proto::upgrade_request(&mut req, false);
            &clients.http2
        } else {
            &clients.http1
        };
        let in_flight = load.start();
        let result = client.request(req).await;
        in_flight.finish();
        let rsp = match result {
            Ok(mut rsp) => {
                if orig_version != Version::HTTP_2 {
                    orig_proto::restore_response(&mut rsp, orig_version);
                }
                let peer =
                    super::peer_errors::strip(&mut rsp, orig_version, endpoint.tls.is_some());
                if let Some(error) = &peer.error {
                    tracing::info!(endpoint = %endpoint.addr, status = rsp.status().as_u16(), %error, "remote proxy error");
                }
                if peer.close {
                    tracing::debug!(endpoint = %endpoint.addr, "the peer proxy asked to close the connection");
                }
                if let Some(upgrade) = upgrade {
                    http_upgrade::bridge(upgrade, &mut rsp);
                }
                rsp.map(|b| b.boxed())
            }
            Err(error) => {
                let status = if caused_by_timeout(&error) {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                proxy_error(
                    status,
                    format!(
                        "the request to {} failed: {}",
                        endpoint.addr,
                        error_chain(&error)
                    ),
                )
            }
        };
        if let Some(t) = tapped {
            t.response(rsp.status().as_u16());
        }
        let rsp = crate::grpc_status::count(counters, rsp, started.elapsed());
        if let Some(config) = &resolution.accrual
            && let Some(penalty) = self.accrual.record(
                endpoint.addr,
                rsp.status().is_server_error(),
                config,
                fastrand::f64(),
            )
        {
            tracing::info!(endpoint = %endpoint.addr, %authority, ?penalty, "endpoint failed {} times in a row: out of the balancer", config.max_failures);
        }
        rsp
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

/// Why explicit mode's proxy does not relay to a loopback address.
pub fn loopback_refused(addr: SocketAddr) -> String {
    format!(
        "{addr} is a loopback address outside the mesh; the outbound proxy does not relay to this host's local services"
    )
}

pub fn discovery_status(e: &DiscoverError) -> StatusCode {
    match e {
        DiscoverError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        DiscoverError::NoEndpoints(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// An error and its causes, as one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
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
