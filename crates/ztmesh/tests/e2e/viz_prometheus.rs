//! `viz stat` from a real Prometheus server (`--prometheus URL`), in the
//! controller's viz API and in the CLI: Prometheus scrapes the proxies'
//! admin ports (static targets, every second) and the figures come from
//! PromQL over its history, matched to workloads by admin address.

use crate::support;

use std::time::Duration;
use support::*;

const AUTHORS: &str = "127.0.7.6";
const NOBODY: &str = "127.0.7.7";
const PROMETHEUS: &str = "127.0.7.9:9090";

fn manifests() -> String {
    [
        booksapp_workload("authors", AUTHORS),
        booksapp_workload("nobody", NOBODY),
    ]
    .join("---\n")
}

/// Debian's Prometheus server, scraping both workloads' admin ports every
/// second; returned once it serves queries.
fn prometheus(dir: &std::path::Path) -> Daemon {
    require_tool("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: linkerd-proxy\n    static_configs:\n      - targets: ['{AUTHORS}:4191', '{NOBODY}:4191']\n"
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={PROMETHEUS}"));
    let mut daemon = Daemon::spawn(cmd);
    daemon.wait_for(
        "Server is ready to receive web requests",
        Duration::from_secs(30),
    );
    // Scraping starts a few seconds after the server is ready (the scrape
    // manager applies its targets every 5 s): wait for the first scrape of
    // authors' proxy, so the load below is all in Prometheus' history.
    require_tool("curl");
    eventually(
        Duration::from_secs(20),
        "Prometheus' first scrape of authors' proxy",
        || {
            let up = prometheus_query(&format!("up{{instance=\"{AUTHORS}:4191\"}}"));
            let scraped = up["data"]["result"][0]["value"][1] == "1";
            check(scraped, (up, daemon.output()))
        },
    );
    daemon
}

/// An instant query's answer (JSON) from the Prometheus server.
fn prometheus_query(query: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "-G", &format!("http://{PROMETHEUS}/api/v1/query")])
        .args(["--data-urlencode", &format!("query={query}")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The authors row shows the load (20 requests/s, all successful, latency
/// figures) and nobody (no proxy: its scrape is down) is unmeshed.
fn assert_figures(out: &str) {
    let authors = table_row(out, "externalworkload/authors");
    assert_eq!(
        (authors[2].as_str(), authors[3].as_str()),
        ("yes", "100.00%"),
        "{out}"
    );
    assert_eq!(authors[4], "0", "nothing denied: {out}");
    let rps: f64 = authors[5].parse().unwrap();
    assert!((14.0..=26.0).contains(&rps), "rps {rps}:\n{out}");
    for p in &authors[6..9] {
        assert!(p.ends_with("ms"), "latency {p}:\n{out}");
    }
    assert_eq!(authors[9], "0.00%", "plaintext clients: {out}");
    assert_eq!(table_row(out, "externalworkload/nobody")[2], "no", "{out}");
}

#[test]
fn stat_from_prometheus_in_the_controller_and_the_cli() {
    let url = format!("http://{PROMETHEUS}");
    let mesh = LocalMesh::start_with(
        |m| std::fs::write(m.join("w.yaml"), manifests()).unwrap(),
        &["--prometheus", &url],
    );
    let said = mesh.controller.output();
    assert!(
        said.contains(&format!("figures from Prometheus at {url}")),
        "{said}"
    );
    let _authors = mesh.run_booksapp_workload("authors", AUTHORS);
    let _prometheus = prometheus(mesh.tmp.path());

    // 20 requests per second for 10 s, straight to the inbound port; asked
    // about the last 5 s once Prometheus holds about 6.5 s of it.
    let load = load_in_background(&format!("http://{AUTHORS}:4143/authors.json"), 20, 10);
    eventually(
        Duration::from_secs(20),
        "Prometheus holding 130 of authors' requests",
        || {
            let seen = prometheus_query(&format!(
                "sum(request_total{{instance=\"{AUTHORS}:4191\",direction=\"inbound\"}})"
            ));
            let served = seen["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            check(served.is_some_and(|n| n >= 130.0), seen)
        },
    );
    // Through the controller: answered from Prometheus, without waiting
    // out the window.
    let asked = tokio::time::Instant::now();
    let via_controller = run_ok(ztmesh().args([
        "viz",
        "stat",
        "-n",
        "booksapp",
        "--window",
        "5s",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "took {:?}",
        asked.elapsed()
    );
    let via_cli = run_ok(
        ztmesh()
            .args(["viz", "stat", "-n", "booksapp", "--window", "5s"])
            .args(["--prometheus", &url, "--manifests"])
            .arg(&mesh.manifests),
    );
    let loaded = load.join().unwrap();
    assert!(loaded.contains("ok=200"), "{loaded}");
    eprintln!("through the controller:\n{via_controller}\nthe CLI:\n{via_cli}");
    assert_figures(&via_controller);
    assert_figures(&via_cli);

    // Clear errors: a server that is not there, a URL that is not http.
    for (url, reason) in [
        (
            "http://127.0.7.9:1",
            "querying Prometheus at http://127.0.7.9:1",
        ),
        ("https://127.0.7.9:9090", "must start with http://"),
    ] {
        let err = run_err(
            ztmesh()
                .args(["viz", "stat", "--prometheus", url, "--manifests"])
                .arg(&mesh.manifests),
        );
        assert!(err.contains(reason), "{err}");
    }
}
