//! Linkerd's outbound annotations, parsed as Linkerd's policy controller
//! does: `retry.linkerd.io/*` and `timeout.linkerd.io/*` on HTTPRoutes,
//! `balancer.linkerd.io/failure-accrual*` on Services.

use std::collections::BTreeMap;
use std::time::Duration;

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
pub fn http_retry(annotations: &BTreeMap<String, String>) -> Result<Option<RouteRetry>, String> {
    let limit = annotations
        .get("retry.linkerd.io/limit")
        .map(|v| {
            v.trim()
                .parse::<u16>()
                .map_err(|_| format!("retry.linkerd.io/limit: {v:?} is not a count"))
        })
        .transpose()?
        .filter(|v| *v != 0);
    let timeout = annotations
        .get("retry.linkerd.io/timeout")
        .map(|v| {
            ztmesh_resources::duration::parse(v.trim())
                .map_err(|e| format!("retry.linkerd.io/timeout: {e}"))
        })
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
                    Err(format!("retry.linkerd.io/http: {cond:?} is not a retry condition (5xx, gateway-error, a status, or a range)"))
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
) -> Result<Option<Duration>, String> {
    for key in ["timeout.linkerd.io/request", "timeout.linkerd.io/response"] {
        if let Some(v) = annotations.get(key) {
            return ztmesh_resources::duration::parse(v.trim())
                .map(Some)
                .map_err(|e| format!("{key}: {e}"));
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
) -> Result<Option<ConsecutiveFailures>, String> {
    const PREFIX: &str = "balancer.linkerd.io/failure-accrual";
    match annotations.get(PREFIX).map(String::as_str) {
        None => return Ok(None),
        Some("consecutive") => {}
        Some(other) => {
            return Err(format!(
                "{PREFIX}: {other:?} is not a supported mode (consecutive)"
            ));
        }
    }
    let get = |suffix: &str| annotations.get(&format!("{PREFIX}-consecutive-{suffix}"));
    let duration = |suffix: &str, default: u64| -> Result<Duration, String> {
        get(suffix)
            .map(|v| {
                ztmesh_resources::duration::parse(v.trim())
                    .map_err(|e| format!("{PREFIX}-consecutive-{suffix}: {e}"))
            })
            .transpose()
            .map(|d| d.unwrap_or(Duration::from_secs(default)))
    };
    let max_failures = get("max-failures")
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{PREFIX}-consecutive-max-failures: {v:?} is not a count"))
        })
        .transpose()?
        .unwrap_or(7);
    let min_penalty = duration("min-penalty", 1)?;
    let max_penalty = duration("max-penalty", 60)?;
    let jitter = get("jitter-ratio")
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("{PREFIX}-consecutive-jitter-ratio: {v:?} is not a number"))
        })
        .transpose()?
        .unwrap_or(0.5);
    if min_penalty > max_penalty {
        return Err(format!(
            "min-penalty ({min_penalty:?}) exceeds max-penalty ({max_penalty:?})"
        ));
    }
    if !(0.0..=100.0).contains(&jitter) {
        return Err(format!("jitter-ratio {jitter} is not between 0 and 100"));
    }
    Ok(Some(ConsecutiveFailures {
        max_failures,
        min_penalty,
        max_penalty,
        jitter,
    }))
}
