//! `ztmesh viz routes` and `ztmesh viz edges`: what each proxy's metrics
//! say about routes (ServiceProfile and HTTPRoute, from the client side)
//! and about who talks to whom, with which identities. The rows, their
//! tables and JSON are the same from the CLI and from the viz API.

use super::scrape::Sample;
use crate::table::Output;
use std::collections::BTreeMap;

/// One route as one client's proxy saw it, since it started.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct RouteRow {
    /// The client workload, `NAMESPACE/NAME`.
    pub from: String,
    pub dst: String,
    pub route: String,
    pub requests: f64,
    /// Fraction 0..1; None before any response.
    pub success_rate: Option<f64>,
    pub retries: f64,
    pub timeouts: f64,
    /// Retries the budget refused.
    pub budget_exhausted: f64,
}

/// Per (destination, route) of workload `from`: requests, success rate,
/// retries, timeouts, retries the budget refused.
pub fn route_rows(from: &str, samples: &[Sample]) -> Vec<RouteRow> {
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
        .map(|((dst, route), v)| RouteRow {
            from: from.to_string(),
            dst,
            route,
            requests: v[0],
            success_rate: (v[1] > 0.0).then(|| 1.0 - v[2] / v[1]),
            retries: v[3],
            timeouts: v[4],
            budget_exhausted: v[5],
        })
        .collect()
}

/// The route rows of every scraped workload (`NAMESPACE/NAME` each).
pub fn all_route_rows(
    workloads: &[(String, String, std::net::SocketAddr)],
    scraped: &[Option<Vec<Sample>>],
) -> Vec<RouteRow> {
    workloads
        .iter()
        .zip(scraped)
        .flat_map(|((ns, name, _), samples)| {
            route_rows(
                &format!("{ns}/{name}"),
                samples.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

/// The routes as `viz routes` prints them (and the viz API answers them).
pub fn render_routes(rows: &[RouteRow], output: Output) -> String {
    match output {
        Output::Json => crate::table::json(rows),
        Output::Table | Output::Wide => crate::table::render(&route_table(rows)),
    }
}

/// The edges as `viz edges` prints them (and the viz API answers them).
pub fn render_edges(rows: &[EdgeRow], output: Output) -> String {
    match output {
        Output::Json => crate::table::json(rows),
        Output::Table => crate::table::render(&edge_table(rows, false)),
        Output::Wide => crate::table::render(&edge_table(rows, true)),
    }
}

/// The routes table (header first); it drops no column.
pub fn route_table(rows: &[RouteRow]) -> Vec<[String; 8]> {
    let mut table = vec![
        [
            "FROM",
            "DST",
            "ROUTE",
            "REQUESTS",
            "SUCCESS",
            "RETRIES",
            "TIMEOUTS",
            "BUDGET_EXHAUSTED",
        ]
        .map(String::from),
    ];
    for r in rows {
        table.push([
            r.from.clone(),
            r.dst.clone(),
            r.route.clone(),
            format!("{}", r.requests),
            r.success_rate
                .map(|v| format!("{:.2}%", v * 100.0))
                .unwrap_or("-".into()),
            format!("{}", r.retries),
            format!("{}", r.timeouts),
            format!("{}", r.budget_exhausted),
        ]);
    }
    table
}

/// One edge, once: who connected to whom, merged from the client's
/// outbound side and the server's inbound side.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct EdgeRow {
    /// The client: a workload (`NAMESPACE/NAME`) when known, else its
    /// identity, else `(unmeshed client)`.
    pub src: String,
    /// The server: a workload when known, else its identity or address.
    pub dst: String,
    /// The address the client dialed (or the server was reached at).
    pub target_addr: String,
    pub tls: bool,
    pub no_tls_reason: Option<String>,
    pub src_identity: Option<String>,
    pub dst_identity: Option<String>,
}

/// `NAME.NS.serviceaccount.identity...` names the workload `NS/NAME` (a
/// pod or an external workload) when the name is in the list.
fn by_convention(id: &str, names: &[String]) -> Option<String> {
    let (sa, rest) = id.split_once('.')?;
    let (ns, rest) = rest.split_once('.')?;
    if !rest.starts_with("serviceaccount.") {
        return None;
    }
    let mut found = names
        .iter()
        .filter(|n| **n == format!("{ns}/{sa}") || **n == format!("{ns}/externalworkload/{sa}"));
    let first = found.next()?;
    found.next().is_none().then(|| first.clone())
}

/// Every edge once, from every scraped workload's `tcp_open_total`: the
/// client side names the server by address (mapped to the workload at that
/// IP) and identity; the server side names the client by identity, mapped
/// to a workload by what the client sides learned (server identity at a
/// workload's address) or by the identity's service-account convention.
pub fn edges(
    workloads: &[(String, String, std::net::SocketAddr)],
    scraped: &[Option<Vec<Sample>>],
) -> Vec<EdgeRow> {
    let names: Vec<String> = workloads
        .iter()
        .map(|(ns, n, _)| format!("{ns}/{n}"))
        .collect();
    let by_ip: BTreeMap<std::net::IpAddr, &String> = workloads
        .iter()
        .zip(&names)
        .map(|((_, _, a), n)| (a.ip(), n))
        .collect();
    let opens = || {
        names.iter().zip(scraped).flat_map(|(n, s)| {
            let samples = s.as_deref().unwrap_or_default();
            let used = with_traffic(samples);
            samples
                .iter()
                .filter(move |s| s.name == "tcp_open_total" && !handshake_only(s, &used))
                .map(move |s| (n, s))
        })
    };
    let label = |s: &Sample, k: &str| s.labels.get(k).filter(|v| !v.is_empty()).cloned();
    let at = |target: &str| {
        target
            .parse::<std::net::SocketAddr>()
            .ok()
            .and_then(|a| by_ip.get(&a.ip()).map(|n| (*n).clone()))
    };
    // Identities learned from client sides: the server's at its address.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (_, s) in opens().filter(|(_, s)| label(s, "direction").as_deref() == Some("outbound")) {
        if let (Some(id), Some(w)) = (
            label(s, "server_id"),
            at(&label(s, "target_addr").unwrap_or_default()),
        ) {
            ids.insert(id, w);
        }
    }
    let workload_of = |id: &str| ids.get(id).cloned().or_else(|| by_convention(id, &names));
    let mut merged: BTreeMap<(String, String), EdgeRow> = BTreeMap::new();
    // Server sides first: the client sides' view of target and TLS wins.
    let mut sides: Vec<(bool, &String, &Sample)> = Vec::new();
    for (n, s) in opens() {
        match label(s, "direction").as_deref() {
            Some("inbound") => sides.insert(0, (true, n, s)),
            Some("outbound") => sides.push((false, n, s)),
            _ => {}
        }
    }
    for (inbound, n, s) in sides {
        let target = label(s, "target_addr").unwrap_or_default();
        let tls = label(s, "tls").as_deref() == Some("true");
        let reason = (!tls).then(|| label(s, "no_tls_reason").unwrap_or_default());
        let (src, dst, src_id, dst_id) = if inbound {
            let id = label(s, "client_id");
            let src = match &id {
                Some(id) => workload_of(id).unwrap_or_else(|| id.clone()),
                None => "(unmeshed client)".into(),
            };
            (src, n.clone(), id, None)
        } else {
            let id = label(s, "server_id");
            let dst = at(&target)
                .or_else(|| id.as_deref().and_then(workload_of))
                .or_else(|| id.clone())
                .unwrap_or_else(|| target.clone());
            (n.clone(), dst, None, id)
        };
        let e = merged
            .entry((src.clone(), dst.clone()))
            .or_insert_with(|| EdgeRow {
                src,
                dst,
                target_addr: target.clone(),
                tls,
                no_tls_reason: reason.clone(),
                src_identity: None,
                dst_identity: None,
            });
        if !inbound {
            e.target_addr = target;
            e.tls = tls;
            e.no_tls_reason = reason;
        }
        e.src_identity = e.src_identity.take().or(src_id);
        e.dst_identity = e.dst_identity.take().or(dst_id);
    }
    merged.into_values().collect()
}

/// The label sets of connection series that carried data or are still
/// open (see [`handshake_only`]).
pub(crate) fn with_traffic(samples: &[Sample]) -> Vec<&BTreeMap<String, String>> {
    samples
        .iter()
        .filter(|s| {
            (s.name == "tcp_read_bytes_total" || s.name == "tcp_open_connections") && s.value > 0.0
        })
        .map(|s| &s.labels)
        .collect()
}

/// A `tcp_open_total` series of TLS connections without a client
/// certificate that carried nothing and are closed: handshakes only, as
/// `ztmesh check` (and the viz API's `/compliance`) makes when it reads a
/// proxy's certificate chain. Not an edge; a real client's connections
/// carry data or stay open.
pub(crate) fn handshake_only(s: &Sample, with_traffic: &[&BTreeMap<String, String>]) -> bool {
    s.name == "tcp_open_total"
        && s.labels.get("no_tls_reason").map(String::as_str) == Some("no_client_certificate")
        && !with_traffic.contains(&&s.labels)
}

/// The edges table (header first); `wide` adds both sides' identities.
pub fn edge_table(rows: &[EdgeRow], wide: bool) -> Vec<Vec<String>> {
    let mut header = vec!["SRC", "DST", "TARGET", "SECURED"];
    if wide {
        header.extend(["SRC_IDENTITY", "DST_IDENTITY"]);
    }
    let mut table = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for r in rows {
        let secured = if r.tls {
            "yes (mTLS)".to_string()
        } else {
            format!("no: {}", r.no_tls_reason.as_deref().unwrap_or_default())
        };
        let mut row = vec![r.src.clone(), r.dst.clone(), r.target_addr.clone(), secured];
        if wide {
            for id in [&r.src_identity, &r.dst_identity] {
                row.push(id.clone().unwrap_or("-".into()));
            }
        }
        table.push(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::scrape::sample;

    #[test]
    fn routes_table_and_json() {
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
        let rows = route_rows("ns/web", &samples);
        assert_eq!(
            route_table(&rows)[1..],
            [[
                "ns/web",
                "api",
                "GET /api/users",
                "100",
                "98.00%",
                "7",
                "1",
                "0"
            ]
            .map(String::from)]
        );
        let json: serde_json::Value = serde_json::from_str(&crate::table::json(&rows)).unwrap();
        assert_eq!(json[0]["from"], "ns/web");
        assert_eq!(json[0]["route"], "GET /api/users");
        assert_eq!(json[0]["requests"], 100.0);
        assert_eq!(json[0]["success_rate"], 0.98);
        assert_eq!(json[0]["retries"], 7.0);
        assert_eq!(json[0]["budget_exhausted"], 0.0);
    }

    fn open(labels: &[(&str, &str)]) -> Sample {
        sample("tcp_open_total", labels, 1.0)
    }

    #[test]
    fn each_edge_once_from_both_sides() {
        let at = |s: &str| s.parse().unwrap();
        let workloads = [
            ("ns".to_string(), "api".to_string(), at("10.0.0.2:4191")),
            ("ns".to_string(), "db".to_string(), at("10.0.0.3:4191")),
            ("ns".to_string(), "web".to_string(), at("10.0.0.1:4191")),
        ];
        let api = vec![
            // web -> api, seen by api: web by its identity.
            open(&[
                ("direction", "inbound"),
                ("target_addr", "10.0.0.2:80"),
                ("tls", "true"),
                (
                    "client_id",
                    "web.ns.serviceaccount.identity.linkerd.cluster.local",
                ),
            ]),
            open(&[
                ("direction", "inbound"),
                ("target_addr", "10.0.0.2:80"),
                ("tls", "no_identity"),
                ("no_tls_reason", "no_tls_from_remote"),
            ]),
            // api -> db, seen by api.
            open(&[
                ("direction", "outbound"),
                ("target_addr", "10.0.0.3:80"),
                ("tls", "true"),
                (
                    "server_id",
                    "database.ns.serviceaccount.identity.linkerd.cluster.local",
                ),
            ]),
        ];
        let probe = [
            ("direction", "inbound"),
            ("target_addr", "10.0.0.3:80"),
            ("tls", "no_identity"),
            ("no_tls_reason", "no_client_certificate"),
        ];
        let db = vec![
            // `ztmesh check` read db's chain: a handshake, no data, closed.
            open(&probe),
            sample("tcp_read_bytes_total", &probe, 0.0),
            // api -> db, seen by db: api's identity follows no name.
            open(&[
                ("direction", "inbound"),
                ("target_addr", "10.0.0.3:80"),
                ("tls", "true"),
                (
                    "client_id",
                    "apisa.ns.serviceaccount.identity.linkerd.cluster.local",
                ),
            ]),
        ];
        let web = vec![
            // web -> api, seen by web.
            open(&[
                ("direction", "outbound"),
                ("target_addr", "10.0.0.2:80"),
                ("tls", "true"),
                (
                    "server_id",
                    "apisa.ns.serviceaccount.identity.linkerd.cluster.local",
                ),
            ]),
        ];
        let rows = edges(&workloads, &[Some(api), Some(db), Some(web)]);
        let table = edge_table(&rows, false);
        let lines: Vec<String> = table.iter().map(|r| r.join(" | ")).collect();
        assert_eq!(
            lines,
            [
                "SRC | DST | TARGET | SECURED",
                "(unmeshed client) | ns/api | 10.0.0.2:80 | no: no_tls_from_remote",
                "ns/api | ns/db | 10.0.0.3:80 | yes (mTLS)",
                "ns/web | ns/api | 10.0.0.2:80 | yes (mTLS)",
            ]
        );
        assert_eq!(edge_table(&rows, true)[0].len(), 6);
        let json: serde_json::Value = serde_json::from_str(&crate::table::json(&rows)).unwrap();
        let web_api = &json[2];
        assert_eq!(web_api["src"], "ns/web");
        assert_eq!(web_api["dst"], "ns/api");
        assert_eq!(web_api["tls"], true);
        assert_eq!(
            web_api["src_identity"],
            "web.ns.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            web_api["dst_identity"],
            "apisa.ns.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(json[0]["no_tls_reason"], "no_tls_from_remote");
    }
}
