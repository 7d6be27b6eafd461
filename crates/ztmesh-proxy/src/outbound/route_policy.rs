//! Stage (outbound HTTP): a ServiceProfile route's timeout and retries, or
//! an HTTPRoute rule's weighted backends and timeout.
//!
//! - "A request that exceeds its route's timeout gets 504 with
//!   `l5d-proxy-error`; the request upstream is cancelled" (the attempt's
//!   future is dropped). The timeout covers every attempt and backoff.
//! - "Only retryable routes retry, only requests whose body fits 64 KiB
//!   (buffered to be replayed), on connection failures and on responses the
//!   route classes as failures (5xx by default), while the profile's retry
//!   budget allows", with jittered exponential backoff between attempts and
//!   at most [`MAX_ATTEMPTS`] in all.
//! - HTTPRoute rules retry as their `retry.linkerd.io/*` annotations say
//!   (a limit, statuses, a per-try timeout; no budget) and are bounded by
//!   `timeouts.request` / `timeout.linkerd.io/request`.

use super::discover::Resolution;
use super::http::HttpOutbound;
use super::http::discovery_status;
use super::policy::{PolicyRule, pick_backend};
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
    let rsp = within(route.timeout, tries, out, authority, &route.name).await;
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
    if !route.retryable {
        return out.attempt(resolution, req, authority, cache).await;
    }
    let plan = RetryPlan {
        max_attempts: MAX_ATTEMPTS,
        per_try: None,
        retry_on: &|rsp: &Response<Body>| route.is_failure(rsp.status().as_u16()),
        budget: profile.budget.as_deref(),
        route: &route.name,
    };
    retry(out, resolution, req, authority, cache, plan).await
}

/// How a route retries.
struct RetryPlan<'a> {
    max_attempts: u32,
    /// Each try's own timeout (504 counts as a failure to retry).
    per_try: Option<std::time::Duration>,
    retry_on: &'a (dyn Fn(&Response<Body>) -> bool + Sync),
    /// None: bounded by `max_attempts` alone.
    budget: Option<&'a super::retry::RetryBudget>,
    route: &'a str,
}

/// Sends `req` until it succeeds, the plan's attempts run out, or the
/// budget refuses, backing off between tries; a body too large to replay
/// is sent once.
async fn retry(
    out: &HttpOutbound,
    resolution: &Resolution,
    req: Request<Body>,
    authority: &str,
    cache: &StatsCache,
    plan: RetryPlan<'_>,
) -> Response<Body> {
    let replayable = req
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
        let once = out.attempt(resolution, copy(body.clone()), authority, cache);
        let rsp = within(plan.per_try, once, out, authority, plan.route).await;
        if !(plan.retry_on)(&rsp) || attempt >= plan.max_attempts {
            return rsp;
        }
        if plan.budget.is_some_and(|b| !b.try_withdraw()) {
            out.route_metrics
                .record(RouteEvent::BudgetExhausted, authority, plan.route);
            return rsp;
        }
        out.route_metrics
            .record(RouteEvent::Retry, authority, plan.route);
        tokio::time::sleep(backoff(attempt, fastrand::f64())).await;
        attempt += 1;
    }
}

/// One request on an HTTPRoute rule, and what sending it needs.
pub struct RuleCall<'a> {
    pub out: &'a HttpOutbound,
    /// The target's own resolution (used when the rule names no backend).
    pub target: &'a Resolution,
    pub route: &'a str,
    pub rule: &'a PolicyRule,
    pub authority: &'a str,
    pub cache: &'a StatsCache,
}

/// "An HTTPRoute rule sends to its backends in proportion to their
/// weights; `timeouts.request` bounds the whole request (504)."
pub async fn send_rule(call: RuleCall<'_>, req: Request<Body>) -> Response<Body> {
    let RuleCall {
        out,
        target,
        route,
        rule,
        authority,
        cache,
    } = call;
    let metrics = &out.route_metrics;
    metrics.record(RouteEvent::Request, authority, route);
    let backend;
    let resolution = match pick_backend(&rule.backends, |n| fastrand::u64(..n)) {
        None => target,
        Some(name) => match out.discover.endpoints(name).await {
            Ok(mut r) => {
                r.accrual = target.accrual;
                backend = r;
                &backend
            }
            Err(e) => return proxy_error(discovery_status(&e), e.to_string()),
        },
    };
    let send = async {
        match &rule.retry {
            None => out.attempt(resolution, req, authority, cache).await,
            Some(r) => {
                // "Retry annotations have no budget: the limit bounds them."
                let plan = RetryPlan {
                    max_attempts: 1 + r.limit,
                    per_try: r.timeout,
                    retry_on: &|rsp: &Response<Body>| {
                        let s = rsp.status().as_u16();
                        r.statuses.iter().any(|(a, b)| (*a..=*b).contains(&s))
                            || rsp.headers().contains_key("l5d-proxy-error")
                    },
                    budget: None,
                    route,
                };
                retry(out, resolution, req, authority, cache, plan).await
            }
        }
    };
    let rsp = within(rule.timeout, send, out, authority, route).await;
    let status = rsp.status().as_u16();
    metrics.response(authority, route, status, status >= 500);
    rsp
}

/// The route's timeout around a request: 504 with `l5d-proxy-error` when
/// it expires (the request's future is dropped, cancelling it upstream).
async fn within(
    limit: Option<std::time::Duration>,
    request: impl Future<Output = Response<Body>>,
    out: &HttpOutbound,
    authority: &str,
    route: &str,
) -> Response<Body> {
    let Some(limit) = limit else {
        return request.await;
    };
    match tokio::time::timeout(limit, request).await {
        Ok(rsp) => rsp,
        Err(_) => {
            out.route_metrics
                .record(RouteEvent::Timeout, authority, route);
            proxy_error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the request to {authority} timed out after {limit:?} (route {route:?})"),
            )
        }
    }
}
