//! Pods as network namespaces on a bridge, transparent interception with
//! `ztmesh proxy-init`, the real controller and proxies (as root, which CI
//! is; it fails, never skips, without root): webapp (a) and authors (b) are
//! meshed, legacy (c) is not.
//! - a -> b is mTLS: b's metrics show webapp's identity, and a capture on
//!   b's link finds no plaintext of the request's marker;
//! - c -> b is plaintext (the same capture does see c's marker) and is
//!   labelled no_identity; b -> c is plaintext and labelled so;
//! - a -> b carries HTTP/1.1 (upgraded to one multiplexed HTTP/2 connection
//!   between the proxies and restored for the app), gRPC over HTTP/2 with
//!   its trailers, a WebSocket upgrade and an opaque TCP echo.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const HOST_IP: &str = "10.234.0.1";
const PODS: [(&str, &str); 3] = [
    ("a", "10.234.0.11"),
    ("b", "10.234.0.12"),
    ("c", "10.234.0.13"),
];

struct Net {
    host: String,
    pods: Vec<String>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
}

impl Net {
    fn new() -> Self {
        let id = std::process::id();
        let host = format!("ztm-h-{id}");
        let pods: Vec<String> = PODS.iter().map(|(p, _)| format!("ztm-{p}-{id}")).collect();
        for ns in std::iter::once(&host).chain(&pods) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let net = Self {
            host: host.clone(),
            pods: pods.clone(),
        };
        sh(&["ip", "-n", &host, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            &host,
            "addr",
            "add",
            &format!("{HOST_IP}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", &host, "link", "set", "br0", "up"]);
        for ((p, ip), ns) in PODS.iter().zip(&pods) {
            let veth = format!("v{p}");
            sh(&[
                "ip", "-n", &host, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ]);
            sh(&[
                "ip", "-n", &host, "link", "set", &veth, "master", "br0", "up",
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    fn pod(&self, p: &str) -> &str {
        &self.pods[PODS.iter().position(|(q, _)| *q == p).unwrap()]
    }

    fn exec(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// `program` as an unprivileged user, whose traffic iptables redirects.
    fn unprivileged(ns: &str, program: &str) -> Command {
        let mut cmd = Self::exec(ns, "setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        cmd
    }

    fn curl(ns: &str, url: &str) -> std::process::Output {
        Self::unprivileged(ns, "curl")
            .args(["-sS", "-m", "5", url])
            .output()
            .unwrap()
    }

    fn metrics(ns: &str) -> String {
        let out = Self::exec(ns, "curl")
            .args(["-sS", "-m", "5", "http://127.0.0.1:4191/metrics"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.pods.iter().chain(std::iter::once(&self.host)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn manifests() -> String {
    let pod = |name: &str, ns: &str, ip: &str, meshed: bool| {
        let ann = if meshed {
            ", annotations: {linkerd.io/inject: enabled}"
        } else {
            ""
        };
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}{ann}}}\nspec: {{serviceAccountName: {name}, containers: [{{name: app, ports: [{{name: http, containerPort: 8080}}]}}]}}\nstatus: {{podIP: {ip}}}\n"
        )
    };
    [
        pod("webapp", "booksapp", PODS[0].1, true),
        pod("authors", "booksapp", PODS[1].1, true),
        pod("legacy", "legacy", PODS[2].1, false),
    ]
    .join("---\n")
}

#[test]
fn transparent_mtls_between_meshed_pods() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false),
        "this end-to-end test builds network namespaces and iptables rules and needs root (CI runs as root)"
    );
    for tool in [
        "ip",
        "iptables-legacy",
        "curl",
        "setpriv",
        "tcpdump",
        "python3",
    ] {
        require_tool(tool);
    }
    let bin = env!("CARGO_BIN_EXE_ztmesh");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let anchors = std::fs::read_to_string(d.join("ca.crt")).unwrap();
    let m = tmp.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("pods.yaml"), manifests()).unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "authors page\n").unwrap();

    let net = Net::new();
    let mut controller = Net::exec(&net.host, bin);
    controller
        .args(["controller", "--identity-dir"])
        .arg(&d)
        .arg("--manifests")
        .arg(&m)
        .args([
            "--identity-addr",
            &format!("{HOST_IP}:8080"),
            "--destination-addr",
            &format!("{HOST_IP}:8086"),
            "--policy-addr",
            &format!("{HOST_IP}:8090"),
        ]);
    let mut controller = Daemon::spawn(controller);
    controller.wait_for("destination service listening", Duration::from_secs(20));

    // Applications: the sample app in b (HTTP/1, HTTP/2, WebSocket, TCP
    // echo), Python's HTTP server in c.
    let mut apps = Vec::new();
    let mut app = Net::exec(net.pod("b"), bin);
    app.args([
        "app",
        "serve",
        "--name",
        "authors",
        "--http",
        "0.0.0.0:8080",
        "--tcp",
        "0.0.0.0:9000",
    ]);
    let mut app = Daemon::spawn(app);
    app.wait_for("TCP echo on", Duration::from_secs(10));
    apps.push(app);
    let mut legacy = Net::exec(net.pod("c"), "python3");
    legacy
        .args([
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
        ])
        .arg(&www);
    apps.push(Daemon::spawn(legacy));

    // Meshed pods: proxy-init, then the proxy (as root: uid 0 is excluded).
    let mut proxies = Vec::new();
    for (p, sa, ip) in [("a", "webapp", PODS[0].1), ("b", "authors", PODS[1].1)] {
        let ns = net.pod(p);
        let out = Net::exec(ns, bin)
            .args([
                "proxy-init",
                "--proxy-uid",
                "0",
                "--inbound-ports-to-ignore",
                "4190,4191",
                "--iptables-mode",
                "legacy",
                "--ipv6=false",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "proxy-init: {}", describe(&out));
        // Idempotent: a second run leaves one set of rules.
        let again = Net::exec(ns, bin)
            .args([
                "proxy-init",
                "--proxy-uid",
                "0",
                "--iptables-mode",
                "legacy",
                "--ipv6=false",
            ])
            .output()
            .unwrap();
        assert!(again.status.success(), "{}", describe(&again));
        let rules = Net::exec(ns, "iptables-legacy")
            .args(["-t", "nat", "-S", "OUTPUT"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&rules.stdout)
                .matches("PROXY_INIT_OUTPUT")
                .count(),
            1,
            "one jump after two runs"
        );

        let token = tmp.path().join(format!("{sa}.token"));
        token_file(&d, "booksapp", sa, &token);
        let mut cmd = Net::exec(ns, bin);
        cmd.arg("proxy")
            .env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", &anchors)
            .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", &token)
            .env(
                "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
                format!("{HOST_IP}:8080"),
            )
            .env(
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
            )
            .env(
                "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
                format!("{sa}.booksapp.serviceaccount.identity.linkerd.cluster.local"),
            )
            .env(
                "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
                format!("{HOST_IP}:8086"),
            )
            .env(
                "LINKERD2_PROXY_DESTINATION_SVC_NAME",
                "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
            );
        let mut proxy = Daemon::spawn(cmd);
        proxy.wait_for("transparent outbound listening", Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = Net::exec(ns, "curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://127.0.0.1:4191/ready",
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&ready.stdout) == "200" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{p} ({ip}) not ready:\n{}\ncontroller:\n{}",
                proxy.output(),
                controller.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        proxies.push(proxy);
    }

    // Capture b's link while a and c talk to b.
    let pcap = tmp.path().join("b.pcap");
    let mut capture = Net::exec(&net.host, "tcpdump");
    capture
        .args(["-i", "vb", "--immediate-mode", "-U", "-s", "0", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null());
    let mut capture = Daemon::spawn(capture);
    capture.wait_for("listening on", Duration::from_secs(10));

    let ab = Net::curl(
        net.pod("a"),
        &format!("http://{}:8080/index.html?marker=SECRET-A-TO-B", PODS[1].1),
    );
    assert_eq!(
        String::from_utf8_lossy(&ab.stdout),
        "authors:GET /index.html",
        "a -> b: {}\nproxies:\n{}",
        describe(&ab),
        proxies[0].output()
    );
    let cb = Net::curl(
        net.pod("c"),
        &format!("http://{}:8080/index.html?marker=PLAIN-C-TO-B", PODS[1].1),
    );
    assert_eq!(
        String::from_utf8_lossy(&cb.stdout),
        "authors:GET /index.html",
        "c -> b: {}",
        describe(&cb)
    );
    let bc = Net::curl(
        net.pod("b"),
        &format!("http://{}:8080/index.html", PODS[2].1),
    );
    assert_eq!(
        String::from_utf8_lossy(&bc.stdout),
        "authors page\n",
        "b -> c: {}\n{}",
        describe(&bc),
        proxies[1].output()
    );

    // HTTP/1.1 from a: five requests at once share one HTTP/2 connection
    // between the proxies, and the app still sees HTTP/1.1.
    let url = format!("http://{}:8080/books?marker=SECRET-H1", PODS[1].1);
    let parallel = Net::unprivileged(net.pod("a"), "curl")
        .args([
            "-sS",
            "-m",
            "10",
            "-D",
            "-",
            "-Z",
            "--parallel-immediate",
            "--parallel-max",
            "5",
        ])
        .args([&url, &url, &url, &url, &url])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&parallel.stdout).to_lowercase();
    assert_eq!(
        out.matches("x-http-version: http/1.1").count(),
        5,
        "{}",
        describe(&parallel)
    );
    assert_eq!(out.matches("authors:get /books").count(), 5, "{out}");
    // gRPC over HTTP/2 with its trailers, a WebSocket and opaque TCP.
    let app_client = |args: &[&str]| {
        let out = Net::unprivileged(net.pod("a"), bin)
            .arg("app")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "app {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let b_http = format!("{}:8080", PODS[1].1);
    let grpc = app_client(&["grpc", &b_http, "--message", "SECRET-GRPC"]);
    assert_eq!(
        grpc,
        "message: SECRET-GRPC\ngrpc-status: 0\nserved-by: authors\n"
    );
    let ws = app_client(&["ws", &b_http, "--message", "SECRET-WEBSOCKET"]);
    assert_eq!(ws, "SECRET-WEBSOCKET\n");
    let tcp = app_client(&[
        "tcp",
        &format!("{}:9000", PODS[1].1),
        "--message",
        "SECRET-OPAQUE",
    ]);
    assert_eq!(tcp, "authors:SECRET-OPAQUE\n");

    std::thread::sleep(Duration::from_millis(500));
    capture.interrupt();
    let bytes = std::fs::read(&pcap).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"PLAIN-C-TO-B"),
        "the capture sees plaintext (so it can see a leak): {} bytes\n{}",
        bytes.len(),
        capture.output()
    );
    for marker in [
        "SECRET-A-TO-B",
        "SECRET-H1",
        "SECRET-GRPC",
        "SECRET-WEBSOCKET",
        "SECRET-OPAQUE",
    ] {
        assert!(
            !contains(marker.as_bytes()),
            "{marker}: a -> b crossed the wire in plaintext"
        );
    }

    let b_metrics = Net::metrics(net.pod("b"));
    assert!(
        b_metrics.contains(&format!("tls=\"true\",client_id=\"{WEBAPP}\"")),
        "{b_metrics}"
    );
    assert!(b_metrics.contains("direction=\"inbound\",peer=\"src\",target_addr=\"10.234.0.12:8080\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\""), "{b_metrics}");
    assert!(
        b_metrics.contains("direction=\"outbound\",peer=\"dst\",target_addr=\"10.234.0.13:8080\",tls=\"no_identity\",no_tls_reason=\"not_provided_by_service_discovery\""),
        "{b_metrics}"
    );
    // a's HTTP/1.1 and gRPC requests to b's app port shared one connection;
    // the WebSocket had one of its own: two in all, each mTLS with webapp.
    let webapp_conns = |port: u16| {
        b_metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{}:{port}\",tls=\"true\",client_id=\"{WEBAPP}\"}}", PODS[1].1))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert_eq!(webapp_conns(8080), Some(2), "{b_metrics}");
    assert_eq!(webapp_conns(9000), Some(1), "{b_metrics}");
    // Per request too (what the benchmark harness checks before measuring).
    assert!(
        b_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"inbound\"")
                && l.contains(&format!("tls=\"true\",client_id=\"{WEBAPP}\""))
                && l.ends_with(" 8")),
        "{b_metrics}"
    );
    // An HTTP client asking for an address nobody answers gets an HTTP error, not a reset.
    let out = Net::unprivileged(net.pod("a"), "curl")
        .args([
            "-sS",
            "-m",
            "15",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "http://10.234.0.99:8080/",
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.starts_with("http/1.1 50") && head.contains("l5d-proxy-error:"),
        "{}",
        describe(&out)
    );
    let a_metrics = Net::metrics(net.pod("a"));
    assert!(
        a_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"outbound\"")
                && l.contains(
                    "server_id=\"authors.booksapp.serviceaccount.identity.linkerd.cluster.local\""
                )),
        "{a_metrics}"
    );
    assert!(
        a_metrics.contains(
            "server_id=\"authors.booksapp.serviceaccount.identity.linkerd.cluster.local\""
        ),
        "{a_metrics}"
    );

    // proxy-init --remove takes the rules out.
    let out = Net::exec(net.pod("a"), bin)
        .args([
            "proxy-init",
            "--remove",
            "--iptables-mode",
            "legacy",
            "--ipv6=false",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let rules = Net::exec(net.pod("a"), "iptables-legacy")
        .args(["-t", "nat", "-S"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains("PROXY_INIT"),
        "{}",
        describe(&rules)
    );
    drop(proxies);
    drop(apps);
    drop(controller);
}
