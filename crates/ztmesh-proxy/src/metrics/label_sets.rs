//! The label keys of every family, in order, against linkerd2-proxy's
//! (read from its source: `EndpointLabels`, `transport::labels::Key`,
//! `ServerLabel`/`RouteLabels`/`RouteAuthzLabels`, the authz metrics and
//! the request report). A missing, extra or reordered label fails.
//!
//! A deliberate difference: `error` is always empty (a failure the proxy
//! answers is a response, counted with its status).

use super::{DstLabels, HttpMetrics, StatsKey, TcpMetrics, TlsLabel, permit_labels, server_labels};
use crate::authz_metrics::{AuthzLabels, AuthzMetrics, Family};
use std::collections::BTreeMap;

const TARGET: [&str; 3] = ["target_addr", "target_ip", "target_port"];
const SRV: [&str; 4] = ["srv_group", "srv_kind", "srv_name", "srv_port"];
const ROUTE: [&str; 3] = ["route_group", "route_kind", "route_name"];
const AUTHZ: [&str; 3] = ["authz_group", "authz_kind", "authz_name"];
const CLIENT: [&str; 2] = ["tls", "client_id"];
const SERVER: [&str; 2] = ["tls", "server_id"];
const DST: [&str; 4] = ["dst_deployment", "dst_namespace", "dst_pod", "dst_service"];

fn keys(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|k| k.to_string())
        .collect()
}

/// Each series line's name and label keys, in order (values may not
/// contain `"` here: every value below is plain).
fn series(text: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.rsplit_once('}').map(|(l, _)| l).unwrap_or_default();
        let keys = labels
            .split("\",")
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        out.entry(name.to_string()).or_default().push(keys);
    }
    out
}

#[test]
fn every_family_has_linkerd2_proxys_labels() {
    let inbound_target: std::net::SocketAddr = "10.0.0.2:7001".parse().unwrap();
    let endpoint: std::net::SocketAddr = "10.0.0.3:7001".parse().unwrap();
    let client = TlsLabel::Identified {
        client_id: "web.ns.serviceaccount.identity.linkerd.cluster.local".into(),
    };
    let server = TlsLabel::ServerIdentified {
        server_id: "authors.ns.serviceaccount.identity.linkerd.cluster.local".into(),
    };
    let dst_labels: BTreeMap<String, String> = [
        ("deployment", "authors"),
        ("namespace", "booksapp"),
        ("pod", "authors-1"),
        ("service", "authors"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dst = DstLabels::new(&dst_labels);

    // Inbound and outbound requests, one response each.
    let http = HttpMetrics::default();
    let permit = permit_labels(
        ("server", "authors"),
        7001,
        ("httproute", "authors-get"),
        ("authorizationpolicy", "authors"),
    );
    let none = DstLabels::default();
    let inbound = StatsKey {
        direction: "inbound",
        authority: None,
        target: inbound_target,
        policy: &permit,
        dst: &none,
    };
    let outbound = StatsKey {
        direction: "outbound",
        authority: Some("authors.booksapp.svc.cluster.local:7001"),
        target: endpoint,
        policy: &super::PolicyLabels::NONE,
        dst: &dst,
    };
    // Outbound to a pod's address: no authority.
    let by_address = StatsKey {
        authority: None,
        ..outbound
    };
    for (key, tls) in [
        (&inbound, &client),
        (&outbound, &server),
        (&by_address, &server),
    ] {
        let s = http.stats(key, tls);
        s.request();
        s.response(200, std::time::Duration::from_millis(1));
    }
    // Transport: inbound, outbound to a name, outbound to a pod's address.
    let tcp = TcpMetrics::default();
    tcp.open_inbound(
        inbound_target,
        &client,
        &server_labels("server", "authors", 7001),
    )
    .close(1, 1);
    tcp.open_outbound(
        Some("authors.booksapp.svc.cluster.local:7001"),
        endpoint,
        &server,
        &dst,
    )
    .close(1, 1);
    tcp.open_outbound(None, endpoint, &server, &dst).close(1, 1);
    // Authorization decisions.
    let authz = AuthzMetrics::default();
    let decision =
        |route: (&'static str, &'static str), a: (&'static str, &'static str)| AuthzLabels {
            target: inbound_target,
            server: ("server", "authors"),
            route,
            authz: a,
            tls: &client,
        };
    let no = ("", "");
    let route = ("httproute", "authors-get");
    let policy = ("authorizationpolicy", "authors");
    authz.record(Family::HttpAllow, &decision(route, policy));
    authz.record(Family::HttpDeny, &decision(route, no));
    authz.record(Family::HttpRouteNotFound, &decision(no, no));
    authz.record(Family::TcpAllow, &decision(no, policy));
    authz.record(Family::TcpDeny, &decision(no, no));
    authz.record(Family::TcpTerminate, &decision(no, no));

    let text = super::encode_text(|r| {
        http.register(r);
        tcp.register(r);
        authz.register(r);
    });
    let got = series(&text);

    let inbound_request = keys(&[&["direction"], &TARGET, &CLIENT, &SRV, &ROUTE, &AUTHZ]);
    let outbound_request = keys(&[&["direction", "authority"], &TARGET, &SERVER, &DST]);
    let by_address_request = keys(&[&["direction"], &TARGET, &SERVER, &DST]);
    let with = |base: &[String], extra: &[&str]| -> Vec<String> {
        base.iter()
            .cloned()
            .chain(extra.iter().map(|k| k.to_string()))
            .collect()
    };
    let response = ["status_code", "classification", "grpc_status", "error"];
    let inbound_conn = keys(&[&["direction", "peer"], &TARGET, &CLIENT, &SRV]);
    let opaque_conn = keys(&[&["direction", "peer", "authority"], &TARGET, &SERVER, &DST]);
    let by_address_conn = keys(&[&["direction", "peer"], &TARGET, &SERVER, &DST]);
    let conns = [inbound_conn, opaque_conn, by_address_conn];
    let requests = [inbound_request, outbound_request, by_address_request];
    let cases: Vec<(&str, Vec<Vec<String>>)> = vec![
        ("request_total", requests.to_vec()),
        (
            "response_total",
            requests.iter().map(|r| with(r, &response)).collect(),
        ),
        (
            "response_latency_ms_count",
            requests.iter().map(|r| with(r, &["status_code"])).collect(),
        ),
        ("tcp_open_total", conns.to_vec()),
        ("tcp_open_connections", conns.to_vec()),
        ("tcp_read_bytes_total", conns.to_vec()),
        ("tcp_write_bytes_total", conns.to_vec()),
        (
            "tcp_close_total",
            conns.iter().map(|c| with(c, &["errno"])).collect(),
        ),
        (
            "inbound_http_authz_allow_total",
            vec![keys(&[&TARGET, &SRV, &ROUTE, &AUTHZ, &CLIENT])],
        ),
        (
            "inbound_http_authz_deny_total",
            vec![keys(&[&TARGET, &SRV, &ROUTE, &CLIENT])],
        ),
        (
            "inbound_http_route_not_found_total",
            vec![keys(&[&TARGET, &SRV, &CLIENT])],
        ),
        (
            "inbound_tcp_authz_allow_total",
            vec![keys(&[&TARGET, &SRV, &AUTHZ, &CLIENT])],
        ),
        (
            "inbound_tcp_authz_deny_total",
            vec![keys(&[&TARGET, &SRV, &CLIENT])],
        ),
        (
            "inbound_tcp_authz_terminate_total",
            vec![keys(&[&TARGET, &SRV, &CLIENT])],
        ),
    ];
    for (family, mut want) in cases {
        let mut have = got.get(family).cloned().unwrap_or_default();
        have.sort();
        want.sort();
        assert_eq!(have, want, "{family} in\n{text}");
    }
}
