//! `ztmesh viz stat` against real proxies: a workload under a steady load
//! shows its request rate, success rate and latency; a workload without a
//! proxy shows as unmeshed. Workloads are picked by `KIND/NAME`; `viz
//! edges` and `viz routes` answer the same rows from the controller as from
//! the manifests; a controller records itself in its context file, where
//! `viz stat|edges|routes` without flags find it.

use crate::support;

use std::time::Duration;
use support::*;

const AUTHORS: &str = "127.0.7.2";
const NOBODY: &str = "127.0.7.3";
const WEBAPP: &str = "127.0.7.4";

fn manifests() -> String {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    let profile = "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: authors.booksapp.svc.cluster.local, namespace: booksapp}\nspec:\n  routes:\n    - name: GET /authors.json\n      condition: {method: GET, pathRegex: /authors.json}\n      timeout: 5s\n";
    [
        booksapp_workload("authors", AUTHORS),
        booksapp_workload("nobody", NOBODY),
        booksapp_workload("webapp", WEBAPP),
        service.to_string(),
        profile.to_string(),
    ]
    .join("---\n")
}

/// GET through webapp's proxy (mTLS to authors), absolute-form.
fn through_webapp(path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(format!("{WEBAPP}:4140")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET http://authors.booksapp.svc.cluster.local:7001{path} HTTP/1.1\r\nHost: authors.booksapp.svc.cluster.local:7001\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// 20 requests per second for `secs`, straight to authors' inbound port.
fn load_authors(secs: u32) -> std::thread::JoinHandle<String> {
    support::load_in_background(&format!("http://{AUTHORS}:4143/authors.json"), 20, secs)
}

/// The requests authors' proxy has served on its inbound side.
fn authors_inbound_requests() -> std::io::Result<f64> {
    admin_metric(
        &format!("{AUTHORS}:4191"),
        "request_total",
        &["direction=\"inbound\""],
    )
}

/// Waits (10 s at most) until authors' proxy has served `n` requests.
fn authors_served_at_least(n: f64) {
    eventually(
        Duration::from_secs(10),
        &format!("authors' proxy serving {n} requests of the load"),
        || match authors_inbound_requests() {
            Ok(served) => check(served >= n, format!("{served} served")),
            Err(e) => Err(format!("scrape: {e}")),
        },
    );
}

#[test]
fn stat_shows_rates_success_and_latency_per_workload() {
    let mesh = LocalMesh::start_with(
        |m| std::fs::write(m.join("w.yaml"), manifests()).unwrap(),
        &[],
    );
    let _authors = mesh.run_booksapp_workload("authors", AUTHORS);
    step("stat shows the load's rate, success and latency", || {
        stat_shows_the_load(&mesh)
    });
    step("KIND/NAME picks workloads", || {
        kind_name_picks_workloads(&mesh)
    });
    step("the controller aggregates the same figures", || {
        the_controller_aggregates(&mesh)
    });
    // webapp's proxy stays up for the steps after this one: routes are
    // its (the client's) figures.
    let _webapp = step("a meshed client shows routes and edges", || {
        routes_and_edges(&mesh)
    });
    step(
        "edges and routes: the controller answers the same rows",
        || the_controller_answers_edges_and_routes(&mesh),
    );
    step("a controller's context file is found without flags", || {
        found_by_the_context_file(&mesh)
    });
}

fn stat_shows_the_load(mesh: &LocalMesh<Daemon>) {
    // 20 requests per second for 8 s, straight to the inbound port; the
    // 3 s window is asked for once authors' proxy has served a second of it.
    let load = load_authors(8);
    authors_served_at_least(20.0);
    let out = run_ok(
        ztmesh()
            .args([
                "viz",
                "stat",
                "-n",
                "booksapp",
                "--window",
                "3s",
                "--manifests",
            ])
            .arg(&mesh.manifests),
    );
    // The same figures as JSON, over 2 s of what is left of the load.
    let json = run_ok(
        ztmesh()
            .args([
                "viz",
                "stat",
                "-n",
                "booksapp",
                "--window",
                "2s",
                "-o",
                "json",
                "--manifests",
            ])
            .arg(&mesh.manifests),
    );
    let loaded = load.join().unwrap();
    assert!(loaded.contains("ok=160"), "{loaded}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let named = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {json}"))
    };
    let authors = named("externalworkload/authors");
    assert_eq!(authors["namespace"], "booksapp", "{json}");
    assert_eq!(authors["meshed"], true, "{json}");
    assert_eq!(authors["success_rate"], 1.0, "{json}");
    assert_eq!(authors["tls_share"], 0.0, "plaintext clients: {json}");
    let rps = authors["rps"].as_f64().unwrap();
    assert!((8.0..=30.0).contains(&rps), "rps {rps}: {json}");
    let p50 = authors["latency_ms_p50"].as_f64().unwrap();
    let p99 = authors["latency_ms_p99"].as_f64().unwrap();
    assert!(p50 >= 0.0 && p50 <= p99, "{json}");
    let nobody = named("externalworkload/nobody");
    assert_eq!(nobody["meshed"], false, "{json}");
    assert!(nobody["rps"].is_null(), "{json}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE  NAME"), "{out}");
    let row = |name: &str| table_row(&out, name);
    let authors = row("externalworkload/authors");
    assert_eq!(authors[2], "yes", "{out}");
    assert_eq!(authors[3], "100.00%", "{out}");
    let rps: f64 = authors[4].parse().unwrap();
    assert!((14.0..=26.0).contains(&rps), "rps {rps}:\n{out}");
    assert!(
        authors[5].ends_with("ms") && authors[7].ends_with("ms"),
        "{out}"
    );
    assert_eq!(authors[8], "0.00%", "plaintext clients: {out}");
    let nobody = row("externalworkload/nobody");
    assert_eq!(nobody[2], "no", "{out}");
}

/// KIND/NAME picks workloads, from the manifests and through the
/// controller (`deploy/NAME`: the workloads labelled app=NAME); a name
/// that selects nothing says what exists; a kind the controller does not
/// index is refused.
fn kind_name_picks_workloads(mesh: &LocalMesh<Daemon>) {
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
            .collect()
    };
    let one = run_ok(
        ztmesh()
            .args([
                "viz",
                "stat",
                "ew/nobody",
                "--window",
                "100ms",
                "--manifests",
            ])
            .arg(&mesh.manifests),
    );
    assert_eq!(names(&one), ["externalworkload/nobody"], "{one}");
    let via = run_ok(ztmesh().args([
        "viz",
        "stat",
        "externalworkload/authors",
        "--window",
        "100ms",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    assert_eq!(names(&via), ["externalworkload/authors"], "{via}");
    for args in [
        &["deploy/authors", "-n", "booksapp"][..],
        &["deployment/authors"],
        &["sts/authors", "-n", "booksapp"],
    ] {
        let deploy = run_ok(
            ztmesh()
                .args(["viz", "stat", "--window", "100ms", "--manifests"])
                .arg(&mesh.manifests)
                .args(args),
        );
        assert_eq!(
            names(&deploy),
            ["externalworkload/authors"],
            "{args:?}: {deploy}"
        );
    }
    let via = run_ok(ztmesh().args([
        "viz",
        "stat",
        "deploy/authors",
        "-n",
        "booksapp",
        "--window",
        "100ms",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    assert_eq!(names(&via), ["externalworkload/authors"], "{via}");
    let none = run_err(
        ztmesh()
            .args(["viz", "stat", "pods", "-n", "booksapp", "--manifests"])
            .arg(&mesh.manifests),
    );
    assert!(
        none.contains("no pod in namespace booksapp (workloads there: externalworkload/authors,"),
        "{none}"
    );
    let nobody = run_err(ztmesh().args([
        "viz",
        "edges",
        "deploy/nobody-at-all",
        "-n",
        "booksapp",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    assert!(
        nobody.contains(
            "no deployment/nobody-at-all (the workloads labelled app=nobody-at-all) in namespace booksapp (workloads there: externalworkload/authors,"
        ),
        "{nobody}"
    );
    let refused = run_err(
        ztmesh()
            .args(["viz", "stat", "rs/authors", "--manifests"])
            .arg(&mesh.manifests),
    );
    assert!(refused.contains("not rs objects"), "{refused}");
    assert!(
        !refused.contains("Pod(") && !refused.contains("Some("),
        "{refused}"
    );
}

/// The controller aggregates the same figures through its viz API.
fn the_controller_aggregates(mesh: &LocalMesh<Daemon>) {
    let before = authors_inbound_requests().unwrap_or(0.0);
    let load = load_authors(5);
    authors_served_at_least(before + 10.0);
    let via = run_ok(ztmesh().args([
        "viz",
        "stat",
        "-n",
        "booksapp",
        "--window",
        "2s",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    load.join().unwrap();
    let authors_line = via
        .lines()
        .find(|l| l.contains("externalworkload/authors"))
        .unwrap_or_else(|| panic!("{via}"));
    let cells: Vec<&str> = authors_line.split_whitespace().collect();
    assert_eq!((cells[2], cells[3]), ("yes", "100.00%"), "{via}");
    let rps: f64 = cells[4].parse().unwrap();
    assert!((12.0..=28.0).contains(&rps), "rps {rps}:\n{via}");
    // The same rows as JSON through the controller.
    let json = run_ok(ztmesh().args([
        "viz",
        "stat",
        "ew/nobody",
        "--window",
        "100ms",
        "-o",
        "json",
        "--controller",
        mesh.viz.as_deref().unwrap(),
    ]));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(rows[0]["name"], "externalworkload/nobody", "{json}");
    assert_eq!(rows[0]["meshed"], false, "{json}");
}

/// A meshed client: routes and edges.
fn routes_and_edges(mesh: &LocalMesh<Daemon>) -> Daemon {
    let webapp = explicit_proxy(
        &mesh.control_plane(),
        "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &mesh.token("booksapp", "webapp"),
        &format!("{WEBAPP}:9"),
        &[],
    );
    eventually(Duration::from_secs(15), "webapp reaching authors", || {
        let answer = through_webapp("/authors.json");
        check(answer.starts_with("HTTP/1.1 200"), answer)
    });
    for _ in 0..4 {
        assert!(through_webapp("/authors.json").starts_with("HTTP/1.1 200"));
    }
    let routes = run_ok(
        ztmesh()
            .args(["viz", "routes", "-n", "booksapp", "--manifests"])
            .arg(&mesh.manifests),
    );
    let route = routes
        .lines()
        .find(|l| l.contains("GET /authors.json"))
        .unwrap_or_else(|| panic!("no route row:\n{routes}"));
    let cells: Vec<&str> = route
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[0], "booksapp/externalworkload/webapp", "{routes}");
    assert_eq!(&cells[3..5], ["5", "100.00%"], "{routes}");
    let edges = run_ok(
        ztmesh()
            .args(["viz", "edges", "-n", "booksapp", "--manifests"])
            .arg(&mesh.manifests),
    );
    let rows = |a: &str, b: &str, secured: &str| {
        edges
            .lines()
            .filter(|l| l.starts_with(a) && l.contains(b) && l.ends_with(secured))
            .count()
    };
    let has = |a: &str, b: &str, secured: &str| rows(a, b, secured) > 0;
    // Both proxies report webapp -> authors: one row, by workload.
    assert_eq!(
        rows(
            "booksapp/externalworkload/webapp",
            "booksapp/externalworkload/authors",
            "yes (mTLS)"
        ),
        1,
        "{edges}"
    );
    assert!(
        !edges.contains("serviceaccount.identity"),
        "identities mapped to workloads: {edges}"
    );
    let (json, edge) = viz_json_row(mesh, "edges", "src", "booksapp/externalworkload/webapp");
    assert_eq!(edge["dst"], "booksapp/externalworkload/authors", "{json}");
    assert_eq!(edge["tls"], true, "{json}");
    assert_eq!(
        edge["src_identity"], "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
        "{json}"
    );
    assert_eq!(
        edge["dst_identity"], "authors.booksapp.serviceaccount.identity.linkerd.cluster.local",
        "{json}"
    );
    let (routes, route) = viz_json_row(mesh, "routes", "route", "GET /authors.json");
    assert_eq!(
        route["from"], "booksapp/externalworkload/webapp",
        "{routes}"
    );
    assert_eq!(route["requests"], 5.0, "{routes}");
    assert_eq!(route["success_rate"], 1.0, "{routes}");
    assert!(
        has(
            "(unmeshed client)",
            "booksapp/externalworkload/authors",
            "no: no_tls_from_remote"
        ),
        "{edges}"
    );
    webapp
}

/// `ztmesh viz CMD -n booksapp -o json --manifests M`'s output, and its
/// row whose `field` is `value`.
fn viz_json_row(
    mesh: &LocalMesh<Daemon>,
    cmd: &str,
    field: &str,
    value: &str,
) -> (serde_json::Value, serde_json::Value) {
    let out = run_ok(
        ztmesh()
            .args(["viz", cmd, "-n", "booksapp", "-o", "json", "--manifests"])
            .arg(&mesh.manifests),
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[field] == value)
        .unwrap_or_else(|| panic!("no {field}={value:?} in {json}"))
        .clone();
    (json, row)
}

/// `viz edges` and `viz routes` through the controller's viz API print
/// what they print from the manifests (no traffic in between: the
/// counters are the same), as tables and as JSON.
fn the_controller_answers_edges_and_routes(mesh: &LocalMesh<Daemon>) {
    let viz = mesh.viz.as_deref().unwrap();
    for (cmd, output) in [
        ("edges", "json"),
        ("edges", "wide"),
        ("edges", "table"),
        ("routes", "json"),
        ("routes", "table"),
    ] {
        let local = run_ok(
            ztmesh()
                .args(["viz", cmd, "-n", "booksapp", "-o", output, "--manifests"])
                .arg(&mesh.manifests),
        );
        let via = run_ok(ztmesh().args([
            "viz",
            cmd,
            "-n",
            "booksapp",
            "-o",
            output,
            "--controller",
            viz,
        ]));
        assert_eq!(via, local, "viz {cmd} -o {output}");
        assert!(via.lines().count() >= 2, "{cmd}: no rows:\n{via}");
    }
    let edges = http_get(viz, "/edges?namespace=booksapp&output=json").unwrap();
    assert!(edges.contains("application/json"), "{edges}");
    assert!(edges.contains("\"tls\": true"), "{edges}");
}

/// A controller started without `--no-context` records itself in its
/// context file (here a private one); `viz stat`, `viz edges` and `viz
/// routes` given no `--controller` find it there.
fn found_by_the_context_file(mesh: &LocalMesh<Daemon>) {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ztmesh/context.json");
    let with_context = || {
        let mut cmd = ztmesh();
        cmd.env("ZTMESH_CONTEXT", &context)
            .env_remove("ZTMESH_CONTROLLER");
        cmd
    };
    let mut cmd = with_context();
    cmd.args(["controller", "--identity-dir"])
        .arg(&mesh.identity_dir)
        .arg("--manifests")
        .arg(&mesh.manifests);
    for flag in [
        "--identity-addr",
        "--viz-addr",
        "--policy-addr",
        "--destination-addr",
    ] {
        cmd.args([flag, "127.0.0.1:0"]);
    }
    let mut controller = Daemon::spawn(cmd);
    let viz = controller.listening_addr("viz API");
    eventually(
        Duration::from_secs(10),
        "the context file naming the viz API",
        || {
            let text = std::fs::read_to_string(&context).map_err(|e| e.to_string())?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            check(json["viz"] == viz.as_str(), text)
        },
    );
    let stat = run_ok(with_context().args([
        "viz",
        "stat",
        "deploy/authors",
        "-n",
        "booksapp",
        "--window",
        "100ms",
    ]));
    assert!(
        table_row(&stat, "externalworkload/authors")[2] == "yes",
        "{stat}"
    );
    let edges = run_ok(with_context().args(["viz", "edges", "-n", "booksapp", "-o", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&edges).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["src"] == "booksapp/externalworkload/webapp"
                && r["dst"] == "booksapp/externalworkload/authors"
                && r["tls"] == true),
        "{edges}"
    );
    let routes = run_ok(with_context().args(["viz", "routes", "deploy/webapp", "-n", "booksapp"]));
    assert!(routes.contains("GET /authors.json"), "{routes}");
    controller.interrupt();
}
