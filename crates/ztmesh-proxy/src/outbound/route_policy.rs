//! Stage (outbound HTTP): a ServiceProfile route's timeout and retries.
//!
//! - "A request that exceeds its route's timeout gets 504 with
//!   `l5d-proxy-error`; the request upstream is cancelled" (the attempt's
//!   future is dropped). The timeout covers every attempt and backoff.
//! - "Only retryable routes retry, only requests whose body fits 64 KiB
//!   (buffered to be replayed), on connection failures and on responses the
//!   route classes as failures (5xx by default), while the profile's retry
//!   budget allows", with jittered exponential backoff between attempts and
//!   at most [`MAX_ATTEMPTS`] in all.

use super::discover::Resolution;
use super::http::HttpOutbound;
use super::profile::{Profile, ProfileRoute};
use super::retry::backoff;
use crate::inbound::http::{Body, proxy_error};
use crate::metrics::StatsCache;
use crate::route_metrics::RouteEvent;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;

/// Largest request body buffered so it can be sent again.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;
/// A request is tried at most this many times, whatever the budget.
pub const MAX_ATTEMPTS: u32 = 10;

/// One request on a profile route, and what sending it needs.
pub struct RouteCall<'a> {
    pub out: &'a HttpOutbound,
    pub resolution: &'a Resolution,
    pub profile: &'a Profile,
    pub route: &'a ProfileRoute,
    pub authority: &'a str,
    pub cache: &'a StatsCache,
}

pub async fn send(call: RouteCall<'_>, req: Request<Body>) -> Response<Body> {
    let RouteCall {
        out,
        profile,
        route,
        authority,
        ..
    } = call;
    let metrics = &out.route_metrics;
    metrics.record(RouteEvent::Request, authority, &route.name);
    if let Some(budget) = &profile.budget {
        budget.deposit();
    }
    let tries = tries(&call, req);
    let rsp = match route.timeout {
        None => tries.await,
        Some(limit) => match tokio::time::timeout(limit, tries).await {
            Ok(rsp) => rsp,
            Err(_) => {
                metrics.record(RouteEvent::Timeout, authority, &route.name);
                proxy_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the request to {authority} timed out after {limit:?} (route {:?})",
                        route.name
                    ),
                )
            }
        },
    };
    let status = rsp.status().as_u16();
    metrics.response(authority, &route.name, status, route.is_failure(status));
    rsp
}

async fn tries(call: &RouteCall<'_>, req: Request<Body>) -> Response<Body> {
    let RouteCall {
        out,
        resolution,
        profile,
        route,
        authority,
        cache,
    } = *call;
    let replayable = route.retryable
        && req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n <= MAX_REPLAY_BODY);
    if !replayable {
        return out.attempt(resolution, req, authority, cache).await;
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            );
        }
    };
    let copy = |body: Bytes| {
        let mut b = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version);
        if let Some(h) = b.headers_mut() {
            *h = parts.headers.clone();
        }
        b.body(Full::new(body).map_err(|never| match never {}).boxed())
            .expect("a request rebuilt from a valid one")
    };
    let mut attempt = 1;
    loop {
        let rsp = out
            .attempt(resolution, copy(body.clone()), authority, cache)
            .await;
        if !route.is_failure(rsp.status().as_u16()) || attempt >= MAX_ATTEMPTS {
            return rsp;
        }
        let allowed = profile.budget.as_ref().is_none_or(|b| b.try_withdraw());
        if !allowed {
            out.route_metrics
                .record(RouteEvent::BudgetExhausted, authority, &route.name);
            return rsp;
        }
        out.route_metrics
            .record(RouteEvent::Retry, authority, &route.name);
        tokio::time::sleep(backoff(attempt, fastrand::f64())).await;
        attempt += 1;
    }
}
