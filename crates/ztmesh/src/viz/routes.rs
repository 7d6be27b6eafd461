//! `ztmesh viz routes` and `ztmesh viz edges`: what each proxy's metrics
//! say about routes (ServiceProfile and HTTPRoute, from the client side)
//! and about who talks to whom, with which identities.

use super::scrape::Sample;
use std::collections::BTreeMap;

/// Per (destination, route): requests, success rate, retries, timeouts,
/// retries the budget refused, all since the proxy started.
pub fn route_rows(samples: &[Sample]) -> Vec<[String; 7]> {
    let mut by: BTreeMap<(String, String), [f64; 6]> = BTreeMap::new();
    for s in samples {
        let idx = match s.name.as_str() {
            "outbound_route_request_total" => 0,
            "outbound_route_response_total" => 1,
            "outbound_route_retry_total" => 3,
            "outbound_route_timeout_total" => 4,
            "outbound_route_retry_budget_exhausted_total" => 5,
            _ => continue,
        };
        let key = (
            s.labels.get("dst").cloned().unwrap_or_default(),
            s.labels.get("route_name").cloned().unwrap_or_default(),
        );
        let e = by.entry(key).or_default();
        e[idx] += s.value;
        if idx == 1 && s.labels.get("classification").map(String::as_str) == Some("failure") {
            e[2] += s.value;
        }
    }
    by.into_iter()
        .map(|((dst, route), v)| {
            let success = if v[1] > 0.0 {
                format!("{:.2}%", (1.0 - v[2] / v[1]) * 100.0)
            } else {
                "-".into()
            };
            [
                dst,
                route,
                format!("{}", v[0]),
                success,
                format!("{}", v[3]),
                format!("{}", v[4]),
                format!("{}", v[5]),
            ]
        })
        .collect()
}

/// One edge: who connected to whom (from this proxy's inbound side: the
/// clients; from its outbound side: the servers), and whether it was mTLS.
pub fn edge_rows(workload: &str, samples: &[Sample]) -> Vec<[String; 4]> {
    let mut edges: BTreeMap<[String; 4], ()> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == "tcp_open_total") {
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let secured = if label("tls") == "true" {
            "yes (mTLS)".to_string()
        } else {
            format!("no: {}", label("no_tls_reason"))
        };
        let edge = match label("direction").as_str() {
            "inbound" => {
                let from = match label("client_id") {
                    id if !id.is_empty() => id,
                    _ => "(unmeshed client)".into(),
                };
                [from, workload.to_string(), label("target_addr"), secured]
            }
            "outbound" => {
                let to = match label("server_id") {
                    id if !id.is_empty() => id,
                    _ => label("target_addr"),
                };
                [workload.to_string(), to, label("target_addr"), secured]
            }
            _ => continue,
        };
        edges.insert(edge, ());
    }
    edges.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::scrape::sample;

    #[test]
    fn routes_and_edges_tables() {
        let r = [("dst", "api"), ("route_name", "GET /api/users")];
        let samples = vec![
            sample("outbound_route_request_total", &r, 100.0),
            sample("outbound_route_retry_total", &r, 7.0),
            sample("outbound_route_timeout_total", &r, 1.0),
            sample(
                "outbound_route_response_total",
                &[
                    ("dst", "api"),
                    ("route_name", "GET /api/users"),
                    ("classification", "success"),
                ],
                98.0,
            ),
            sample(
                "outbound_route_response_total",
                &[
                    ("dst", "api"),
                    ("route_name", "GET /api/users"),
                    ("classification", "failure"),
                ],
                2.0,
            ),
        ];
        assert_eq!(
            route_rows(&samples),
            vec![["api", "GET /api/users", "100", "98.00%", "7", "1", "0"].map(String::from)]
        );
        let edges = vec![
            sample(
                "tcp_open_total",
                &[
                    ("direction", "inbound"),
                    ("target_addr", "10.0.0.2:80"),
                    ("tls", "true"),
                    ("client_id", "web.ns"),
                ],
                3.0,
            ),
            sample(
                "tcp_open_total",
                &[
                    ("direction", "inbound"),
                    ("target_addr", "10.0.0.2:80"),
                    ("tls", "no_identity"),
                    ("no_tls_reason", "no_tls_from_remote"),
                ],
                1.0,
            ),
            sample(
                "tcp_open_total",
                &[
                    ("direction", "outbound"),
                    ("target_addr", "10.0.0.3:80"),
                    ("tls", "true"),
                    ("server_id", "db.ns"),
                ],
                1.0,
            ),
        ];
        assert_eq!(
            edge_rows("ns/api", &edges),
            vec![
                [
                    "(unmeshed client)",
                    "ns/api",
                    "10.0.0.2:80",
                    "no: no_tls_from_remote"
                ]
                .map(String::from),
                ["ns/api", "db.ns", "10.0.0.3:80", "yes (mTLS)"].map(String::from),
                ["web.ns", "ns/api", "10.0.0.2:80", "yes (mTLS)"].map(String::from),
            ]
        );
    }
}
