//! ServiceProfiles as the controller sends them (`DestinationProfile`),
//! for the proxy's tests.

use linkerd2_proxy_api::destination as proto;
use proto::request_match::{Match, Seq};

fn secs(s: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: s,
        nanos: 0,
    }
}

/// `method` and `pathRegex` together, as a ServiceProfile condition.
pub fn condition(method: http::Method, path_regex: &str) -> proto::RequestMatch {
    proto::RequestMatch {
        r#match: Some(Match::All(Seq {
            matches: vec![
                proto::RequestMatch {
                    r#match: Some(Match::Method(method.into())),
                },
                proto::RequestMatch {
                    r#match: Some(Match::Path(proto::PathMatch {
                        regex: path_regex.into(),
                    })),
                },
            ],
        })),
    }
}

pub fn route(
    name: &str,
    condition: proto::RequestMatch,
    timeout_secs: i64,
    retryable: bool,
) -> proto::Route {
    proto::Route {
        condition: Some(condition),
        metrics_labels: [("route".to_string(), name.to_string())].into(),
        timeout: Some(secs(timeout_secs)),
        is_retryable: retryable,
        ..Default::default()
    }
}

/// The seed's api-server profile (seed002): GET /api/users (5s,
/// retryable), POST /api/orders (10s, not retryable), plus `extra` routes;
/// the retry budget `ratio` and `min_per_second` over 10s.
pub fn seed002(
    ratio: f32,
    min_per_second: u32,
    extra: Vec<proto::Route>,
) -> proto::DestinationProfile {
    let mut routes = vec![
        route(
            "GET /api/users",
            condition(http::Method::GET, "/api/users"),
            5,
            true,
        ),
        route(
            "POST /api/orders",
            condition(http::Method::POST, "/api/orders"),
            10,
            false,
        ),
    ];
    routes.extend(extra);
    proto::DestinationProfile {
        routes,
        retry_budget: Some(proto::RetryBudget {
            retry_ratio: ratio,
            min_retries_per_second: min_per_second,
            ttl: Some(secs(10)),
        }),
        ..Default::default()
    }
}
