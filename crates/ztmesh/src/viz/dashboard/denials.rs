//! Recent denials with their reasons, from the proxies' own authorization
//! metrics (`inbound_http_authz_deny_total`, `inbound_http_route_not_found_total`,
//! `inbound_tcp_authz_deny_total`): one row per series, its count, and the
//! reason in words from its labels (which server, which route, which
//! client). The dashboard differences two answers to show what is recent.
//! Pure.

use crate::viz::scrape::Sample;

/// One denied series of one workload's proxy.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct DenialRow {
    /// `NS/NAME` of the workload whose proxy denied.
    pub workload: String,
    /// `http`, `route` (no route matched) or `tcp`.
    pub kind: &'static str,
    /// `KIND/NAME` of the server.
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The client's identity, or `unauthenticated (REASON)`.
    pub client: String,
    pub target_addr: String,
    pub count: f64,
    /// Why, in words.
    pub reason: String,
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The denial rows of `workload`'s proxy, in the order of its samples.
pub fn denial_rows(workload: &str, samples: &[Sample]) -> Vec<DenialRow> {
    samples
        .iter()
        .filter_map(|s| {
            let kind = match s.name.as_str() {
                "inbound_http_authz_deny_total" => "http",
                "inbound_http_route_not_found_total" => "route",
                "inbound_tcp_authz_deny_total" => "tcp",
                _ => return None,
            };
            let pair = |k: &str, n: &str| Some(format!("{}/{}", label(s, k)?, label(s, n)?));
            let server = pair("srv_kind", "srv_name").unwrap_or_else(|| "-".into());
            let route = pair("route_kind", "route_name");
            let client = match (label(s, "tls"), label(s, "client_id")) {
                (Some("true"), Some(id)) => id.to_string(),
                (Some("true"), None) => "a TLS client without a mesh identity".into(),
                _ => format!(
                    "unauthenticated ({})",
                    label(s, "no_tls_reason").unwrap_or("no TLS")
                ),
            };
            let on = match &route {
                Some(r) => format!("{server} route {r}"),
                None => server.clone(),
            };
            let reason = match kind {
                "route" => format!("no route of {server} matches the request from {client}"),
                "tcp" => format!("no authorization on {server} admits connections from {client}"),
                _ => format!("no authorization on {on} admits {client}"),
            };
            Some(DenialRow {
                workload: workload.to_string(),
                kind,
                route,
                client,
                target_addr: label(s, "target_addr").unwrap_or("-").to_string(),
                count: s.value,
                reason,
                server,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn each_denial_has_its_reason() {
        let srv = [
            ("srv_kind", "server"),
            ("srv_name", "authors-server"),
            ("target_addr", "127.0.9.2:7001"),
        ];
        let with = |more: &[(&'static str, &'static str)]| {
            srv.iter().chain(more).copied().collect::<Vec<_>>()
        };
        let samples = [
            sample("request_total", &with(&[("tls", "true")]), 9.0),
            sample(
                "inbound_http_authz_deny_total",
                &with(&[
                    ("route_kind", "route"),
                    ("route_name", "authors-get"),
                    ("tls", "true"),
                    (
                        "client_id",
                        "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local",
                    ),
                ]),
                442.0,
            ),
            sample(
                "inbound_http_authz_deny_total",
                &with(&[("tls", "no_identity"), ("no_tls_reason", "plaintext")]),
                1.0,
            ),
            sample(
                "inbound_http_route_not_found_total",
                &with(&[("tls", "true"), ("client_id", "webapp.id")]),
                2.0,
            ),
            sample(
                "inbound_tcp_authz_deny_total",
                &with(&[("tls", "false")]),
                3.0,
            ),
        ];
        let rows = denial_rows("booksapp/externalworkload/authors", &samples);
        let got: Vec<(&str, f64, &str)> = rows
            .iter()
            .map(|r| (r.kind, r.count, r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "http",
                    442.0,
                    "no authorization on server/authors-server route route/authors-get admits traffic.booksapp.serviceaccount.identity.linkerd.cluster.local"
                ),
                (
                    "http",
                    1.0,
                    "no authorization on server/authors-server admits unauthenticated (plaintext)"
                ),
                (
                    "route",
                    2.0,
                    "no route of server/authors-server matches the request from webapp.id"
                ),
                (
                    "tcp",
                    3.0,
                    "no authorization on server/authors-server admits connections from unauthenticated (no TLS)"
                ),
            ]
        );
        assert_eq!(rows[0].target_addr, "127.0.9.2:7001");
    }
}
