//! Traffic policy between network-namespace pods (transparent, real
//! controller and proxies; root, as CI is): the seed's ServiceProfile for
//! api-server (GET /api/users: 5s, retryable; POST /api/orders: 10s, not
//! retryable) in front of a backend that fails half its requests, reached
//! through the Service's cluster IP; and a slow backend whose route times
//! out.
//! - GET /api/users at 5 requests/s for 20 s succeeds >= 95% thanks to
//!   retries (a route without retries: about 50%);
//! - at 50 requests/s the retries stay within the budget (20% of requests
//!   plus 10/s);
//! - POST /api/orders is never retried and its failures reach the client;
//! - the slow backend's route answers 504 at its timeout.

use crate::support;

use support::netns::*;
use support::*;

const SUBNET: &str = "10.237.0";
const PODS: [(&str, &str); 3] = [
    ("client", "10.237.0.11"),
    ("api", "10.237.0.12"),
    ("slow", "10.237.0.13"),
];
const API_IP: &str = "10.96.0.10";
const SLOW_IP: &str = "10.96.0.11";

fn seeds() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(dir.is_dir(), "seed fixtures expected at {}", dir.display());
    dir
}

fn manifests() -> String {
    let [client, api, slow] = PODS.map(|(_, ip)| ip);
    [
        pod_manifest("web-frontend", "my-app", "web-frontend", client, "app: web-frontend", 8080, true),
        pod_manifest("api-server", "my-app", "api-server", api, "app: my-api", 8080, true),
        pod_manifest("slow", "my-app", "slow", slow, "app: slow", 8080, true),
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: api-server, namespace: my-app}}\nspec: {{clusterIP: {API_IP}, selector: {{app: my-api}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"),
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: slow, namespace: my-app}}\nspec: {{clusterIP: {SLOW_IP}, selector: {{app: slow}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"),
        // The test's own profile for the slow service: a short timeout.
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: slow.my-app.svc.cluster.local, namespace: my-app}\nspec:\n  routes:\n    - name: GET /slow\n      condition: {method: GET, pathRegex: /slow}\n      timeout: 500ms\n".to_string(),
    ]
    .join("---\n")
}

/// Runs `ztmesh app load` in the client pod; the summary's fields.
fn load(
    net: &Net,
    method: &str,
    url: &str,
    rps: u32,
    secs: u32,
) -> std::collections::BTreeMap<String, f64> {
    let out = Net::unprivileged(net.pod("client"), env!("CARGO_BIN_EXE_ztmesh"))
        .args(["app", "load", url, "--method", method])
        .args(["--rps", &rps.to_string(), "--duration", &format!("{secs}s")])
        .output()
        .unwrap();
    assert!(out.status.success(), "load: {}", describe(&out));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("{method} {url} at {rps}/s for {secs}s: {line}");
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0.0)))
        .collect()
}

/// A request to a route with a 500ms timeout in front of a slower backend
/// answers 504 after about 500ms.
fn assert_504_within_timeout(net: &Net, url: &str) {
    let out = Net::unprivileged(net.pod("client"), "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            "-m",
            "5",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').unwrap_or(("", "0"));
    let secs: f64 = secs.parse().unwrap_or(0.0);
    assert_eq!(code, "504", "{url}: {text}");
    assert!(
        (0.45..1.5).contains(&secs),
        "{url}: the 504 came after {secs}s"
    );
}

fn counter(metrics: &str, family: &str, route: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{family}{{")) && l.contains(&format!("route_name=\"{route}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Pods with proxies, the controller and the apps (dropped proxies first).
struct Pods {
    proxies: Vec<Daemon>,
    _apps: Vec<Daemon>,
    _controller: Daemon,
    net: Net,
    _mesh: MeshFiles,
}

/// The profile's retryable route.
fn users() -> String {
    format!("http://{API_IP}/api/users")
}

#[test]
fn retries_timeouts_and_budgets_from_the_seed_profile() {
    let _serial = serial();
    require_root_and_tools(&["ip", "iptables-legacy", "curl", "setpriv"]);
    let p = step("start the client, api and slow pods", start_profile_pods);
    step("retries turn a 50% backend into >= 95%", || {
        retries_help(&p)
    });
    step("POST /api/orders is never retried", || post_not_retried(&p));
    step("at 50/s the retry budget holds", || budget_holds(&p));
    step("a slow backend answers 504 at its timeout", || {
        slow_times_out(&p)
    });
}

fn start_profile_pods() -> Pods {
    let bin = env!("CARGO_BIN_EXE_ztmesh");
    let mesh = MeshFiles::new();
    std::fs::copy(
        seeds().join("seed002-service-profile.yaml"),
        mesh.manifests.join("seed002-service-profile.yaml"),
    )
    .unwrap();
    std::fs::write(mesh.manifests.join("workloads.yaml"), manifests()).unwrap();
    let net = Net::new("r", SUBNET, &PODS);
    let _controller = net.controller(&mesh.identity_dir, &mesh.manifests);
    let mut apps = Vec::new();
    for (pod, extra) in [("api", ["--fail-rate", "0.5"]), ("slow", ["--delay", "2s"])] {
        let mut cmd = Net::exec(net.pod(pod), bin);
        cmd.args(["app", "serve", "--name", pod, "--http", "0.0.0.0:8080"])
            .args(extra);
        let mut d = Daemon::spawn(cmd);
        d.wait_for("HTTP on", std::time::Duration::from_secs(10));
        apps.push(d);
    }
    let mut proxies = Vec::new();
    for (pod, sa) in [
        ("client", "web-frontend"),
        ("api", "api-server"),
        ("slow", "slow"),
    ] {
        net.proxy_init(pod);
        proxies.push(net.proxy(pod, ("my-app", sa), &mesh, None, &[]));
    }
    Pods {
        proxies,
        _apps: apps,
        _controller,
        net,
        _mesh: mesh,
    }
}

/// 5/s for 20s: retries turn a 50% backend into >= 95% success.
fn retries_help(p: &Pods) {
    let (net, proxies, users) = (&p.net, &p.proxies, users());
    let r = load(net, "GET", &users, 5, 20);
    let success = r["ok"] / r["sent"];
    assert!(
        success >= 0.95,
        "GET /api/users succeeded {success:.3} of the time: {r:?}\n{}",
        proxies[0].output()
    );
    // Without a retryable route: about half.
    let r = load(net, "GET", &format!("http://{API_IP}/other"), 5, 4);
    let plain = r["ok"] / r["sent"];
    assert!(
        (0.2..=0.8).contains(&plain),
        "without retries {plain:.3}: {r:?}"
    );
}

/// POST /api/orders: never retried, failures reach the client.
fn post_not_retried(p: &Pods) {
    let net = &p.net;
    let before = Net::metrics(net.pod("client"));
    let r = load(net, "POST", &format!("http://{API_IP}/api/orders"), 5, 4);
    assert!(r.get("status_500").copied().unwrap_or(0.0) >= 3.0, "{r:?}");
    let after = Net::metrics(net.pod("client"));
    let route = "POST /api/orders";
    assert_eq!(
        counter(&after, "outbound_route_retry_total", route),
        counter(&before, "outbound_route_retry_total", route),
        "POST /api/orders was retried"
    );
    assert_eq!(
        counter(&after, "outbound_route_request_total", route),
        20.0,
        "{after}"
    );
}

/// 50/s for 10s: the budget (20% of requests + 10/s over its 10s ttl) holds.
fn budget_holds(p: &Pods) {
    let (net, users) = (&p.net, users());
    let before = Net::metrics(net.pod("client"));
    let started = tokio::time::Instant::now();
    let r = load(net, "GET", &users, 50, 10);
    let span = started.elapsed().as_secs_f64();
    let after = Net::metrics(net.pod("client"));
    let route = "GET /api/users";
    let requests = counter(&after, "outbound_route_request_total", route)
        - counter(&before, "outbound_route_request_total", route);
    let retries = counter(&after, "outbound_route_retry_total", route)
        - counter(&before, "outbound_route_retry_total", route);
    let exhausted = counter(&after, "outbound_route_retry_budget_exhausted_total", route);
    // The reserve refills at 10/s: over the run's span (a little more
    // than its 10 s when the machine is busy, plus one second of slot
    // rounding) it grants 10/s x (span + 1); on top, 20% of the requests
    // deposited, the earlier runs' included (at most 50 GETs and 20 POSTs
    // are still within the ttl).
    let allowed = 10.0 * (span.ceil() + 1.0) + 0.2 * (requests + 70.0);
    eprintln!(
        "50/s: {requests} requests, {retries} retries (share {:.3}; budget allows {allowed}), {exhausted} refused by the budget, success {:.3}",
        retries / requests,
        r["ok"] / r["sent"]
    );
    assert!(requests >= 450.0, "{requests}");
    assert!(retries <= allowed, "{retries} retries > budget {allowed}");
    assert!(exhausted > 0.0, "at 50/s the budget must run out: {after}");
}

/// A slow backend: 504 at the route's 500ms timeout.
fn slow_times_out(p: &Pods) {
    let net = &p.net;
    assert_504_within_timeout(net, &format!("http://{SLOW_IP}/slow"));
    let m = Net::metrics(net.pod("client"));
    assert_eq!(
        counter(&m, "outbound_route_timeout_total", "GET /slow"),
        1.0,
        "{m}"
    );
}

const SPLIT_PODS: [(&str, &str); 7] = [
    ("client", "10.238.0.11"),
    ("v1", "10.238.0.12"),
    ("v2", "10.238.0.13"),
    ("good", "10.238.0.14"),
    ("bad", "10.238.0.15"),
    ("half", "10.238.0.16"),
    ("sloth", "10.238.0.17"),
];
const ORDERS_IP: &str = "10.96.1.40";
const SLOTH_IP: &str = "10.96.1.50";
const WEB_IP: &str = "10.96.1.20";
const FLAKY_IP: &str = "10.96.1.30";

fn split_manifests() -> String {
    let ip = |p: &str| SPLIT_PODS.iter().find(|(q, _)| *q == p).unwrap().1;
    let svc = |name: &str, cluster_ip: Option<&str>, selector: &str, annotations: &str| {
        let cip = cluster_ip
            .map(|ip| format!("clusterIP: {ip}, "))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop{annotations}}}\nspec: {{{cip}selector: {{{selector}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"
        )
    };
    [
        pod_manifest("client", "shop", "client", ip("client"), "app: client", 8080, true),
        pod_manifest("web-v1", "shop", "web", ip("v1"), "app: web, version: v1", 8080, true),
        pod_manifest("web-v2", "shop", "web", ip("v2"), "app: web, version: v2", 8080, true),
        pod_manifest("flaky-good", "shop", "flaky", ip("good"), "app: flaky", 8080, true),
        pod_manifest("flaky-bad", "shop", "flaky", ip("bad"), "app: flaky", 8080, true),
        svc("web", Some(WEB_IP), "app: web", ""),
        svc("web-v1", None, "app: web, version: v1", ""),
        svc("web-v2", None, "app: web, version: v2", ""),
        svc(
            "flaky",
            Some(FLAKY_IP),
            "app: flaky",
            ", annotations: {balancer.linkerd.io/failure-accrual: consecutive, balancer.linkerd.io/failure-accrual-consecutive-max-failures: '3', balancer.linkerd.io/failure-accrual-consecutive-min-penalty: 1s, balancer.linkerd.io/failure-accrual-consecutive-max-penalty: 2s, balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio: '0'}",
        ),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web-split, namespace: shop}\nspec:\n  parentRefs: [{name: web, kind: Service, group: core, port: 80}]\n  rules:\n    - backendRefs:\n        - {name: web-v1, port: 80, weight: 90}\n        - {name: web-v2, port: 80, weight: 10}\n".to_string(),
        pod_manifest("orders", "shop", "orders", ip("half"), "app: orders", 8080, true),
        pod_manifest("sloth", "shop", "sloth", ip("sloth"), "app: sloth", 8080, true),
        svc("orders", Some(ORDERS_IP), "app: orders", ""),
        svc("sloth", Some(SLOTH_IP), "app: sloth", ""),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: orders-retries, namespace: shop, annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: '3'}}\nspec:\n  parentRefs: [{name: orders, kind: Service, group: core, port: 80}]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /orders}}]\n".to_string(),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: sloth-timeout, namespace: shop, annotations: {timeout.linkerd.io/request: 500ms}}\nspec:\n  parentRefs: [{name: sloth, kind: Service, group: core, port: 80}]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /}}]\n".to_string(),
    ]
    .join("---\n")
}

#[test]
fn weighted_backends_and_failure_accrual() {
    let _serial = serial();
    require_root_and_tools(&["ip", "iptables-legacy", "curl", "setpriv"]);
    let (p, fail_file) = step("start the shop's pods", start_shop_pods);
    step("a 90/10 weighted split", || weighted_split(&p));
    step(
        "a failing endpoint leaves the balancer and comes back",
        || failure_accrual(&p, &fail_file),
    );
    step("retry annotations bound a half-failing backend", || {
        retry_annotations(&p)
    });
    step("a timeout annotation answers 504", || {
        timeout_annotation(&p)
    });
}

/// The shop's pods; the file that makes `bad` fail while it exists.
fn start_shop_pods() -> (Pods, std::path::PathBuf) {
    let bin = env!("CARGO_BIN_EXE_ztmesh");
    let mesh = MeshFiles::new();
    std::fs::write(mesh.manifests.join("shop.yaml"), split_manifests()).unwrap();
    let net = Net::new("s", "10.238.0", &SPLIT_PODS);
    let _controller = net.controller(&mesh.identity_dir, &mesh.manifests);
    let fail_file = mesh.tmp.path().join("bad-is-failing");
    std::fs::write(&fail_file, "").unwrap();
    let mut apps = Vec::new();
    for pod in ["v1", "v2", "good", "bad", "half", "sloth"] {
        let mut cmd = Net::exec(net.pod(pod), bin);
        cmd.args(["app", "serve", "--name", pod, "--http", "0.0.0.0:8080"]);
        match pod {
            "bad" => {
                cmd.arg("--fail-while").arg(&fail_file);
            }
            "half" => {
                cmd.args(["--fail-rate", "0.5"]);
            }
            "sloth" => {
                cmd.args(["--delay", "3s"]);
            }
            _ => {}
        }
        let mut d = Daemon::spawn(cmd);
        d.wait_for("HTTP on", std::time::Duration::from_secs(10));
        apps.push(d);
    }
    let mut proxies = Vec::new();
    for (pod, sa) in [
        ("client", "client"),
        ("v1", "web"),
        ("v2", "web"),
        ("good", "flaky"),
        ("bad", "flaky"),
        ("half", "orders"),
        ("sloth", "sloth"),
    ] {
        net.proxy_init(pod);
        let workload = format!(
            r#"{{"ns":"shop","pod":"{}"}}"#,
            match pod {
                "v1" => "web-v1",
                "v2" => "web-v2",
                "good" => "flaky-good",
                "bad" => "flaky-bad",
                "half" => "orders",
                other => other,
            }
        );
        proxies.push(net.proxy(pod, ("shop", sa), &mesh, Some(&workload), &[]));
    }
    let pods = Pods {
        proxies,
        _apps: apps,
        _controller,
        net,
        _mesh: mesh,
    };
    (pods, fail_file)
}

/// 90/10 over 2,000 requests.
fn weighted_split(p: &Pods) {
    let (net, proxies) = (&p.net, &p.proxies);
    let load_from = |url: &str, rps: u32, secs: u32| load(net, "GET", url, rps, secs);
    let r = load_from(&format!("http://{WEB_IP}/"), 200, 10);
    let (v1, v2) = (
        r.get("served_by_v1").copied().unwrap_or(0.0),
        r.get("served_by_v2").copied().unwrap_or(0.0),
    );
    assert_eq!(v1 + v2, 2000.0, "{r:?}\n{}", proxies[0].output());
    let share = v2 / (v1 + v2);
    eprintln!(
        "weighted split: v1 {v1}, v2 {v2} ({:.1}% to v2)",
        share * 100.0
    );
    assert!(
        (0.07..=0.13).contains(&share),
        "v2 got {:.1}%",
        share * 100.0
    );
}

/// A failing endpoint leaves the balancer...
fn failure_accrual(p: &Pods, fail_file: &std::path::Path) {
    let net = &p.net;
    let load_from = |url: &str, rps: u32, secs: u32| load(net, "GET", url, rps, secs);
    let r = load_from(&format!("http://{FLAKY_IP}/"), 20, 5);
    let bad = r.get("served_by_bad").copied().unwrap_or(0.0);
    eprintln!("while bad fails: {r:?}");
    assert!(bad <= 15.0, "the failing endpoint still got {bad} of 100");
    // ... and comes back once it recovers (after its penalty, a probe
    // finds it well).
    std::fs::remove_file(fail_file).unwrap();
    eventually(
        std::time::Duration::from_secs(20),
        "the recovered endpoint serving again",
        || {
            let r = load_from(&format!("http://{FLAKY_IP}/"), 10, 1);
            check(r.get("served_by_bad").copied().unwrap_or(0.0) >= 1.0, r)
        },
    );
    // Back in the balancer: it serves again (how much depends on its
    // peak-EWMA latency estimate, which carries the probes' history and
    // decays over 10s), and nothing fails any more.
    let r = load_from(&format!("http://{FLAKY_IP}/"), 20, 10);
    let bad = r.get("served_by_bad").copied().unwrap_or(0.0);
    eprintln!("after bad recovered: {r:?}");
    assert!(bad >= 1.0, "the recovered endpoint got no traffic: {r:?}");
    assert_eq!(r.get("ok").copied(), Some(200.0), "{r:?}");
}

/// retry.linkerd.io/http: 5xx with limit 3 on a backend failing half:
/// about 1 - 0.5^4 succeed (no budget: the limit bounds them).
fn retry_annotations(p: &Pods) {
    let net = &p.net;
    let load_from = |url: &str, rps: u32, secs: u32| load(net, "GET", url, rps, secs);
    let r = load_from(&format!("http://{ORDERS_IP}/orders/1"), 10, 5);
    let ok = r["ok"] / r["sent"];
    assert!(
        ok >= 0.8,
        "with the retry annotations only {ok:.2} succeeded: {r:?}"
    );
    let m = Net::metrics(net.pod("client"));
    assert!(
        counter(&m, "outbound_route_retry_total", "orders-retries") > 0.0,
        "{m}"
    );
}

/// timeout.linkerd.io/request: 500ms in front of a 3s backend.
fn timeout_annotation(p: &Pods) {
    let net = &p.net;
    assert_504_within_timeout(net, &format!("http://{SLOTH_IP}/nap"));
}
