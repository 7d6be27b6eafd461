//! The stat table's model: one workload's figures over a window
//! ([`WorkloadStat`]), how they are computed from two scrapes
//! ([`compute`], [`quantile`]), which workloads a question is about
//! ([`workloads_in`]), the rows ([`StatRow`], also `-o json`) and the
//! table ([`stat_table`]). Pure: no I/O;
//! the sources ([`super::source`]) fill it, the CLI and the viz API print it.

use super::resource::Resource;
use super::scrape::Sample;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// One workload's figures over the window; None where there was no traffic.
#[derive(Debug, Default, PartialEq)]
pub struct WorkloadStat {
    pub meshed: bool,
    pub success: Option<f64>,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mtls: Option<f64>,
    pub tcp_connections: f64,
}

fn inbound(s: &Sample) -> bool {
    s.labels.get("direction").map(String::as_str) == Some("inbound")
}

/// Sum of the increase of counters `name` matching `keep` between scrapes.
fn increase(
    before: &[Sample],
    after: &[Sample],
    name: &str,
    keep: impl Fn(&Sample) -> bool,
) -> f64 {
    let prior: BTreeMap<&BTreeMap<String, String>, f64> = before
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| (&s.labels, s.value))
        .collect();
    after
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| (s.value - prior.get(&s.labels).copied().unwrap_or(0.0)).max(0.0))
        // An empty float sum is -0.0; + 0.0 makes it a plain zero.
        .sum::<f64>()
        + 0.0
}

/// Prometheus' histogram_quantile over (upper bound, cumulative count).
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(prev.0 + (bound - prev.0) * (rank - prev.1) / in_bucket);
        }
        prev = (bound, count);
    }
    Some(prev.0)
}

pub fn compute(before: &[Sample], after: &[Sample], window: Duration) -> WorkloadStat {
    let secs = window.as_secs_f64().max(0.001);
    let requests = increase(before, after, "request_total", inbound);
    let mtls_requests = increase(before, after, "request_total", |s| {
        inbound(s) && s.labels.get("tls").map(String::as_str) == Some("true")
    });
    let responses = increase(before, after, "response_total", inbound);
    let failures = increase(before, after, "response_total", |s| {
        inbound(s) && s.labels.get("classification").map(String::as_str) == Some("failure")
    });
    // Latency: differenced inbound buckets, summed over label sets by bound.
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in after
        .iter()
        .filter(|s| s.name == "response_latency_ms_bucket" && inbound(s))
    {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        let prior = before
            .iter()
            .find(|b| b.name == s.name && b.labels == s.labels)
            .map(|b| b.value)
            .unwrap_or(0.0);
        let e = by_bound.entry(bound.to_bits()).or_insert((bound, 0.0));
        e.1 += (s.value - prior).max(0.0);
    }
    let mut buckets: Vec<(f64, f64)> = by_bound.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tcp_connections = after
        .iter()
        .filter(|s| s.name == "tcp_open_connections" && inbound(s))
        .map(|s| s.value)
        .sum::<f64>()
        + 0.0;
    WorkloadStat {
        meshed: true,
        success: (responses > 0.0).then(|| 1.0 - failures / responses),
        rps: requests / secs,
        p50_ms: quantile(0.5, &buckets),
        p95_ms: quantile(0.95, &buckets),
        p99_ms: quantile(0.99, &buckets),
        mtls: (requests > 0.0).then(|| mtls_requests / requests),
        tcp_connections,
    }
}

/// (namespace, name, admin address) of the index's workloads with an
/// address, in `namespace` and selected by `resource` when given.
pub fn workloads_in(
    index: &ztmesh_policy::Index,
    namespace: Option<&str>,
    resource: Option<&Resource>,
    admin_port: u16,
) -> Vec<(String, String, SocketAddr)> {
    let mut workloads: Vec<(String, String, SocketAddr)> = index
        .workloads()
        .filter(|(ns, _, _)| namespace.is_none_or(|n| n == *ns))
        .filter(|(ns, wref, wl)| resource.is_none_or(|r| r.selects(ns, wref, wl)))
        .filter_map(|(ns, wref, wl)| {
            let name = match wref {
                ztmesh_policy::WorkloadRef::Pod(n) => n.clone(),
                ztmesh_policy::WorkloadRef::External(n) => format!("externalworkload/{n}"),
            };
            let ip = *wl.ips.first()?;
            Some((ns.to_string(), name, SocketAddr::new(ip, admin_port)))
        })
        .collect();
    workloads.sort();
    workloads
}

/// One row of the stat table: a workload and its figures (None where
/// unknown: no proxy, or no traffic). The table and `-o json` both print
/// it; fractions are 0..1, latencies in milliseconds.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct StatRow {
    pub namespace: String,
    pub name: String,
    pub meshed: bool,
    pub success_rate: Option<f64>,
    pub rps: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub tls_share: Option<f64>,
    pub tcp_connections: Option<f64>,
}

/// A row per workload, `None` where no proxy was found (unmeshed).
pub fn stat_rows(
    workloads: &[(String, String, SocketAddr)],
    stats: &[Option<WorkloadStat>],
) -> Vec<StatRow> {
    workloads
        .iter()
        .zip(stats)
        .map(|((ns, name, _), stat)| StatRow {
            namespace: ns.clone(),
            name: name.clone(),
            meshed: stat.is_some(),
            success_rate: stat.as_ref().and_then(|s| s.success),
            rps: stat.as_ref().map(|s| s.rps),
            latency_ms_p50: stat.as_ref().and_then(|s| s.p50_ms),
            latency_ms_p95: stat.as_ref().and_then(|s| s.p95_ms),
            latency_ms_p99: stat.as_ref().and_then(|s| s.p99_ms),
            tls_share: stat.as_ref().and_then(|s| s.mtls),
            tcp_connections: stat.as_ref().map(|s| s.tcp_connections),
        })
        .collect()
}

/// The stat table (header first), a line per [`StatRow`]; it drops no
/// column, so `-o wide` prints it too.
pub fn stat_table(rows: &[StatRow]) -> Vec<[String; 10]> {
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.2}%", v * 100.0))
            .unwrap_or("-".into())
    };
    let num = |v: Option<f64>, f: fn(f64) -> String| v.map(f).unwrap_or("-".into());
    let mut table = vec![
        [
            "NAMESPACE",
            "NAME",
            "MESHED",
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
            "MTLS",
            "TCP_CONN",
        ]
        .map(String::from),
    ];
    for r in rows {
        table.push([
            r.namespace.clone(),
            r.name.clone(),
            if r.meshed { "yes" } else { "no" }.into(),
            pct(r.success_rate),
            num(r.rps, |v| format!("{v:.1}")),
            crate::table::ms(r.latency_ms_p50),
            crate::table::ms(r.latency_ms_p95),
            crate::table::ms(r.latency_ms_p99),
            pct(r.tls_share),
            num(r.tcp_connections, |v| format!("{v}")),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::scrape::sample;
    use std::time::Duration;

    #[test]
    fn quantiles_as_prometheus_computes_them() {
        let b = [
            (10.0, 50.0),
            (100.0, 90.0),
            (1000.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(10.0));
        assert_eq!(quantile(0.7, &b), Some(55.0));
        assert_eq!(quantile(0.95, &b), Some(550.0));
        assert_eq!(quantile(0.5, &[(10.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(
            quantile(0.99, &[(10.0, 0.0), (f64::INFINITY, 5.0)]),
            Some(10.0)
        );
    }

    #[test]
    fn figures_over_the_window() {
        let ib = [("direction", "inbound"), ("tls", "true")];
        let plain = [("direction", "inbound"), ("tls", "no_identity")];
        let before = vec![
            sample("request_total", &ib, 100.0),
            sample("request_total", &plain, 10.0),
            sample(
                "response_total",
                &[("direction", "inbound"), ("classification", "success")],
                110.0,
            ),
        ];
        let after = vec![
            sample("request_total", &ib, 130.0),
            sample("request_total", &plain, 20.0),
            sample("request_total", &[("direction", "outbound")], 999.0),
            sample(
                "response_total",
                &[("direction", "inbound"), ("classification", "success")],
                148.0,
            ),
            sample(
                "response_total",
                &[("direction", "inbound"), ("classification", "failure")],
                2.0,
            ),
            sample(
                "response_latency_ms_bucket",
                &[("direction", "inbound"), ("le", "10")],
                40.0,
            ),
            sample(
                "response_latency_ms_bucket",
                &[("direction", "inbound"), ("le", "+Inf")],
                40.0,
            ),
            sample("tcp_open_connections", &[("direction", "inbound")], 3.0),
        ];
        let s = compute(&before, &after, Duration::from_secs(10));
        assert_eq!(s.rps, 4.0);
        assert_eq!(s.mtls, Some(0.75));
        assert_eq!(s.success, Some(1.0 - 2.0 / 40.0));
        assert_eq!(s.p50_ms, Some(5.0));
        assert_eq!(s.tcp_connections, 3.0);
    }

    #[test]
    fn one_model_two_renderings() {
        let addr: SocketAddr = "10.0.0.1:4191".parse().unwrap();
        let workloads = [
            ("ns".to_string(), "api".to_string(), addr),
            ("ns".to_string(), "gone".to_string(), addr),
        ];
        let stats = [
            Some(WorkloadStat {
                meshed: true,
                success: Some(0.95),
                rps: 4.0,
                p50_ms: Some(0.35),
                p95_ms: Some(1.23),
                p99_ms: Some(250.0),
                mtls: Some(1.0),
                tcp_connections: 3.0,
            }),
            None,
        ];
        let rows = stat_rows(&workloads, &stats);
        assert_eq!(
            stat_table(&rows)[1..],
            [
                [
                    "ns", "api", "yes", "95.00%", "4.0", "0.35ms", "1.2ms", "250ms", "100.00%", "3"
                ]
                .map(String::from),
                ["ns", "gone", "no", "-", "-", "-", "-", "-", "-", "-"].map(String::from),
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&crate::table::json(&rows)).unwrap();
        let api = &json[0];
        assert_eq!(api["namespace"], "ns");
        assert_eq!(api["name"], "api");
        assert_eq!(api["meshed"], true);
        assert_eq!(api["success_rate"], 0.95);
        assert_eq!(api["rps"], 4.0);
        assert_eq!(api["latency_ms_p50"], 0.35);
        assert_eq!(api["latency_ms_p99"], 250.0);
        assert_eq!(api["tls_share"], 1.0);
        assert_eq!(api["tcp_connections"], 3.0);
        assert_eq!(json[1]["meshed"], false);
        assert!(json[1]["success_rate"].is_null());
    }
}
