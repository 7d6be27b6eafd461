//! Stage (outbound HTTP): a request's route, and the route's policy: a
//! ServiceProfile route's timeout and retries, or an HTTPRoute rule's
//! weighted backends and timeout, or neither; each try is sent by
//! [`Forward`]. Failures are returned to the HTTP stage, which answers
//! them ([`super::error::rescue`]).
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
use super::discovery::Discovery;
use super::error::Failure;
use super::forward::{Forward, status_of};
use super::policy::{OutboundPolicy, PolicyRule, pick_backend};
use super::profile::{Profile, ProfileRoute};
use super::retry::backoff;
use crate::metrics::StatsCache;
use crate::proxy_http::Body;
use crate::route_metrics::{RouteEvent, RouteMetrics};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use std::sync::Arc;

/// Largest request body buffered so it can be sent again.
pub(crate) const MAX_REPLAY_BODY: u64 = 64 * 1024;
/// A request is tried at most this many times, whatever the budget.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

type Answer = Result<Response<Body>, Failure>;

/// Routes requests to their route's policy; shared by all outbound
/// connections.
pub(crate) struct Router {
    pub(crate) forward: Forward,
    /// Resolves an HTTPRoute rule's backends.
    pub(crate) discovery: Arc<dyn Discovery>,
    pub(crate) route_metrics: Arc<RouteMetrics>,
}

/// One request and what routing it needs.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) resolution: &'a Resolution,
    pub(crate) policy: Option<&'a OutboundPolicy>,
    pub(crate) authority: &'a str,
    pub(crate) cache: &'a StatsCache,
}

impl Router {
    /// The request with its route's policy: a ServiceProfile route, an
    /// HTTPRoute rule, or neither.
    pub(crate) async fn dispatch(&self, call: Call<'_>, req: Request<Body>) -> Answer {
        let Call {
            resolution,
            policy,
            authority,
            cache,
        } = call;
        // A ServiceProfile route brings its timeout and retries.
        match resolution
            .profile
            .as_deref()
            .and_then(|p| p.route(&req).map(|r| (p, r)))
        {
            Some((profile, route)) if route.timeout.is_some() || route.retryable => {
                self.send_profile(&call, profile, route, req).await
            }
            Some((_, route)) => {
                let name = &route.name;
                self.route_metrics
                    .record(RouteEvent::Request, authority, name);
                let answer = self
                    .forward
                    .attempt(resolution, req, authority, cache)
                    .await;
                let status = status_of(&answer);
                self.route_metrics
                    .response(authority, name, status, route.is_failure(status));
                answer
            }
            None => match policy.and_then(|p| p.rule(&req)) {
                // An HTTPRoute: its backends and timeout.
                Some((name, rule)) => self.send_rule(&call, name, rule, req).await,
                None => {
                    self.forward
                        .attempt(resolution, req, authority, cache)
                        .await
                }
            },
        }
    }

    async fn send_profile(
        &self,
        call: &Call<'_>,
        profile: &Profile,
        route: &ProfileRoute,
        req: Request<Body>,
    ) -> Answer {
        let metrics = &self.route_metrics;
        metrics.record(RouteEvent::Request, call.authority, &route.name);
        if let Some(budget) = &profile.budget {
            budget.deposit();
        }
        let tries = async {
            if !route.retryable {
                return self
                    .forward
                    .attempt(call.resolution, req, call.authority, call.cache)
                    .await;
            }
            let plan = RetryPlan {
                max_attempts: MAX_ATTEMPTS,
                per_try: None,
                retry_on: &|answer: &Answer| route.is_failure(status_of(answer)),
                budget: profile.budget.as_deref(),
                route: &route.name,
            };
            self.retry(call, call.resolution, req, plan).await
        };
        let answer = self
            .within(route.timeout, tries, call.authority, &route.name)
            .await;
        let status = status_of(&answer);
        metrics.response(
            call.authority,
            &route.name,
            status,
            route.is_failure(status),
        );
        answer
    }

    /// "An HTTPRoute rule sends to its backends in proportion to their
    /// weights; `timeouts.request` bounds the whole request (504)."
    async fn send_rule(
        &self,
        call: &Call<'_>,
        route: &str,
        rule: &PolicyRule,
        req: Request<Body>,
    ) -> Answer {
        let authority = call.authority;
        let metrics = &self.route_metrics;
        metrics.record(RouteEvent::Request, authority, route);
        let backend;
        let resolution = match pick_backend(&rule.backends, |n| fastrand::u64(..n)) {
            None => call.resolution,
            Some(name) => {
                let mut r = self.discovery.resolve(name).await?;
                r.accrual = call.resolution.accrual;
                backend = r;
                &backend
            }
        };
        let send = async {
            match &rule.retry {
                None => {
                    self.forward
                        .attempt(resolution, req, authority, call.cache)
                        .await
                }
                Some(r) => {
                    // "Retry annotations have no budget: the limit bounds them."
                    let plan = RetryPlan {
                        max_attempts: 1 + r.limit,
                        per_try: r.timeout,
                        retry_on: &|answer: &Answer| match answer {
                            // A failure of this proxy's (l5d-proxy-error).
                            Err(_) => true,
                            Ok(rsp) => {
                                let s = rsp.status().as_u16();
                                r.statuses.iter().any(|(a, b)| (*a..=*b).contains(&s))
                                    || rsp.headers().contains_key(super::error::L5D_PROXY_ERROR)
                            }
                        },
                        budget: None,
                        route,
                    };
                    self.retry(call, resolution, req, plan).await
                }
            }
        };
        let answer = self.within(rule.timeout, send, authority, route).await;
        let status = status_of(&answer);
        metrics.response(authority, route, status, status >= 500);
        answer
    }

    /// Sends `req` until it succeeds, the plan's attempts run out, or the
    /// budget refuses, backing off between tries; a body too large to replay
    /// is sent once.
    async fn retry(
        &self,
        call: &Call<'_>,
        resolution: &Resolution,
        req: Request<Body>,
        plan: RetryPlan<'_>,
    ) -> Answer {
        let (authority, cache) = (call.authority, call.cache);
        let replayable = req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n <= MAX_REPLAY_BODY);
        if !replayable {
            return self
                .forward
                .attempt(resolution, req, authority, cache)
                .await;
        }
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map_err(Failure::RequestBody)?
            .to_bytes();
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
            let once = self
                .forward
                .attempt(resolution, copy(body.clone()), authority, cache);
            let answer = self.within(plan.per_try, once, authority, plan.route).await;
            if !(plan.retry_on)(&answer) || attempt >= plan.max_attempts {
                return answer;
            }
            if plan.budget.is_some_and(|b| !b.try_withdraw()) {
                self.route_metrics
                    .record(RouteEvent::BudgetExhausted, authority, plan.route);
                return answer;
            }
            self.route_metrics
                .record(RouteEvent::Retry, authority, plan.route);
            tokio::time::sleep(backoff(attempt, fastrand::f64())).await;
            attempt += 1;
        }
    }

    /// The route's timeout around a request: a [`Failure::RouteTimeout`]
    /// when it expires (the request's future is dropped, cancelling it
    /// upstream).
    async fn within(
        &self,
        limit: Option<std::time::Duration>,
        request: impl Future<Output = Answer>,
        authority: &str,
        route: &str,
    ) -> Answer {
        let Some(limit) = limit else {
            return request.await;
        };
        match tokio::time::timeout(limit, request).await {
            Ok(answer) => answer,
            Err(_) => {
                self.route_metrics
                    .record(RouteEvent::Timeout, authority, route);
                Err(Failure::RouteTimeout {
                    authority: authority.into(),
                    limit,
                    route: route.into(),
                })
            }
        }
    }
}

/// How a route retries.
struct RetryPlan<'a> {
    max_attempts: u32,
    /// Each try's own timeout (504 counts as a failure to retry).
    per_try: Option<std::time::Duration>,
    retry_on: &'a (dyn Fn(&Answer) -> bool + Sync),
    /// None: bounded by `max_attempts` alone.
    budget: Option<&'a super::retry::RetryBudget>,
    route: &'a str,
}
