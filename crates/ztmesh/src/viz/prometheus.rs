//! The stat table from a Prometheus server (`--prometheus URL`) instead of
//! scraping the proxies: the same figures, as PromQL over the server's
//! history, so the answer is immediate and survives a proxy restart.
//!
//! Series are matched to workloads by the `namespace` and `pod` labels that
//! Linkerd's Prometheus configuration adds (Kubernetes service discovery),
//! or else by the `instance` label a static scrape target gets: the proxy's
//! admin address (`IP:4191`).

use super::client::{GetError, get_text};
use super::model::WorkloadStat;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// A Prometheus server's HTTP API: `http://host:port[/prefix]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Prometheus {
    /// host:port.
    authority: String,
    /// Path prefix without a trailing slash ("" or "/prometheus").
    prefix: String,
}

/// Why a Prometheus URL was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?}: the Prometheus URL must start with http:// (e.g. http://127.0.0.1:9090)")]
    NotHttp(String),
    #[error("{0:?}: no host:port in the Prometheus URL")]
    NoAuthority(String),
    #[error("{0:?}: bad port in the Prometheus URL")]
    BadPort(String),
    #[error("{0:?}: the Prometheus URL takes no query or fragment")]
    QueryOrFragment(String),
}

/// Why a query's answer could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VectorError {
    #[error("not a Prometheus API answer: {0}")]
    NotJson(String),
    #[error("{kind}: {reason}")]
    Refused { kind: String, reason: String },
    #[error("expected a vector, got {0}")]
    NotVector(String),
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("querying Prometheus at {server}: {source}")]
    Get { server: String, source: GetError },
    #[error("Prometheus at {server}: {source}")]
    Answer { server: String, source: VectorError },
}

impl std::str::FromStr for Prometheus {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::NotHttp(url.into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(UrlError::NoAuthority(url.into()));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        }) {
            authority.to_string()
        } else if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            return Err(UrlError::BadPort(url.into()));
        };
        if path.contains(['?', '#']) {
            return Err(UrlError::QueryOrFragment(url.into()));
        }
        Ok(Self {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

impl std::fmt::Display for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// Percent-encodes a query parameter's value (RFC 3986 unreserved kept).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One element of an instant vector: its labels and value.
pub type Series = (BTreeMap<String, String>, f64);

/// Reads the answer of `/api/v1/query`: a vector, or the server's error.
pub fn parse_vector(body: &str) -> Result<Vec<Series>, VectorError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| VectorError::NotJson(e.to_string()))?;
    if v["status"] != "success" {
        return Err(VectorError::Refused {
            kind: v["errorType"].as_str().unwrap_or("error").into(),
            reason: v["error"].as_str().unwrap_or("no reason given").into(),
        });
    }
    if v["data"]["resultType"] != "vector" {
        return Err(VectorError::NotVector(v["data"]["resultType"].to_string()));
    }
    let mut out = Vec::new();
    for item in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = item["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        // [ timestamp, "value" ]; NaN ("NaN") is dropped.
        let value = item["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite());
        if let Some(value) = value {
            out.push((labels, value));
        }
    }
    Ok(out)
}

impl Prometheus {
    /// An instant query, evaluated now.
    pub async fn query(&self, promql: &str) -> Result<Vec<Series>, QueryError> {
        let path = format!("{}/api/v1/query?query={}", self.prefix, encode(promql));
        // Prometheus answers errors with 400 / 422 and a JSON body naming
        // the problem; get_text reports those with the body.
        let body = get_text(&self.authority, &path, Duration::from_secs(10))
            .await
            .map_err(|source| QueryError::Get {
                server: self.to_string(),
                source,
            })?;
        parse_vector(&body).map_err(|source| QueryError::Answer {
            server: self.to_string(),
            source,
        })
    }

    /// Each workload's figures over the last `window` (whole seconds, at
    /// least 1; it should span two scrapes or more); None: not meshed.
    pub async fn stats(
        &self,
        workloads: &[(String, String, SocketAddr)],
        window: Duration,
    ) -> Result<Vec<Option<WorkloadStat>>, QueryError> {
        let window = window.as_secs_f64().ceil().max(1.0) as u64;
        let mut figures = HashMap::new();
        for (figure, promql) in queries(window) {
            let series = self.query(&promql).await?;
            figures.insert(figure, per_workload(&series, workloads));
        }
        Ok(assemble(&figures, workloads.len()))
    }
}

/// Which workload (index into `workloads`) a series belongs to.
fn owner(
    labels: &BTreeMap<String, String>,
    workloads: &[(String, String, SocketAddr)],
) -> Option<usize> {
    if let (Some(ns), Some(pod)) = (labels.get("namespace"), labels.get("pod"))
        && let Some(i) = workloads.iter().position(|(n, name, _)| {
            n == ns && (name == pod || name.strip_prefix("externalworkload/") == Some(pod))
        })
    {
        return Some(i);
    }
    let instance = labels.get("instance")?;
    workloads
        .iter()
        .position(|(_, _, addr)| addr.to_string() == *instance)
}

/// Sums the series per workload.
fn per_workload(
    series: &[Series],
    workloads: &[(String, String, SocketAddr)],
) -> HashMap<usize, f64> {
    let mut out = HashMap::new();
    for (labels, value) in series {
        if let Some(i) = owner(labels, workloads) {
            *out.entry(i).or_insert(0.0) += value;
        }
    }
    out
}

const BY: &str = "instance, namespace, pod";

/// The PromQL of each figure, over a `window` in seconds.
fn queries(window: u64) -> [(Figure, String); 11] {
    let rate = |m: &str, sel: &str| {
        format!("sum by ({BY}) (rate({m}{{direction=\"inbound\"{sel}}}[{window}s]))")
    };
    let q = |q: f64| {
        format!(
            "histogram_quantile({q}, sum by (le, {BY}) (rate(response_latency_ms_bucket{{direction=\"inbound\"}}[{window}s])))"
        )
    };
    [
        (Figure::Up, format!("max by ({BY}) (up)")),
        (Figure::Requests, rate("request_total", "")),
        (Figure::MtlsRequests, rate("request_total", ",tls=\"true\"")),
        (Figure::Responses, rate("response_total", "")),
        (
            Figure::Failures,
            rate("response_total", ",classification=\"failure\""),
        ),
        (
            Figure::Denied,
            format!(
                "sum by ({BY}) (increase({{__name__=~\"{}\"}}[{window}s]))",
                super::model::DENY_FAMILIES.join("|")
            ),
        ),
        (Figure::P50, q(0.5)),
        (Figure::P95, q(0.95)),
        (Figure::P99, q(0.99)),
        (
            Figure::Connections,
            format!("sum by ({BY}) (tcp_open_connections{{direction=\"inbound\"}})"),
        ),
        (
            Figure::Proxies,
            format!("count by ({BY}) (process_start_time_seconds)"),
        ),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Figure {
    Up,
    Requests,
    MtlsRequests,
    Responses,
    Failures,
    Denied,
    P50,
    P95,
    P99,
    Connections,
    Proxies,
}

/// Turns the figures' per-workload values into stats (None: not meshed,
/// i.e. Prometheus has no proxy series for it or its scrape is down).
fn assemble(figures: &HashMap<Figure, HashMap<usize, f64>>, n: usize) -> Vec<Option<WorkloadStat>> {
    let get = |f: Figure, i: usize| figures.get(&f).and_then(|m| m.get(&i)).copied();
    (0..n)
        .map(|i| {
            let up = get(Figure::Up, i).is_some_and(|v| v >= 1.0);
            if !up || get(Figure::Proxies, i).is_none() {
                return None;
            }
            let requests = get(Figure::Requests, i).unwrap_or(0.0);
            let responses = get(Figure::Responses, i).unwrap_or(0.0);
            let failures = get(Figure::Failures, i).unwrap_or(0.0);
            Some(WorkloadStat {
                meshed: true,
                success: (responses > 0.0).then(|| 1.0 - failures / responses),
                denied: get(Figure::Denied, i).unwrap_or(0.0),
                rps: requests,
                p50_ms: get(Figure::P50, i),
                p95_ms: get(Figure::P95, i),
                p99_ms: get(Figure::P99, i),
                mtls: (requests > 0.0)
                    .then(|| get(Figure::MtlsRequests, i).unwrap_or(0.0) / requests),
                tcp_connections: get(Figure::Connections, i).unwrap_or(0.0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str, authority: &str, prefix: &str| {
            let p: Prometheus = u.parse().unwrap_or_else(|e| panic!("{u}: {e}"));
            assert_eq!(
                (p.authority.as_str(), p.prefix.as_str()),
                (authority, prefix),
                "{u}"
            );
        };
        ok("http://127.0.0.1:9090", "127.0.0.1:9090", "");
        ok("http://127.0.0.1:9090/", "127.0.0.1:9090", "");
        ok(
            "http://prometheus.linkerd-viz.svc:9090/prom/",
            "prometheus.linkerd-viz.svc:9090",
            "/prom",
        );
        ok("http://prometheus", "prometheus:80", "");
        ok("http://[::1]:9090", "[::1]:9090", "");
        ok("http://[::1]", "[::1]:80", "");
        for (bad, why) in [
            (
                "https://127.0.0.1:9090",
                UrlError::NotHttp as fn(String) -> UrlError,
            ),
            ("127.0.0.1:9090", UrlError::NotHttp),
            ("http://", UrlError::NoAuthority),
            ("http://:9090", UrlError::BadPort),
            ("http://host:90x0", UrlError::BadPort),
            ("http://user@host:9090", UrlError::NoAuthority),
            ("http://host:9090/?x=1", UrlError::QueryOrFragment),
        ] {
            assert_eq!(bad.parse::<Prometheus>(), Err(why(bad.into())), "{bad}");
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode("sum(rate(x{a=\"b\"}[5s]))"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5s%5D%29%29"
        );
    }

    #[test]
    fn vectors_and_errors() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"instance":"127.0.7.6:4191"},"value":[1700000000.1,"20.5"]},
            {"metric":{"namespace":"booksapp","pod":"books"},"value":[1700000000.1,"NaN"]}]}}"#;
        let v = parse_vector(body).unwrap();
        assert_eq!(v.len(), 1, "NaN is dropped: {v:?}");
        assert_eq!(v[0].0["instance"], "127.0.7.6:4191");
        assert_eq!(v[0].1, 20.5);
        let err = parse_vector(
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad_data: invalid parameter \"query\": 1:5: parse error"
        );
        assert!(
            parse_vector("<html>")
                .unwrap_err()
                .to_string()
                .contains("not a Prometheus API answer")
        );
        assert_eq!(
            parse_vector(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
                .unwrap_err(),
            VectorError::NotVector("\"matrix\"".into())
        );
    }

    #[test]
    fn series_belong_to_workloads_by_pod_labels_or_admin_address() {
        let workloads = vec![
            (
                "booksapp".to_string(),
                "authors".to_string(),
                "10.0.0.1:4191".parse().unwrap(),
            ),
            (
                "booksapp".to_string(),
                "externalworkload/books".to_string(),
                "10.0.0.2:4191".parse().unwrap(),
            ),
        ];
        let labels = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases: [(&[(&str, &str)], Option<usize>); 6] = [
            (&[("namespace", "booksapp"), ("pod", "authors")], Some(0)),
            (&[("namespace", "booksapp"), ("pod", "books")], Some(1)),
            (&[("instance", "10.0.0.2:4191")], Some(1)),
            // Labels naming no workload fall back to the address.
            (
                &[
                    ("namespace", "other"),
                    ("pod", "authors"),
                    ("instance", "10.0.0.1:4191"),
                ],
                Some(0),
            ),
            (&[("namespace", "other"), ("pod", "authors")], None),
            (&[("instance", "10.0.0.3:4191")], None),
        ];
        for (kv, want) in cases {
            assert_eq!(owner(&labels(kv), &workloads), want, "{kv:?}");
        }
        let sums = per_workload(
            &[
                (labels(&[("instance", "10.0.0.1:4191")]), 2.0),
                (
                    labels(&[("namespace", "booksapp"), ("pod", "authors")]),
                    3.0,
                ),
                (labels(&[("instance", "10.9.9.9:4191")]), 7.0),
            ],
            &workloads,
        );
        assert_eq!(sums, HashMap::from([(0, 5.0)]));
    }

    #[test]
    fn figures_become_stats() {
        let mut figures: HashMap<Figure, HashMap<usize, f64>> = HashMap::new();
        let mut set = |f: Figure, i: usize, v: f64| {
            figures.entry(f).or_default().insert(i, v);
        };
        // Workload 0: meshed and busy; 1: scraped but down; 2: absent.
        set(Figure::Up, 0, 1.0);
        set(Figure::Proxies, 0, 1.0);
        set(Figure::Requests, 0, 20.0);
        set(Figure::MtlsRequests, 0, 5.0);
        set(Figure::Responses, 0, 20.0);
        set(Figure::Failures, 0, 1.0);
        set(Figure::P50, 0, 3.0);
        set(Figure::Denied, 0, 442.0);
        set(Figure::Connections, 0, 4.0);
        set(Figure::Up, 1, 0.0);
        set(Figure::Proxies, 1, 1.0);
        let stats = assemble(&figures, 3);
        let busy = stats[0].as_ref().unwrap();
        assert_eq!(busy.rps, 20.0);
        assert_eq!(busy.success, Some(0.95));
        assert_eq!(busy.denied, 442.0);
        assert_eq!(busy.mtls, Some(0.25));
        assert_eq!((busy.p50_ms, busy.p99_ms), (Some(3.0), None));
        assert_eq!(busy.tcp_connections, 4.0);
        assert!(stats[1].is_none() && stats[2].is_none());
    }
}
