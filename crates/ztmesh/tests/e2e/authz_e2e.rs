//! Authorization end to end (explicit mode on loopback, unprivileged
//! proxies, the real controller watching a manifests directory): the
//! seeds' booksapp policy on authors (books and webapp may GET the authors
//! routes; others get 403, other paths and methods 404), an opaque
//! database port only books may open, a Server in audit mode, a policy
//! edit on disk reaching the running proxy within 2s, and a dead controller
//! that does not reopen what policy closed.

use crate::support;

use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const NS: &str = "booksapp";
const AUTHORS_IP: &str = "127.0.4.2";
const DB_IP: &str = "127.0.4.3";
/// Clients: (service account, proxy IP).
const CLIENTS: [(&str, &str); 3] = [
    ("books", "127.0.4.11"),
    ("webapp", "127.0.4.12"),
    ("traffic", "127.0.4.13"),
];
const HTTP_PORT: u16 = 18_100;
const AUDIT_PORT: u16 = 18_101;
const DB_PORT: u16 = 15_432;

fn id(sa: &str) -> String {
    format!("{sa}.{NS}.serviceaccount.identity.linkerd.cluster.local")
}

fn seeds() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(dir.is_dir(), "seed fixtures expected at {}", dir.display());
    dir
}

fn workloads() -> String {
    let authors = id("authors");
    let db = id("db");
    format!(
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: authors, namespace: {NS}, labels: {{app: authors}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {authors}, serverName: {authors}}}\n  workloadIPs: [{{ip: {AUTHORS_IP}}}]\n  ports: [{{port: {HTTP_PORT}, name: http}}, {{port: {AUDIT_PORT}, name: audit}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {{name: authors, namespace: {NS}}}\nspec: {{selector: {{app: authors}}, ports: [{{name: http, port: 7001, targetPort: {HTTP_PORT}}}, {{name: audit, port: 7002, targetPort: {AUDIT_PORT}}}]}}\n---\n\
apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: authors, namespace: {NS}}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: authors}}}}, port: {HTTP_PORT}, proxyProtocol: HTTP/1}}\n---\n\
apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: authors-audit, namespace: {NS}}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: authors}}}}, port: {AUDIT_PORT}, proxyProtocol: HTTP/1, accessPolicy: audit}}\n---\n\
apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: db, namespace: {NS}, labels: {{app: db}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {db}, serverName: {db}}}\n  workloadIPs: [{{ip: {DB_IP}}}]\n  ports: [{{port: {DB_PORT}, name: postgres}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: {NS}}}\nspec: {{selector: {{app: db}}, ports: [{{port: 5432, targetPort: {DB_PORT}}}]}}\n---\n\
apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: db, namespace: {NS}}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: db}}}}, port: {DB_PORT}, proxyProtocol: opaque}}\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: db-clients, namespace: {NS}}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: db}}\n  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: db-clients}}]\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: db-clients, namespace: {NS}}}\nspec: {{identities: [{}]}}\n",
        id("books")
    )
}

/// (status line, lowercased head, body) of one request through `client`'s
/// HTTP proxy port.
async fn request(client_ip: &str, method: &str, url: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(format!("{client_ip}:4140"))
        .await
        .unwrap();
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    s.write_all(format!("{method} {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(s).await
}

async fn read_response(mut s: tokio::net::TcpStream) -> (String, String, String) {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        head.to_lowercase(),
        body.to_string(),
    )
}

fn authors_url(path: &str) -> String {
    format!("http://authors.{NS}.svc.cluster.local:7001{path}")
}

/// Opens `db` through `client`'s proxy (CONNECT), sends a line, half-closes;
/// what came back.
async fn db_round_trip(client_ip: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(format!("{client_ip}:4140"))
        .await
        .unwrap();
    let target = format!("db.{NS}.svc.cluster.local:5432");
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return String::from_utf8_lossy(&head).into_owned();
    }
    let _ = s.write_all(b"SELECT 1").await;
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn metrics(ip: &str) -> String {
    let s = tokio::net::TcpStream::connect(format!("{ip}:4191"))
        .await
        .unwrap();
    let mut s = s;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    read_response(s).await.2
}

/// A sample of `family` (its name and `{`) whose line holds every one of `parts`.
fn has_sample(metrics: &str, family: &str, parts: &[&str]) -> bool {
    metrics
        .lines()
        .any(|l| l.starts_with(family) && parts.iter().all(|p| l.contains(p)))
}

fn edit_authn(m: &Path, identities: &[String]) {
    let seed = std::fs::read_to_string(seeds().join("seed003-booksapp-authors.yaml")).unwrap();
    let mut edited = seed.clone();
    let list: String = identities
        .iter()
        .map(|i| format!("    - \"{i}\"\n"))
        .collect();
    let start = edited.find("  identities:\n").unwrap() + "  identities:\n".len();
    edited.replace_range(start.., &list);
    std::fs::write(m.join("seed003-booksapp-authors.yaml.tmp"), &edited).unwrap();
    std::fs::rename(
        m.join("seed003-booksapp-authors.yaml.tmp"),
        m.join("seed003-booksapp-authors.yaml"),
    )
    .unwrap();
}

/// The running scenario: the mesh, every process (apps, then the two
/// workloads' proxies, then the clients' proxies), and which is which.
struct Scene {
    mesh: LocalMesh,
    daemons: Vec<Daemon>,
    authors_proxy: usize,
    traffic_proxy: usize,
}

/// The clients' proxy IPs.
const BOOKS: &str = CLIENTS[0].1;
const WEBAPP: &str = CLIENTS[1].1;
const TRAFFIC: &str = CLIENTS[2].1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booksapp_policy_enforced_by_the_proxies() {
    let mut s = step_async("start the mesh, the workloads and the clients", start()).await;
    step_async("the seed's policy decides", seed_policy_decides(&mut s)).await;
    step_async("an unmeshed client is denied", unmeshed_client_denied()).await;
    step_async(
        "the opaque database port is books' only",
        opaque_port_books_only(),
    )
    .await;
    step_async("audit denies nothing", audit_denies_nothing()).await;
    step_async(
        "authors' metrics carry the decisions",
        metrics_carry_the_decisions(),
    )
    .await;
    step_async(
        "db's metrics and authors' log carry the decisions",
        db_metrics_and_the_log(&s),
    )
    .await;
    step_async(
        "a revoked open connection is terminated",
        revoked_connection_terminated(&s),
    )
    .await;
    step_async(
        "a policy edit reaches the proxy within 2s",
        policy_edit_within_2s(&s),
    )
    .await;
    step_async(
        "a dead controller reopens nothing",
        dead_controller_reopens_nothing(&mut s),
    )
    .await;
}

/// The workloads, authors (HTTP) and db (TCP echo), each behind a proxy
/// that enforces its policy, and the three clients' proxies; ready once
/// books reaches authors.
async fn start() -> Scene {
    let mesh = LocalMesh::start(|m| {
        std::fs::copy(
            seeds().join("seed003-booksapp-authors.yaml"),
            m.join("seed003-booksapp-authors.yaml"),
        )
        .unwrap();
        std::fs::write(m.join("workloads.yaml"), workloads()).unwrap();
    });
    let mut daemons = Vec::new();
    let mut app = unprivileged_ztmesh();
    app.args(["app", "serve", "--name", "authors"])
        .args(["--http", &format!("{AUTHORS_IP}:{HTTP_PORT}")])
        .args(["--tcp", &format!("{DB_IP}:{DB_PORT}")]);
    let mut app = Daemon::spawn(app);
    app.wait_for("TCP echo on", Duration::from_secs(10));
    daemons.push(app);
    // authors' second port, which a Server in audit mode governs.
    let mut audit_app = unprivileged_ztmesh();
    audit_app
        .args(["app", "serve", "--name", "authors-audit"])
        .args(["--http", &format!("{AUTHORS_IP}:{AUDIT_PORT}")]);
    let mut audit_app = Daemon::spawn(audit_app);
    audit_app.wait_for("HTTP on", Duration::from_secs(10));
    daemons.push(audit_app);
    for (sa, ip, port) in [("authors", AUTHORS_IP, HTTP_PORT), ("db", DB_IP, DB_PORT)] {
        let workload = format!(r#"{{"ns":"{NS}","external_workload":"{sa}"}}"#);
        let ports = if sa == "authors" {
            format!("{HTTP_PORT},{AUDIT_PORT}")
        } else {
            DB_PORT.to_string()
        };
        daemons.push(explicit_proxy(
            &mesh.control_plane(),
            &id(sa),
            &mesh.token(NS, sa),
            &format!("{ip}:{port}"),
            &[
                ("LINKERD2_PROXY_POLICY_SVC_ADDR", mesh.policy.as_str()),
                (
                    "LINKERD2_PROXY_POLICY_SVC_NAME",
                    "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
                ),
                ("LINKERD2_PROXY_POLICY_WORKLOAD", workload.as_str()),
                ("LINKERD2_PROXY_INBOUND_PORTS", ports.as_str()),
            ],
        ));
    }
    let authors_proxy = daemons.len() - 2;
    for (sa, ip) in CLIENTS {
        daemons.push(explicit_proxy(
            &mesh.control_plane(),
            &id(sa),
            &mesh.token(NS, sa),
            &format!("{ip}:9"),
            &[],
        ));
    }
    let authors_log = &daemons[authors_proxy];
    eventually_async(
        Duration::from_secs(20),
        "books reaching authors",
        || async {
            let (status, _, _) = request(BOOKS, "GET", &authors_url("/authors.json")).await;
            check(
                status.starts_with("HTTP/1.1 200"),
                (status, authors_log.output()),
            )
        },
    )
    .await;
    Scene {
        mesh,
        traffic_proxy: authors_proxy + 2 + CLIENTS.len() - 1,
        daemons,
        authors_proxy,
    }
}

/// The seed's policy: books and webapp may GET the authors routes; traffic
/// gets 403, other paths and methods 404; the client's proxy learns why.
async fn seed_policy_decides(s: &mut Scene) {
    for (client, method, path, want) in [
        (BOOKS, "GET", "/authors.json", "200"),
        (WEBAPP, "GET", "/authors/12.json", "200"),
        (TRAFFIC, "GET", "/authors.json", "403"),
        (WEBAPP, "POST", "/authors.json", "404"),
        (WEBAPP, "GET", "/books.json", "404"),
    ] {
        let (status, head, body) = request(client, method, &authors_url(path)).await;
        assert!(
            status.starts_with(&format!("HTTP/1.1 {want}")),
            "{client} {method} {path}: {status}\n{head}\n{body}"
        );
        if want != "200" {
            // The client's proxy learns why (and logs it); its app does not.
            assert!(!head.contains("l5d-proxy-error"), "{head}");
        } else {
            assert_eq!(body, format!("authors:{method} {path}"));
        }
    }
    // traffic's proxy was told why it was denied, and logged it.
    let line = s.daemons[s.traffic_proxy].wait_for("remote proxy error", Duration::from_secs(5));
    assert!(line.contains("error=server/authors"), "{line}");
}

/// A plaintext GET straight to authors' inbound port: (status, head).
async fn unmeshed_get() -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(format!("{AUTHORS_IP}:4143"))
        .await
        .unwrap();
    s.write_all(b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(s).await;
    (status, head)
}

/// An unmeshed client talking to authors' proxy directly: no identity,
/// 403, and no reason given.
async fn unmeshed_client_denied() {
    let (status, head) = unmeshed_get().await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert!(!head.contains("l5d-proxy-error"), "{head}");
}

/// The opaque database port: books only.
async fn opaque_port_books_only() {
    assert_eq!(db_round_trip(BOOKS).await, "authors:SELECT 1");
    assert_eq!(
        db_round_trip(WEBAPP).await,
        "",
        "webapp's connection is closed"
    );
}

/// Audit: nothing denied, what would have been is counted as audit (in
/// the next step's metrics).
async fn audit_denies_nothing() {
    let (status, _, _) = request(
        TRAFFIC,
        "GET",
        &format!("http://authors.{NS}.svc.cluster.local:7002/anything"),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

/// authors' metrics count each HTTP decision above with its labels.
async fn metrics_carry_the_decisions() {
    // The metrics are recorded as the responses end: read them once the
    // last families asserted below show books' permit and traffic's denial.
    let books_id = format!("client_id=\"{}\"", id("books"));
    let traffic_id = format!("client_id=\"{}\"", id("traffic"));
    let am = eventually_async(
        Duration::from_secs(5),
        "authors' metrics counting books' and traffic's requests",
        || async {
            let am = metrics(AUTHORS_IP).await;
            let settled = has_sample(&am, "response_latency_ms_bucket{", &[&books_id])
                && has_sample(&am, "inbound_http_authz_deny_total{", &[&traffic_id]);
            check(settled, am)
        },
    )
    .await;
    let has = |family: &str, parts: &[&str]| has_sample(&am, family, parts);
    assert!(
        has(
            "inbound_http_authz_allow_total{",
            &[
                "srv_name=\"authors\"",
                "route_name=\"authors-get-route\"",
                "authz_name=\"authors-get-policy\"",
                &books_id
            ]
        ),
        "{am}"
    );
    // The golden-signal families carry the permit's labels too, in
    // linkerd2-proxy's order after the TLS labels; denials are not in them.
    for family in [
        "request_total{",
        "response_total{",
        "response_latency_ms_bucket{",
    ] {
        assert!(
            has(
                family,
                &[&format!(
                    "client_id=\"{}\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"authors\",srv_port=\"{HTTP_PORT}\",route_group=\"policy.linkerd.io\",route_kind=\"httproute\",route_name=\"authors-get-route\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"authors-get-policy\"",
                    id("books")
                )]
            ),
            "{family}: {am}"
        );
    }
    assert!(
        !am.lines().any(|l| l.starts_with("request_total{")
            && l.contains(&format!(
                "client_id=\"{}\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"authors\"",
                id("traffic")
            ))),
        "traffic was denied on the authors server: {am}"
    );
    let denied = [
        "srv_name=\"authors\"",
        "route_name=\"authors-get-route\"",
        &traffic_id,
    ];
    assert!(has("inbound_http_authz_deny_total{", &denied), "{am}");
    let webapp_id = format!("client_id=\"{}\"", id("webapp"));
    let not_found = ["srv_name=\"authors\"", &webapp_id];
    assert!(
        has("inbound_http_route_not_found_total{", &not_found),
        "{am}"
    );
    let audited = [
        "srv_name=\"authors-audit\"",
        "authz_name=\"audit\"",
        &traffic_id,
    ];
    assert!(has("inbound_http_authz_allow_total{", &audited), "{am}");
}

/// db's metrics count the TCP decisions; authors' proxy logs the denial.
async fn db_metrics_and_the_log(s: &Scene) {
    let dm = metrics(DB_IP).await;
    assert!(
        has_sample(
            &dm,
            "inbound_tcp_authz_allow_total{",
            &["authz_name=\"db-clients\""]
        ),
        "{dm}"
    );
    assert!(
        has_sample(&dm, "inbound_tcp_authz_deny_total{", &[&id("webapp")]),
        "{dm}"
    );
    let log = s.daemons[s.authors_proxy].output();
    assert!(
        log.lines().any(|l| l.contains("request denied")
            && l.contains(&id("traffic"))
            && l.contains("route=httproute/authors-get-route")),
        "{log}"
    );
}

/// An open connection the policy stops admitting is terminated (and
/// counted); the policy is then restored.
async fn revoked_connection_terminated(s: &Scene) {
    let m = &s.mesh.manifests;
    let mut held = tokio::net::TcpStream::connect(format!("{BOOKS}:4140"))
        .await
        .unwrap();
    let target = format!("db.{NS}.svc.cluster.local:5432");
    held.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(held.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    held.write_all(b"still here").await.unwrap();
    let workloads_file = m.join("workloads.yaml");
    std::fs::write(
        m.join("workloads.tmp"),
        workloads().replace(
            &format!("identities: [{}]", id("books")),
            &format!("identities: [{}]", id("webapp")),
        ),
    )
    .unwrap();
    std::fs::rename(m.join("workloads.tmp"), &workloads_file).unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the revoked connection stayed open");
    assert!(
        rest.is_empty(),
        "no echo for a revoked connection: {rest:?}"
    );
    let dm = metrics(DB_IP).await;
    assert!(
        has_sample(&dm, "inbound_tcp_authz_terminate_total{", &[&id("books")]),
        "{dm}"
    );
    std::fs::write(m.join("workloads.tmp"), workloads()).unwrap();
    std::fs::rename(m.join("workloads.tmp"), &workloads_file).unwrap();
}

/// A policy edit on disk reaches the running proxy within 2s, and so does
/// its revocation.
async fn policy_edit_within_2s(s: &Scene) {
    let m = &s.mesh.manifests;
    for (identities, want, what) in [
        (
            vec![id("books"), id("webapp"), id("traffic")],
            "HTTP/1.1 200",
            "the edit letting traffic in",
        ),
        (
            vec![id("books"), id("webapp")],
            "HTTP/1.1 403",
            "the revocation",
        ),
    ] {
        edit_authn(m, &identities);
        let edited = Instant::now();
        eventually_async(Duration::from_secs(2), what, || async {
            let (status, _, _) = request(TRAFFIC, "GET", &authors_url("/authors.json")).await;
            check(status.starts_with(want), status)
        })
        .await;
        eprintln!("{what} took effect in {:?}", edited.elapsed());
    }
}

/// The controller dies: the proxy keeps the last policy (the default,
/// all-unauthenticated, would let the plaintext client in).
async fn dead_controller_reopens_nothing(s: &mut Scene) {
    let authors_log = |s: &Scene| s.daemons[s.authors_proxy].output();
    let before = authors_log(s).matches("the inbound policy stream").count();
    s.mesh.controller.interrupt();
    eventually_async(
        Duration::from_secs(10),
        "authors' proxy seeing its policy stream end",
        || {
            let log = authors_log(s);
            async move {
                check(
                    log.matches("the inbound policy stream").count() > before,
                    log,
                )
            }
        },
    )
    .await;
    let (status, _) = unmeshed_get().await;
    assert!(
        status.starts_with("HTTP/1.1 403"),
        "after the controller died: {status}"
    );
}
