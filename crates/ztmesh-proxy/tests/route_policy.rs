//! A ServiceProfile route's timeout and retries, in process and on a
//! paused clock: the real outbound router against a real (loopback)
//! backend whose answers the test chooses. Virtual time makes the
//! timeout's moment and the backoff exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use ztmesh_proxy::metrics::{HttpMetrics, StatsCache};
use ztmesh_proxy::outbound::discover::{Discover, Endpoint, Resolution};
use ztmesh_proxy::outbound::http::HttpOutbound;
use ztmesh_proxy::outbound::profile::Profile;
use ztmesh_proxy::route_metrics::{RouteEvent, RouteMetrics};

/// A backend that sleeps `delay` and answers `status`, counting requests.
async fn backend(status: u16, delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::from("x")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn router() -> HttpOutbound {
    let pki = ztmesh_test_support::TestPki::new();
    let roots = ztmesh_tls::roots_from_pem(&pki.anchors_pem()).unwrap();
    let tls = Arc::new(ztmesh_proxy::outbound::connect::ClientTls::new(
        roots,
        ztmesh_tls::CredentialsStore::new(),
    ));
    // Discovery is not consulted: the resolution is given.
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
    HttpOutbound {
        discover: Discover::new(channel, String::new(), vec![]),
        balancer: Default::default(),
        pool: ztmesh_proxy::outbound::pool::Pool::new(tls, Arc::default()),
        metrics: Arc::new(HttpMetrics::default()),
        route_metrics: Arc::new(RouteMetrics::default()),
        policies: None,
        accrual: Default::default(),
        tracer: None,
        taps: Default::default(),
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

fn resolution(addr: std::net::SocketAddr, profile: Profile) -> Resolution {
    Resolution {
        endpoints: Arc::new(vec![Endpoint::plain(addr)]),
        opaque_protocol: false,
        profile: Some(Arc::new(profile)),
        accrual: None,
        outside_mesh: false,
    }
}

async fn send(
    out: &HttpOutbound,
    res: &Resolution,
    method: http::Method,
    path: &str,
) -> http::Response<ztmesh_proxy::proxy_http::Body> {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(format!(
            "http://api-server.my-app.svc.cluster.local:8080{path}"
        ))
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let profile = res.profile.clone().unwrap();
    let route = profile.route(&req).expect("a route");
    let cache = StatsCache::default();
    let call = ztmesh_proxy::outbound::route_policy::RouteCall {
        out,
        resolution: res,
        profile: &profile,
        route,
        authority: DST,
        cache: &cache,
    };
    ztmesh_proxy::outbound::route_policy::send(call, req).await
}

const DST: &str = "api-server.my-app.svc.cluster.local:8080";

#[tokio::test(start_paused = true)]
async fn the_timeout_fires_at_exactly_the_routes_timeout() {
    let (addr, hits) = backend(200, Duration::from_secs(60)).await;
    let out = router();
    let res = resolution(addr, seed_profile(0.2, 10));
    let started = Instant::now();
    let rsp = send(&out, &res, http::Method::GET, "/api/users").await;
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
    let rsp = send(&out, &res, http::Method::POST, "/api/orders").await;
    assert_eq!(rsp.status(), 504);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_budget_and_back_off_within_bounds() {
    let (addr, hits) = backend(503, Duration::ZERO).await;
    let out = router();
    // No ratio, 1 retry per second over 10s: 10 retries in all.
    let res = resolution(addr, seed_profile(0.0, 1));
    let started = Instant::now();
    let rsp = send(&out, &res, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 503, "the last failure reaches the client");
    // At most 10 attempts per request; 9 backoffs of at most 250ms each.
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert!(
        started.elapsed() <= Duration::from_millis(9 * 250),
        "{:?}",
        started.elapsed()
    );
    let rsp = send(&out, &res, http::Method::GET, "/api/users").await;
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
    let rsp = send(&out, &res, http::Method::POST, "/api/orders").await;
    assert_eq!(rsp.status(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 13);
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_hides_the_failure() {
    // Fails once, then succeeds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let status = if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        500
                    } else {
                        200
                    };
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let out = router();
    let res = resolution(addr, seed_profile(0.2, 10));
    let rsp = send(&out, &res, http::Method::GET, "/api/users").await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

/// An HTTPRoute rule sending to the resolution's endpoint.
fn rule(
    timeout: Option<Duration>,
    retry: Option<ztmesh_proxy::outbound::policy::RuleRetry>,
) -> ztmesh_proxy::outbound::policy::PolicyRule {
    ztmesh_proxy::outbound::policy::PolicyRule {
        matches: vec![],
        backends: vec![],
        timeout,
        retry,
    }
}

async fn send_on_rule(
    out: &HttpOutbound,
    res: &Resolution,
    rule: &ztmesh_proxy::outbound::policy::PolicyRule,
) -> http::StatusCode {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("http://{DST}/items"))
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let cache = StatsCache::default();
    let call = ztmesh_proxy::outbound::route_policy::RuleCall {
        out,
        target: res,
        route: "items",
        rule,
        authority: DST,
        cache: &cache,
    };
    ztmesh_proxy::outbound::route_policy::send_rule(call, req)
        .await
        .status()
}

#[tokio::test(start_paused = true)]
async fn httproute_retry_annotations_limit_statuses_and_timeouts() {
    use ztmesh_proxy::outbound::policy::RuleRetry;
    let (failing, hits) = backend(503, Duration::ZERO).await;
    let out = router();
    let res = resolution(failing, Profile::default());
    // retry.linkerd.io/http: 5xx, limit 2: three tries, no budget involved.
    let five_xx = RuleRetry {
        limit: 2,
        timeout: None,
        statuses: vec![(500, 599)],
    };
    assert_eq!(
        send_on_rule(&out, &res, &rule(None, Some(five_xx))).await,
        503
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(out.route_metrics.count(RouteEvent::Retry, DST, "items"), 2);
    // Only 429 is retryable: a 503 is sent once.
    let only_429 = RuleRetry {
        limit: 2,
        timeout: None,
        statuses: vec![(429, 429)],
    };
    assert_eq!(
        send_on_rule(&out, &res, &rule(None, Some(only_429))).await,
        503
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // A slow backend: each try gets 1s (retry.linkerd.io/timeout), the
    // request 5s; two tries, then the last 504.
    let (slow, slow_hits) = backend(200, Duration::from_secs(60)).await;
    let res = resolution(slow, Profile::default());
    let per_try = RuleRetry {
        limit: 1,
        timeout: Some(Duration::from_secs(1)),
        statuses: vec![(500, 599)],
    };
    let started = Instant::now();
    let status = send_on_rule(
        &out,
        &res,
        &rule(Some(Duration::from_secs(5)), Some(per_try)),
    )
    .await;
    assert_eq!(status, 504);
    assert_eq!(slow_hits.load(Ordering::SeqCst), 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_millis(2250),
        "{took:?}"
    );
    // timeouts.request alone: 504 at exactly 3s.
    let started = Instant::now();
    let status = send_on_rule(&out, &res, &rule(Some(Duration::from_secs(3)), None)).await;
    assert_eq!(status, 504);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}
