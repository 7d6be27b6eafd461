//! Linkerd's outbound annotations, parsed as Linkerd's policy controller
//! does: `retry.linkerd.io/*` and `timeout.linkerd.io/*` on HTTPRoutes,
//! `balancer.linkerd.io/failure-accrual*` on Services.

use std::collections::BTreeMap;
use std::time::Duration;
use ztmesh_resources::duration::DurationError;

const ACCRUAL: &str = "balancer.linkerd.io/failure-accrual";

/// An annotation the policy cannot follow: which, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AnnotationError {
    #[error("{key}: {value:?} is not a count")]
    NotACount { key: String, value: String },
    #[error("{key}: {value:?} is not a number")]
    NotANumber { key: String, value: String },
    #[error("{key}: {source}")]
    Duration { key: String, source: DurationError },
    #[error(
        "retry.linkerd.io/http: {0:?} is not a retry condition (5xx, gateway-error, a status, or a range)"
    )]
    RetryCondition(String),
    #[error("{ACCRUAL}: {0:?} is not a supported mode (consecutive)")]
    AccrualMode(String),
    #[error("min-penalty ({min:?}) exceeds max-penalty ({max:?})")]
    PenaltyOrder { min: Duration, max: Duration },
    #[error("jitter-ratio {0} is not between 0 and 100")]
    Jitter(f32),
}

fn count<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, AnnotationError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| AnnotationError::NotACount {
            key: key.into(),
            value: value.into(),
        })
}

fn duration(key: &str, value: &str) -> Result<Duration, AnnotationError> {
    ztmesh_resources::duration::parse(value.trim()).map_err(|source| AnnotationError::Duration {
        key: key.into(),
        source,
    })
}

/// Retries an HTTPRoute's annotations ask for (they have no budget).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRetry {
    /// `retry.linkerd.io/limit` (default 1).
    pub limit: u32,
    /// `retry.linkerd.io/timeout`: each try's own timeout.
    pub timeout: Option<Duration>,
    /// `retry.linkerd.io/http`: status ranges to retry (`5xx`,
    /// `gateway-error`, `429`, `500-504`); empty means 5xx.
    pub statuses: Vec<(u16, u16)>,
}

/// Linkerd's `retry.linkerd.io/*` annotations on an HTTPRoute.
pub fn http_retry(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<RouteRetry>, AnnotationError> {
    let limit = annotations
        .get("retry.linkerd.io/limit")
        .map(|v| count::<u16>("retry.linkerd.io/limit", v))
        .transpose()?
        .filter(|v| *v != 0);
    let timeout = annotations
        .get("retry.linkerd.io/timeout")
        .map(|v| duration("retry.linkerd.io/timeout", v))
        .transpose()?
        .filter(|d| !d.is_zero());
    let code = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
    };
    let statuses = annotations
        .get("retry.linkerd.io/http")
        .map(|v| {
            v.split(',')
                .map(|cond| {
                    let cond = cond.trim();
                    if cond.eq_ignore_ascii_case("5xx") {
                        return Ok((500, 599));
                    }
                    if cond.eq_ignore_ascii_case("gateway-error") {
                        return Ok((502, 504));
                    }
                    if let Some(c) = code(cond) {
                        return Ok((c, c));
                    }
                    if let Some((a, b)) = cond.split_once('-')
                        && let (Some(a), Some(b)) = (code(a), code(b))
                        && a <= b
                    {
                        return Ok((a, b));
                    }
                    Err(AnnotationError::RetryCondition(cond.into()))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if limit.is_none() && timeout.is_none() && statuses.is_none() {
        return Ok(None);
    }
    Ok(Some(RouteRetry {
        limit: limit.map(u32::from).unwrap_or(1),
        timeout,
        statuses: statuses.unwrap_or_default(),
    }))
}

/// `timeout.linkerd.io/request` (else `/response`) on an HTTPRoute.
pub fn timeout_annotation(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Duration>, AnnotationError> {
    for key in ["timeout.linkerd.io/request", "timeout.linkerd.io/response"] {
        if let Some(v) = annotations.get(key) {
            return duration(key, v).map(Some);
        }
    }
    Ok(None)
}

/// `balancer.linkerd.io/failure-accrual: consecutive` and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsecutiveFailures {
    pub max_failures: u32,
    pub min_penalty: Duration,
    pub max_penalty: Duration,
    pub jitter: f32,
}

/// Linkerd's annotations and defaults: max failures 7, penalty 1s to 1m, jitter 0.5.
pub fn failure_accrual(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<ConsecutiveFailures>, AnnotationError> {
    match annotations.get(ACCRUAL).map(String::as_str) {
        None => return Ok(None),
        Some("consecutive") => {}
        Some(other) => return Err(AnnotationError::AccrualMode(other.into())),
    }
    let key = |suffix: &str| format!("{ACCRUAL}-consecutive-{suffix}");
    let get = |suffix: &str| annotations.get(&key(suffix));
    let penalty = |suffix: &str, default: u64| -> Result<Duration, AnnotationError> {
        get(suffix)
            .map(|v| duration(&key(suffix), v))
            .transpose()
            .map(|d| d.unwrap_or(Duration::from_secs(default)))
    };
    let max_failures = get("max-failures")
        .map(|v| count::<u32>(&key("max-failures"), v))
        .transpose()?
        .unwrap_or(7);
    let min_penalty = penalty("min-penalty", 1)?;
    let max_penalty = penalty("max-penalty", 60)?;
    let jitter = get("jitter-ratio")
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| AnnotationError::NotANumber {
                    key: key("jitter-ratio"),
                    value: v.clone(),
                })
        })
        .transpose()?
        .unwrap_or(0.5);
    if min_penalty > max_penalty {
        return Err(AnnotationError::PenaltyOrder {
            min: min_penalty,
            max: max_penalty,
        });
    }
    if !(0.0..=100.0).contains(&jitter) {
        return Err(AnnotationError::Jitter(jitter));
    }
    Ok(Some(ConsecutiveFailures {
        max_failures,
        min_penalty,
        max_penalty,
        jitter,
    }))
}
