//! Authorization with pods as network namespaces (transparent interception,
//! the real controller and proxies; root, as CI is): the seed's api-server
//! Server and ServerAuthorization in namespace my-app, whose default
//! inbound policy is deny.
//! - web-frontend (meshed) -> api-server:8080 is allowed;
//! - legacy-service (unmeshed, namespace legacy) -> api-server:8080 gets 403;
//! - web-frontend -> api-server:9090, a port no Server covers, is denied by
//!   the namespace's default;
//! - api-server -> db-proxy:5432 (opaque) is allowed; web-frontend ->
//!   db-proxy:5432 is refused.

use crate::support;

use std::time::Duration;
use support::netns::*;
use support::*;

const SUBNET: &str = "10.235.0";
/// (pod, IP)
const PODS: [(&str, &str); 4] = [
    ("web", "10.235.0.11"),
    ("api", "10.235.0.12"),
    ("legacy", "10.235.0.13"),
    ("db", "10.235.0.14"),
];

fn manifests() -> String {
    let [web, api, legacy, db] = PODS.map(|(_, ip)| ip);
    let docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: my-app, annotations: {config.linkerd.io/default-inbound-policy: deny}}\n".to_string(),
        pod_manifest("web-frontend", "my-app", "web-frontend", web, "app: web-frontend", 8080, true),
        pod_manifest("api-server", "my-app", "api-server", api, "app: my-api", 8080, true),
        pod_manifest("legacy-service", "legacy", "legacy-service", legacy, "app: legacy", 8080, false),
        pod_manifest("db-proxy", "my-app", "db-proxy", db, "app: db-proxy", 5432, true),
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: db, namespace: my-app}\nspec: {podSelector: {matchLabels: {app: db-proxy}}, port: 5432, proxyProtocol: opaque}\n".into(),
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: api-to-db, namespace: my-app}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: db}\n  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: api-server}]\n".into(),
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: api-server, namespace: my-app}\nspec: {identities: [api-server.my-app.serviceaccount.identity.linkerd.cluster.local]}\n".into(),
    ];
    docs.join("---\n")
}

fn seeds() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(dir.is_dir(), "seed fixtures expected at {}", dir.display());
    dir
}

/// HTTP status of a request from pod `from` (as an unprivileged user).
fn status(net: &Net, from: &str, method: &str, url: &str) -> String {
    let out = Net::unprivileged(net.pod(from), "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "10",
            "-X",
            method,
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The seed's pods: the controller, the apps and the meshed pods' proxies.
struct SeedPods {
    proxies: Vec<Daemon>,
    _apps: Vec<Daemon>,
    _controller: Daemon,
    net: Net,
    _mesh: MeshFiles,
}

#[test]
fn seed_policies_between_namespace_pods() {
    require_root_and_tools(&["ip", "iptables-legacy", "curl", "setpriv"]);
    let p = step("start the seed's pods", start_seed_pods);
    step(
        "HTTP: web allowed, legacy and an uncovered port denied",
        || http_decisions(&p),
    );
    step("opaque TCP: api allowed, web refused", || tcp_decisions(&p));
    step("the metrics show the decisions", || {
        metrics_show_decisions(&p)
    });
}

fn start_seed_pods() -> SeedPods {
    let bin = env!("CARGO_BIN_EXE_ztmesh");
    let mesh = MeshFiles::new();
    std::fs::copy(
        seeds().join("seed002-server-authorization.yaml"),
        mesh.manifests.join("seed002-server-authorization.yaml"),
    )
    .unwrap();
    std::fs::write(mesh.manifests.join("pods.yaml"), manifests()).unwrap();

    let net = Net::new("a", SUBNET, &PODS);
    let _controller = net.controller(&mesh.identity_dir, &mesh.manifests);
    // Applications (as root: their own traffic is not intercepted).
    let mut apps = Vec::new();
    for (pod, args) in [
        (
            "api",
            vec!["--name", "api-server", "--http", "0.0.0.0:8080"],
        ),
        (
            "api",
            vec!["--name", "api-server-admin", "--http", "0.0.0.0:9090"],
        ),
        (
            "db",
            vec![
                "--name",
                "db",
                "--http",
                "127.0.0.1:18080",
                "--tcp",
                "0.0.0.0:5432",
            ],
        ),
    ] {
        let mut cmd = Net::exec(net.pod(pod), bin);
        cmd.args(["app", "serve"]).args(&args);
        let mut d = Daemon::spawn(cmd);
        d.wait_for("HTTP on", Duration::from_secs(10));
        apps.push(d);
    }
    let mut proxies = Vec::new();
    for (pod, sa, workload, ports) in [
        (
            "web",
            "web-frontend",
            r#"{"ns":"my-app","pod":"web-frontend"}"#,
            "8080",
        ),
        (
            "api",
            "api-server",
            r#"{"ns":"my-app","pod":"api-server"}"#,
            "8080",
        ),
        (
            "db",
            "db-proxy",
            r#"{"ns":"my-app","pod":"db-proxy"}"#,
            "5432",
        ),
    ] {
        net.proxy_init(pod);
        proxies.push(net.proxy(
            pod,
            ("my-app", sa),
            &mesh,
            Some(workload),
            &[("LINKERD2_PROXY_INBOUND_PORTS", ports)],
        ));
    }
    SeedPods {
        proxies,
        _apps: apps,
        _controller,
        net,
        _mesh: mesh,
    }
}

fn http_decisions(p: &SeedPods) {
    let (net, proxies, api) = (&p.net, &p.proxies, p.net.ip("api"));
    assert_eq!(
        status(net, "web", "GET", &format!("http://{api}:8080/api/users")),
        "200",
        "web-frontend -> api-server:\n{}",
        proxies[1].output()
    );
    assert_eq!(
        status(
            net,
            "legacy",
            "GET",
            &format!("http://{api}:8080/api/users")
        ),
        "403",
        "legacy-service -> api-server"
    );
    assert_eq!(
        status(net, "web", "GET", &format!("http://{api}:9090/admin")),
        "403",
        "a port no Server covers, in a default-deny namespace"
    );
}

fn tcp_decisions(p: &SeedPods) {
    let (net, bin, db) = (&p.net, env!("CARGO_BIN_EXE_ztmesh"), p.net.ip("db"));
    let tcp = |from: &str| {
        let out = Net::unprivileged(net.pod(from), bin)
            .args(["app", "tcp", &format!("{db}:5432"), "--message", "SELECT 1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(tcp("api"), "db:SELECT 1\n", "api-server -> db-proxy");
    assert!(
        !tcp("web").contains("SELECT 1"),
        "web-frontend -> db-proxy must be refused"
    );
}

fn metrics_show_decisions(p: &SeedPods) {
    let net = &p.net;
    let api_metrics = Net::metrics(net.pod("api"));
    assert!(
        api_metrics.lines().any(|l| l.starts_with("inbound_http_authz_allow_total{")
            && l.contains("srv_name=\"api-server\"")
            && l.contains("authz_name=\"allow-web-to-api\"")
            && l.contains("client_id=\"web-frontend.my-app.serviceaccount.identity.linkerd.cluster.local\"")),
        "{api_metrics}"
    );
    assert!(
        api_metrics
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_deny_total{")
                && l.contains("srv_name=\"api-server\"")
                && l.contains("tls=\"no_identity\"")),
        "{api_metrics}"
    );
    assert!(
        api_metrics
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_deny_total{")
                && l.contains("srv_kind=\"default\",srv_name=\"deny\"")),
        "{api_metrics}"
    );
    let db_metrics = Net::metrics(net.pod("db"));
    assert!(
        db_metrics
            .lines()
            .any(|l| l.starts_with("inbound_tcp_authz_deny_total{")
                && l.contains("web-frontend.my-app")),
        "{db_metrics}"
    );
}

/// (pod, IP) for the booksapp test.
const BOOKSAPP: [(&str, &str); 4] = [
    ("authors", "10.236.0.11"),
    ("books", "10.236.0.12"),
    ("webapp", "10.236.0.13"),
    ("traffic", "10.236.0.14"),
];

fn booksapp_manifests() -> String {
    let mut docs: Vec<String> = BOOKSAPP
        .iter()
        .map(|(p, ip)| pod_manifest(p, "booksapp", p, ip, &format!("app: {p}"), 7001, true))
        .collect();
    docs.push("apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n".into());
    docs.push("apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors-audit, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7002, proxyProtocol: HTTP/1, accessPolicy: audit}\n".into());
    docs.join("---\n")
}

fn with_identities(ids: &[&str]) -> String {
    let seed = std::fs::read_to_string(seeds().join("seed003-booksapp-authors.yaml")).unwrap();
    let start = seed.find("  identities:\n").unwrap() + "  identities:\n".len();
    let list: String = ids
        .iter()
        .map(|sa| {
            format!("    - \"{sa}.booksapp.serviceaccount.identity.linkerd.cluster.local\"\n")
        })
        .collect();
    format!("{}{list}", &seed[..start])
}

#[test]
fn booksapp_authors_policy_between_pods() {
    require_root_and_tools(&["ip", "iptables-legacy", "curl", "setpriv"]);
    let bin = env!("CARGO_BIN_EXE_ztmesh");
    let mesh = MeshFiles::new();
    let seed_file = mesh.manifests.join("seed003-booksapp-authors.yaml");
    std::fs::copy(seeds().join("seed003-booksapp-authors.yaml"), &seed_file).unwrap();
    std::fs::write(mesh.manifests.join("pods.yaml"), booksapp_manifests()).unwrap();
    let net = Net::new("b", "10.236.0", &BOOKSAPP);
    let _controller = net.controller(&mesh.identity_dir, &mesh.manifests);
    let mut apps = Vec::new();
    for port in [7001, 7002] {
        let mut cmd = Net::exec(net.pod("authors"), bin);
        cmd.args(["app", "serve", "--name", "authors", "--http"])
            .arg(format!("0.0.0.0:{port}"));
        let mut d = Daemon::spawn(cmd);
        d.wait_for("HTTP on", Duration::from_secs(10));
        apps.push(d);
    }
    let mut proxies = Vec::new();
    for (pod, _) in BOOKSAPP {
        net.proxy_init(pod);
        let workload = format!(r#"{{"ns":"booksapp","pod":"{pod}"}}"#);
        proxies.push(net.proxy(
            pod,
            ("booksapp", pod),
            &mesh,
            Some(&workload),
            &[("LINKERD2_PROXY_INBOUND_PORTS", "7001,7002")],
        ));
    }
    let authors = net.ip("authors");
    let url = |port: u16, path: &str| format!("http://{authors}:{port}{path}");
    let request = |from: &str, method: &str, url: &str| status(&net, from, method, url);
    // The seed: books and webapp may GET the authors routes; others 403;
    // other paths and methods match no route: 404.
    for (from, method, path, want) in [
        ("books", "GET", "/authors.json", "200"),
        ("webapp", "GET", "/authors/7.json", "200"),
        ("traffic", "GET", "/authors.json", "403"),
        ("webapp", "POST", "/authors.json", "404"),
        ("books", "GET", "/books.json", "404"),
    ] {
        assert_eq!(
            request(from, method, &url(7001, path)),
            want,
            "{from} {method} {path}\n{}",
            proxies[0].output()
        );
    }
    // Audit: let through, counted as audit.
    assert_eq!(request("traffic", "GET", &url(7002, "/x")), "200");
    let m = Net::metrics(net.pod("authors"));
    assert!(
        m.lines()
            .any(|l| l.starts_with("inbound_http_authz_allow_total{")
                && l.contains("srv_name=\"authors-audit\"")
                && l.contains("authz_name=\"audit\"")),
        "{m}"
    );
    // An edit on disk reaches the running proxy within 2s, both ways.
    for (ids, want) in [
        (vec!["books", "webapp", "traffic"], "200"),
        (vec!["books", "webapp"], "403"),
    ] {
        std::fs::write(mesh.manifests.join("edit.tmp"), with_identities(&ids)).unwrap();
        std::fs::rename(mesh.manifests.join("edit.tmp"), &seed_file).unwrap();
        let edited = tokio::time::Instant::now();
        eventually(
            Duration::from_secs(2),
            &format!("the edit ({ids:?}) taking effect"),
            || {
                let status = request("traffic", "GET", &url(7001, "/authors.json"));
                check(status == want, status)
            },
        );
        eprintln!("edit to {ids:?} took effect in {:?}", edited.elapsed());
    }
    drop(proxies);
    drop(apps);
}
