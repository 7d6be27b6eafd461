//! `ztmesh viz stat` against real proxies: a workload under a steady load
//! shows its request rate, success rate and latency; a workload without a
//! proxy shows as unmeshed.

mod support;

use std::time::Duration;
use support::*;

const AUTHORS: &str = "127.0.7.2";
const NOBODY: &str = "127.0.7.3";

fn manifests() -> String {
    let wl = |name: &str, ip: &str| {
        format!(
            "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: booksapp, labels: {{app: {name}}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {name}.booksapp.serviceaccount.identity.linkerd.cluster.local, serverName: {name}.booksapp.serviceaccount.identity.linkerd.cluster.local}}\n  workloadIPs: [{{ip: {ip}}}]\n  ports: [{{port: 18400, name: http}}]\n"
        )
    };
    format!("{}---\n{}", wl("authors", AUTHORS), wl("nobody", NOBODY))
}

#[test]
fn stat_shows_rates_success_and_latency_per_workload() {
    let mesh = LocalMesh::start(|m| std::fs::write(m.join("w.yaml"), manifests()).unwrap());
    let mut app = unprivileged_ztmesh();
    app.args([
        "app",
        "serve",
        "--name",
        "authors",
        "--http",
        &format!("{AUTHORS}:18400"),
    ]);
    let mut app = Daemon::spawn(app);
    app.wait_for("HTTP on", Duration::from_secs(10));
    let _proxy = explicit_proxy(
        &mesh.control_plane(),
        "authors.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &mesh.token("booksapp", "authors"),
        &format!("{AUTHORS}:18400"),
        &[],
    );
    // 20 requests per second for 8 s, straight to the inbound port.
    let load = std::thread::spawn(|| {
        run_ok(ztmesh().args([
            "app",
            "load",
            &format!("http://{AUTHORS}:4143/authors.json"),
            "--rps",
            "20",
            "--duration",
            "8s",
        ]))
    });
    std::thread::sleep(Duration::from_secs(2));
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
    let loaded = load.join().unwrap();
    assert!(loaded.contains("ok=160"), "{loaded}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE  NAME"), "{out}");
    let row = |name: &str| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
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
