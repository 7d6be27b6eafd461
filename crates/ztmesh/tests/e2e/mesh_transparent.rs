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

use crate::support;

use std::process::Stdio;
use std::time::Duration;
use support::netns::*;
use support::*;

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const SUBNET: &str = "10.234.0";
const PODS: [(&str, &str); 3] = [
    ("a", "10.234.0.11"),
    ("b", "10.234.0.12"),
    ("c", "10.234.0.13"),
];

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

/// The pods' network, the controller, the applications and the meshed
/// pods' proxies (dropped in this order: proxies first).
struct Pods {
    proxies: Vec<Daemon>,
    _apps: Vec<Daemon>,
    _controller: Daemon,
    net: Net,
    mesh: MeshFiles,
}

const BIN: &str = env!("CARGO_BIN_EXE_ztmesh");

#[test]
fn transparent_mtls_between_meshed_pods() {
    require_root_and_tools(&[
        "ip",
        "iptables-legacy",
        "curl",
        "setpriv",
        "tcpdump",
        "python3",
    ]);
    let p = step("start the controller, the apps and the meshed pods", start);
    let (capture, pcap) = step("capture b's link", || start_capture(&p));
    step("a, b and c talk (mTLS and plaintext)", || {
        mtls_and_plaintext(&p)
    });
    step("HTTP/1.1 shares one HTTP/2 connection", || {
        http1_multiplexed(&p)
    });
    step("gRPC, WebSocket and opaque TCP", || {
        grpc_websocket_opaque(&p)
    });
    step("no secret crossed b's link in plaintext", || {
        no_secret_on_the_wire(&p, capture, &pcap)
    });
    step("b's metrics show identities and protocols", || {
        b_metrics(&p)
    });
    step("an unanswered address is an HTTP error", || {
        unanswered_address(&p)
    });
    step("proxy-init --remove takes the rules out", || {
        proxy_init_remove(&p)
    });
}

/// Applications: the sample app in b (HTTP/1, HTTP/2, WebSocket, TCP
/// echo), Python's HTTP server in c; meshed pods a and b get proxy-init
/// (run twice: idempotent) and their proxies.
fn start() -> Pods {
    let bin = BIN;
    let mesh = MeshFiles::new();
    std::fs::write(mesh.manifests.join("pods.yaml"), manifests()).unwrap();
    let www = mesh.tmp.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "authors page\n").unwrap();

    let net = Net::new("t", SUBNET, &PODS);
    let controller = net.controller(&mesh.identity_dir, &mesh.manifests);

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
    for (p, sa) in [("a", "webapp"), ("b", "authors")] {
        let ns = net.pod(p);
        net.proxy_init(p);
        // Idempotent: a second run leaves one set of rules.
        net.proxy_init(p);
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
        proxies.push(net.proxy(p, ("booksapp", sa), &mesh, None, &[]));
    }
    Pods {
        proxies,
        _apps: apps,
        _controller: controller,
        net,
        mesh,
    }
}

/// tcpdump on b's link, writing each packet to the returned file.
fn start_capture(p: &Pods) -> (Daemon, std::path::PathBuf) {
    let (mesh, net) = (&p.mesh, &p.net);
    let pcap = mesh.tmp.path().join("b.pcap");
    let mut capture = Net::exec(&net.host, "tcpdump");
    capture
        .args([
            "-i",
            &net.veth("b"),
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::null());
    let mut capture = Daemon::spawn(capture);
    capture.wait_for("listening on", Duration::from_secs(10));
    (capture, pcap)
}

/// a -> b (mTLS), c -> b (plaintext into a meshed pod), b -> c
/// (plaintext out of one).
fn mtls_and_plaintext(p: &Pods) {
    let (net, proxies) = (&p.net, &p.proxies);
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
}

fn http1_multiplexed(p: &Pods) {
    let net = &p.net;
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
}

fn grpc_websocket_opaque(p: &Pods) {
    let (net, bin) = (&p.net, BIN);
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
}

/// The capture sees c's plaintext, and none of a's markers.
fn no_secret_on_the_wire(p: &Pods, mut capture: Daemon, pcap: &std::path::Path) {
    let net = &p.net;
    // A last plaintext request from c marks the end: once the capture file
    // holds it (tcpdump writes each packet, -U), it holds all before it.
    let flush = Net::curl(
        net.pod("c"),
        &format!("http://{}:8080/index.html?marker=PLAIN-C-FLUSH", PODS[1].1),
    );
    assert!(flush.status.success(), "c -> b: {}", describe(&flush));
    let contains_in =
        |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    eventually(
        Duration::from_secs(10),
        "the capture holding c's last request",
        || {
            let bytes = std::fs::read(pcap).unwrap_or_default();
            check(
                contains_in(&bytes, b"PLAIN-C-FLUSH"),
                format!("{} bytes", bytes.len()),
            )
        },
    );
    capture.interrupt();
    let bytes = std::fs::read(pcap).unwrap();
    let contains = |needle: &[u8]| contains_in(&bytes, needle);
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
}

fn b_metrics(p: &Pods) {
    let net = &p.net;
    let b_metrics = Net::metrics(net.pod("b"));
    assert!(
        b_metrics.contains(&format!("tls=\"true\",client_id=\"{WEBAPP}\"")),
        "{b_metrics}"
    );
    assert!(b_metrics.contains("direction=\"inbound\",peer=\"src\",target_addr=\"10.234.0.12:8080\",target_ip=\"10.234.0.12\",target_port=\"8080\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\""), "{b_metrics}");
    assert!(
        b_metrics.contains("direction=\"outbound\",peer=\"dst\",target_addr=\"10.234.0.13:8080\",target_ip=\"10.234.0.13\",target_port=\"8080\",tls=\"no_identity\",no_tls_reason=\"not_provided_by_service_discovery\""),
        "{b_metrics}"
    );
    // a's HTTP/1.1 and gRPC requests to b's app port shared one connection;
    // the WebSocket had one of its own: two in all, each mTLS with webapp.
    let webapp_conns = |port: u16| {
        b_metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{0}:{port}\",target_ip=\"{0}\",target_port=\"{port}\",tls=\"true\",client_id=\"{WEBAPP}\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{port}\"}}", PODS[1].1))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert_eq!(webapp_conns(8080), Some(2), "{b_metrics}");
    assert_eq!(webapp_conns(9000), Some(1), "{b_metrics}");
    // The gRPC call is classified by its trailers' grpc-status, and closed
    // connections carry their errno ("" when clean).
    assert!(
        b_metrics
            .lines()
            .any(|l| l.starts_with("response_total{direction=\"inbound\"")
                && l.contains("classification=\"success\",grpc_status=\"0\"")),
        "{b_metrics}"
    );
    assert!(
        b_metrics
            .lines()
            .filter(|l| l.starts_with("tcp_close_total{"))
            .all(|l| l.contains(",errno=\"")),
        "{b_metrics}"
    );
    // Per request too (what the benchmark harness checks before measuring).
    assert!(
        b_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"inbound\"")
                && l.contains(&format!("tls=\"true\",client_id=\"{WEBAPP}\""))
                && l.ends_with(" 8")),
        "{b_metrics}"
    );
}

/// An HTTP client asking for an address nobody answers gets an HTTP
/// error, not a reset; a's outbound metrics name b's identity.
fn unanswered_address(p: &Pods) {
    let net = &p.net;
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
}

fn proxy_init_remove(p: &Pods) {
    let (net, bin) = (&p.net, BIN);
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
}
