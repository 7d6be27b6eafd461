//! A ServiceProfile route's timeout and retries, and an HTTPRoute rule's,
//! in process and on a paused clock: the real outbound router (built by
//! `OutboundBuilder`, over in-memory discovery) against a real (loopback)
//! backend whose answers the test chooses. Virtual time makes the
//! timeout's moment and the backoff exact.

mod outbound_support;

use outbound_support::{backend, backend_with, empty, outbound, resolution};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use ztmesh_proxy::metrics::StatsCache;
use ztmesh_proxy::outbound::http::Dst;
use ztmesh_proxy::outbound::policy::{OutboundPolicy, PolicyRoute, PolicyRule, RuleRetry};
use ztmesh_proxy::outbound::profile::Profile;
use ztmesh_proxy::outbound::{InMemoryDiscovery, Outbound};
use ztmesh_proxy::route_metrics::{RouteEvent, RouteMetrics};

/// The router over in-memory discovery; its route metrics.
struct Router {
    out: Outbound,
    discovery: Arc<InMemoryDiscovery>,
    route_metrics: Arc<RouteMetrics>,
}

fn router() -> Router {
    let discovery = Arc::new(InMemoryDiscovery::default());
    let route_metrics = Arc::new(RouteMetrics::default());
    Router {
        out: outbound(discovery.clone(), route_metrics.clone()),
        discovery,
        route_metrics,
    }
}

/// The seed's profile; the budget: `ratio`, `min_per_s` over 10s.
fn seed_profile(ratio: f32, min_per_s: u32) -> Profile {
    Profile::from_proto(&ztmesh_test_support::profiles::seed002(
        ratio,
        min_per_s,
        vec![],
    ))
}

/// Sends a request for DST (explicit mode's absolute form) through the
/// whole router: discovery, the route and its policy, the endpoint.
async fn send(
    r: &Router,
    method: http::Method,
    path: &str,
) -> http::Response<impl hyper::body::Body> {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{DST}{path}"))
        .body(empty())
        .unwrap();
    r.out
        .http()
        .route(req, Dst::AbsoluteUri, &StatsCache::default())
        .await
}

const DST: &str = "api-server.my-app.svc.cluster.local:8080";

#[tokio::test(start_paused = true)]
async fn the_timeout_fires_at_exactly_the_routes_timeout() {
    let (addr, hits) = backend(200, Duration::from_secs(60)).await;
    let out = router();
    out.discovery
        .set(DST, resolution(addr, Some(seed_profile(0.2, 10))));
    let started = Instant::now();
    let rsp = send(&out, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 504);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let reason = rsp.headers()["l5d-proxy-error"].to_str().unwrap();
    assert!(reason.contains("timed out after 5s"), "{reason}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        out.route_metrics
            .count(RouteEvent::Timeout, DST, "GET /api/users"),
        1
    );
    // POST /api/orders: 10s.
    let started = Instant::now();
    let rsp = send(&out, http::Method::POST, "/api/orders").await;
    assert_eq!(rsp.status(), 504);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_budget_and_back_off_within_bounds() {
    let (addr, hits) = backend(503, Duration::ZERO).await;
    let out = router();
    // No ratio, 1 retry per second over 10s: 10 retries in all.
    out.discovery
        .set(DST, resolution(addr, Some(seed_profile(0.0, 1))));
    let started = Instant::now();
    let rsp = send(&out, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 503, "the last failure reaches the client");
    // At most 10 attempts per request; 9 backoffs of at most 250ms each.
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert!(
        started.elapsed() <= Duration::from_millis(9 * 250),
        "{:?}",
        started.elapsed()
    );
    let rsp = send(&out, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 503);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        12,
        "one retry left in the budget"
    );
    let count = |e| out.route_metrics.count(e, DST, "GET /api/users");
    assert_eq!(count(RouteEvent::Request), 2);
    assert_eq!(count(RouteEvent::Retry), 10);
    assert_eq!(count(RouteEvent::BudgetExhausted), 1);
    // A route that is not retryable is sent once.
    let rsp = send(&out, http::Method::POST, "/api/orders").await;
    assert_eq!(rsp.status(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 13);
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_hides_the_failure() {
    // Fails once, then succeeds.
    let (addr, n) = backend_with(|n| (if n == 0 { 500 } else { 200 }, Duration::ZERO)).await;
    let out = router();
    out.discovery
        .set(DST, resolution(addr, Some(seed_profile(0.2, 10))));
    let rsp = send(&out, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

/// An HTTPRoute rule sending to the target's own endpoints.
fn rule(timeout: Option<Duration>, retry: Option<RuleRetry>) -> PolicyRule {
    PolicyRule {
        matches: vec![],
        backends: vec![],
        timeout,
        retry,
    }
}

/// Sends a request for DST, whose OutboundPolicy is the one rule.
async fn send_on_rule(r: &Router, rule: PolicyRule) -> http::StatusCode {
    r.discovery.set_policy(
        DST,
        OutboundPolicy {
            routes: vec![PolicyRoute {
                name: "items".into(),
                rules: vec![rule],
            }],
            accrual: None,
        },
    );
    send(r, http::Method::GET, "/items").await.status()
}

#[tokio::test(start_paused = true)]
async fn httproute_retry_annotations_limit_statuses_and_timeouts() {
    let (failing, hits) = backend(503, Duration::ZERO).await;
    let out = router();
    out.discovery.set(DST, resolution(failing, None));
    // retry.linkerd.io/http: 5xx, limit 2: three tries, no budget involved.
    let five_xx = RuleRetry {
        limit: 2,
        timeout: None,
        statuses: vec![(500, 599)],
    };
    assert_eq!(send_on_rule(&out, rule(None, Some(five_xx))).await, 503);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(out.route_metrics.count(RouteEvent::Retry, DST, "items"), 2);
    // Only 429 is retryable: a 503 is sent once.
    let only_429 = RuleRetry {
        limit: 2,
        timeout: None,
        statuses: vec![(429, 429)],
    };
    assert_eq!(send_on_rule(&out, rule(None, Some(only_429))).await, 503);
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // A slow backend: each try gets 1s (retry.linkerd.io/timeout), the
    // request 5s; two tries, then the last 504.
    let (slow, slow_hits) = backend(200, Duration::from_secs(60)).await;
    out.discovery.set(DST, resolution(slow, None));
    let per_try = RuleRetry {
        limit: 1,
        timeout: Some(Duration::from_secs(1)),
        statuses: vec![(500, 599)],
    };
    let started = Instant::now();
    let status = send_on_rule(&out, rule(Some(Duration::from_secs(5)), Some(per_try))).await;
    assert_eq!(status, 504);
    assert_eq!(slow_hits.load(Ordering::SeqCst), 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_millis(2250),
        "{took:?}"
    );
    // timeouts.request alone: 504 at exactly 3s.
    let started = Instant::now();
    let status = send_on_rule(&out, rule(Some(Duration::from_secs(3)), None)).await;
    assert_eq!(status, 504);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}
