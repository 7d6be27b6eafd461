//! `linkerd.io` ServiceProfile (v1alpha1, v1alpha2): per-route behaviour
//! for a service, named `{service}.{namespace}.svc.{cluster-domain}`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceProfileSpec {
    #[serde(default)]
    pub routes: Option<Vec<RouteSpec>>,
    #[serde(default)]
    pub retry_budget: Option<RetryBudget>,
    #[serde(default)]
    pub dst_overrides: Option<Vec<WeightedDst>>,
    #[serde(default)]
    pub opaque_ports: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    pub condition: RequestMatch,
    #[serde(default)]
    pub response_classes: Option<Vec<ResponseClass>>,
    #[serde(default)]
    pub is_retryable: bool,
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Conditions combine with `all`, `any` and `not`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMatch {
    #[serde(default)]
    pub all: Option<Vec<RequestMatch>>,
    #[serde(default)]
    pub any: Option<Vec<RequestMatch>>,
    #[serde(default)]
    pub not: Option<Box<RequestMatch>>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseClass {
    pub condition: ResponseMatch,
    #[serde(default)]
    pub is_failure: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseMatch {
    #[serde(default)]
    pub all: Option<Vec<ResponseMatch>>,
    #[serde(default)]
    pub any: Option<Vec<ResponseMatch>>,
    #[serde(default)]
    pub not: Option<Box<ResponseMatch>>,
    #[serde(default)]
    pub status: Option<StatusRange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusRange {
    #[serde(default)]
    pub min: Option<u16>,
    #[serde(default)]
    pub max: Option<u16>,
}

/// Linkerd's defaults when absent: 0.2, 10, 10s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    pub retry_ratio: f32,
    pub min_retries_per_second: u32,
    pub ttl: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedDst {
    pub authority: String,
    pub weight: serde_json::Value,
}
