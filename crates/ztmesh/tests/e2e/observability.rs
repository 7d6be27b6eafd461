//! The observability files under `deploy/observability/` against the real
//! proxy: the alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`: each alert fires on a series that crosses its
//! threshold and not on one that does not), and every metric the rules and
//! the Grafana dashboard query is one a running proxy exports.

use crate::support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/observability")
}

/// Metric names a PromQL text refers to (`name{` or `name[`).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\{\[]").unwrap();
    let keywords = [
        "by",
        "on",
        "group_left",
        "group_right",
        "without",
        "ignoring",
    ];
    re.captures_iter(promql)
        .map(|c| c[1].to_string())
        .filter(|n| !keywords.contains(&n.as_str()))
        .collect()
}

async fn get(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    require_tool("promtool");
    let check = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(deploy().join("prometheus-rules.yaml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", describe(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 8 rules found"));
    let test = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(deploy().join("prometheus-rules.test.yaml"))
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", describe(&test));
}

/// The dashboard's query of the panel titled `title` (its first target),
/// for every instance.
fn dashboard_query(title: &str) -> String {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"));
    panel["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .replace("$instance", ".*")
}

/// `promtool test rules` on the dashboard's own queries: the success rate
/// is 1 where nothing failed (not "no data", as `1 - failures/total`
/// was), 0 where nothing succeeded; a counter no request has hit yet
/// (denials) reads 0.
#[test]
fn dashboard_answers_where_nothing_failed() {
    require_tool("promtool");
    let series = |labels: &str| {
        serde_json::json!({
            "series": format!("response_total{{direction=\"inbound\",{labels}}}"),
            "values": "0+60x10",
        })
    };
    let tests = serde_json::json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                series("instance=\"ok\",classification=\"success\",status_code=\"200\""),
                series("instance=\"bad\",classification=\"failure\",status_code=\"503\""),
                series("instance=\"half\",classification=\"success\",status_code=\"200\""),
                series("instance=\"half\",classification=\"failure\",status_code=\"503\""),
            ],
            "promql_expr_test": [
                {
                    "expr": dashboard_query("Errors: success rate"),
                    "eval_time": "5m",
                    "exp_samples": [
                        {"labels": "{instance=\"ok\"}", "value": 1},
                        {"labels": "{instance=\"bad\"}", "value": 0},
                        {"labels": "{instance=\"half\"}", "value": 0.5},
                    ],
                },
                {
                    "expr": dashboard_query("Denied requests"),
                    "eval_time": "5m",
                    "exp_samples": [{"labels": "{}", "value": 0}],
                },
                {
                    "expr": dashboard_query("Denied and terminated connections"),
                    "eval_time": "5m",
                    "exp_samples": [{"labels": "{}", "value": 0}],
                },
            ],
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    // YAML reads JSON.
    let file = dir.path().join("dashboard.test.yaml");
    std::fs::write(&file, tests.to_string()).unwrap();
    let test = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", describe(&test));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_query_what_the_proxy_exports() {
    // A proxy with some traffic, so every family is on /metrics.
    let mesh = LocalMesh::start(|_| {});
    let token = mesh.token("booksapp", "books");
    let app = "127.0.6.2:18300";
    let mut server = unprivileged_ztmesh();
    server.args(["app", "serve", "--name", "books", "--http", app]);
    let mut server = Daemon::spawn(server);
    server.wait_for("HTTP on", Duration::from_secs(10));
    let _proxy = explicit_proxy(
        &mesh.control_plane(),
        "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &token,
        app,
        &[],
    );
    let body = get("127.0.6.2:4143", "/books").await;
    assert_eq!(body, "books:GET /books");
    let metrics = get("127.0.6.2:4191", "/metrics").await;
    let mut exported: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .flat_map(|(name, kind)| {
            let mut names = vec![name.clone()];
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            names
        })
        .collect();

    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy().join("prometheus-rules.yaml")).unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            // Recording rules define names too.
            if let Some(name) = rule["record"].as_str() {
                exported.insert(name.to_string());
            }
            queried.extend(metric_names(rule["expr"].as_str().unwrap()));
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    for e in &exprs {
        queried.extend(metric_names(e));
    }
    let unknown: Vec<&String> = queried.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "queried but not exported: {unknown:?}\nexported: {exported:?}"
    );
    // The golden signals are all there.
    for family in [
        "request_total",
        "response_total",
        "response_latency_ms_bucket",
        "process_resident_memory_bytes",
        "inbound_http_authz_deny_total",
        "outbound_route_retry_total",
    ] {
        assert!(queried.contains(family), "{family} is not queried");
    }
}
