//! A ServiceProfile as the client proxy uses it (from `Destination.GetProfile`):
//! routes whose conditions (method, path regex, all / any / not) name a
//! request's route, each with its timeout, whether it may be retried and
//! which responses count as failures; and the service's retry budget.
//!
//! "The first route whose condition matches names the request's route";
//! "without response classes, 5xx responses are failures". Path regexes
//! match the whole path, as linkerd2-proxy anchors them.

use super::retry::RetryBudget;
use linkerd2_proxy_api::destination as proto;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Profile {
    pub(crate) routes: Vec<ProfileRoute>,
    /// Shared by every retryable route of the service.
    pub(crate) budget: Option<Arc<RetryBudget>>,
}

#[derive(Debug)]
pub(crate) struct ProfileRoute {
    pub(crate) name: String,
    condition: Condition,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retryable: bool,
    failure_classes: Vec<(StatusCondition, bool)>,
}

#[derive(Debug)]
enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// `None`: a pattern that does not compile never matches.
    Path(Option<regex::Regex>),
    Method(http::Method),
    Never,
}

#[derive(Debug)]
enum StatusCondition {
    All(Vec<StatusCondition>),
    Any(Vec<StatusCondition>),
    Not(Box<StatusCondition>),
    Range(u16, u16),
    Never,
}

impl Profile {
    pub fn from_proto(p: &proto::DestinationProfile) -> Self {
        let routes = p
            .routes
            .iter()
            .map(|r| ProfileRoute {
                name: r
                    .metrics_labels
                    .get("route")
                    .cloned()
                    .unwrap_or_else(|| "unnamed".into()),
                condition: r
                    .condition
                    .as_ref()
                    .map(condition)
                    .unwrap_or(Condition::Never),
                timeout: r
                    .timeout
                    .and_then(|t| Duration::try_from(t).ok())
                    .filter(|t| !t.is_zero()),
                retryable: r.is_retryable,
                failure_classes: r
                    .response_classes
                    .iter()
                    .map(|c| {
                        (
                            c.condition
                                .as_ref()
                                .map(status_condition)
                                .unwrap_or(StatusCondition::Never),
                            c.is_failure,
                        )
                    })
                    .collect(),
            })
            .collect();
        let budget = p.retry_budget.as_ref().map(|b| {
            Arc::new(RetryBudget::new(
                b.retry_ratio,
                b.min_retries_per_second,
                b.ttl
                    .and_then(|t| Duration::try_from(t).ok())
                    .unwrap_or(Duration::from_secs(10)),
            ))
        });
        Self { routes, budget }
    }

    /// The route of a request: the first whose condition matches.
    pub(crate) fn route<B>(&self, req: &http::Request<B>) -> Option<&ProfileRoute> {
        self.routes.iter().find(|r| r.condition.matches(req))
    }
}

impl ProfileRoute {
    /// Whether a response with this status is a failure for the route.
    pub(crate) fn is_failure(&self, status: u16) -> bool {
        self.failure_classes
            .iter()
            .find(|(c, _)| c.matches(status))
            .map(|(_, failure)| *failure)
            .unwrap_or(status >= 500)
    }
}

fn condition(m: &proto::RequestMatch) -> Condition {
    use proto::request_match::Match;
    match &m.r#match {
        Some(Match::All(s)) => Condition::All(s.matches.iter().map(condition).collect()),
        Some(Match::Any(s)) => Condition::Any(s.matches.iter().map(condition).collect()),
        Some(Match::Not(inner)) => Condition::Not(Box::new(condition(inner))),
        Some(Match::Path(p)) => {
            Condition::Path(regex::Regex::new(&format!("^(?:{})$", p.regex)).ok())
        }
        Some(Match::Method(m)) => match http::Method::try_from(m.clone()) {
            Ok(m) => Condition::Method(m),
            Err(_) => Condition::Never,
        },
        None => Condition::Never,
    }
}

fn status_condition(m: &proto::ResponseMatch) -> StatusCondition {
    use proto::response_match::Match;
    match &m.r#match {
        Some(Match::All(s)) => {
            StatusCondition::All(s.matches.iter().map(status_condition).collect())
        }
        Some(Match::Any(s)) => {
            StatusCondition::Any(s.matches.iter().map(status_condition).collect())
        }
        Some(Match::Not(inner)) => StatusCondition::Not(Box::new(status_condition(inner))),
        Some(Match::Status(r)) => {
            let min = u16::try_from(r.min).unwrap_or(u16::MAX);
            let max = if r.max == 0 {
                u16::MAX
            } else {
                u16::try_from(r.max).unwrap_or(u16::MAX)
            };
            StatusCondition::Range(min, max)
        }
        None => StatusCondition::Never,
    }
}

impl Condition {
    fn matches<B>(&self, req: &http::Request<B>) -> bool {
        match self {
            Self::All(cs) => cs.iter().all(|c| c.matches(req)),
            Self::Any(cs) => cs.iter().any(|c| c.matches(req)),
            Self::Not(c) => !c.matches(req),
            Self::Path(re) => re.as_ref().is_some_and(|re| re.is_match(req.uri().path())),
            Self::Method(m) => req.method() == m,
            Self::Never => false,
        }
    }
}

impl StatusCondition {
    fn matches(&self, status: u16) -> bool {
        match self {
            Self::All(cs) => cs.iter().all(|c| c.matches(status)),
            Self::Any(cs) => cs.iter().any(|c| c.matches(status)),
            Self::Not(c) => !c.matches(status),
            Self::Range(min, max) => (*min..=*max).contains(&status),
            Self::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::request_match::Match;
    use ztmesh_test_support::profiles::{route, seed002};

    #[test]
    fn routes_table() {
        let not_get = proto::RequestMatch {
            r#match: Some(Match::Not(Box::new(proto::RequestMatch {
                r#match: Some(Match::Method(http::Method::GET.into())),
            }))),
        };
        let p = Profile::from_proto(&seed002(0.2, 10, vec![route("not GET", not_get, 1, false)]));
        let cases = [
            ("GET", "/api/users", Some("GET /api/users")),
            ("GET", "/api/users/1", None),
            ("GET", "/api/userss", None),
            ("POST", "/api/orders", Some("POST /api/orders")),
            ("POST", "/api/users", Some("not GET")),
            ("GET", "/", None),
        ];
        for (m, path, want) in cases {
            let req = http::Request::builder()
                .method(m)
                .uri(path)
                .body(())
                .unwrap();
            assert_eq!(p.route(&req).map(|r| r.name.as_str()), want, "{m} {path}");
        }
        let users = &p.routes[0];
        assert_eq!(users.timeout, Some(Duration::from_secs(5)));
        assert!(users.retryable && !p.routes[1].retryable);
        assert!(users.is_failure(503) && !users.is_failure(404));
        assert!(p.budget.is_some());
    }
}
