//! Authorization end to end (explicit mode on loopback, unprivileged
//! proxies, the real controller watching a manifests directory): the
//! seeds' booksapp policy on authors (books and webapp may GET the authors
//! routes; others get 403, other paths and methods 404), an opaque
//! database port only books may open, a Server in audit mode, a policy
//! edit on disk reaching the running proxy within 2s, and a dead controller
//! that does not reopen what policy closed.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booksapp_policy_enforced_by_the_proxies() {
    let mut mesh = LocalMesh::start(|m| {
        std::fs::copy(
            seeds().join("seed003-booksapp-authors.yaml"),
            m.join("seed003-booksapp-authors.yaml"),
        )
        .unwrap();
        std::fs::write(m.join("workloads.yaml"), workloads()).unwrap();
    });
    let (m, policy) = (mesh.manifests.clone(), mesh.policy.clone());
    let token = |sa: &str| mesh.token(NS, sa);
    let mut daemons = Vec::new();
    // The workloads: authors (HTTP) and db (TCP echo), each behind a proxy
    // that enforces its policy.
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
            &token(sa),
            &format!("{ip}:{port}"),
            &[
                ("LINKERD2_PROXY_POLICY_SVC_ADDR", policy.as_str()),
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
            &token(sa),
            &format!("{ip}:9"),
            &[],
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, _) = request(CLIENTS[0].1, "GET", &authors_url("/authors.json")).await;
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "books never reached authors: {status}\n{}",
            daemons[authors_proxy].output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The seed's policy.
    let [books, webapp, traffic] = CLIENTS.map(|(_, ip)| ip);
    for (client, method, path, want) in [
        (books, "GET", "/authors.json", "200"),
        (webapp, "GET", "/authors/12.json", "200"),
        (traffic, "GET", "/authors.json", "403"),
        (webapp, "POST", "/authors.json", "404"),
        (webapp, "GET", "/books.json", "404"),
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
    let traffic_proxy = authors_proxy + 2 + CLIENTS.len() - 1;
    let line = daemons[traffic_proxy].wait_for("remote proxy error", Duration::from_secs(5));
    assert!(line.contains("error=server/authors"), "{line}");

    // An unmeshed client talking to authors' proxy directly: no identity,
    // 403, and no reason given.
    let s = tokio::net::TcpStream::connect(format!("{AUTHORS_IP}:4143"))
        .await
        .unwrap();
    let mut s = s;
    s.write_all(b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(s).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert!(!head.contains("l5d-proxy-error"), "{head}");

    // The opaque database port: books only.
    assert_eq!(db_round_trip(books).await, "authors:SELECT 1");
    assert_eq!(
        db_round_trip(webapp).await,
        "",
        "webapp's connection is closed"
    );

    // Audit: nothing denied, what would have been is counted as audit.
    let (status, _, _) = request(
        traffic,
        "GET",
        &format!("http://authors.{NS}.svc.cluster.local:7002/anything"),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

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
                &format!("client_id=\"{}\"", id("books"))
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
                    "client_id=\"{}\",srv_kind=\"server\",srv_name=\"authors\",srv_port=\"{HTTP_PORT}\",route_kind=\"httproute\",route_name=\"authors-get-route\",authz_kind=\"authorizationpolicy\",authz_name=\"authors-get-policy\"",
                    id("books")
                )]
            ),
            "{family}: {am}"
        );
    }
    assert!(
        !am.lines().any(|l| l.starts_with("request_total{")
            && l.contains(&format!(
                "client_id=\"{}\",srv_kind=\"server\",srv_name=\"authors\"",
                id("traffic")
            ))),
        "traffic was denied on the authors server: {am}"
    );
    assert!(
        has(
            "inbound_http_authz_deny_total{",
            &[
                "srv_name=\"authors\"",
                "route_name=\"authors-get-route\"",
                &format!("client_id=\"{}\"", id("traffic"))
            ]
        ),
        "{am}"
    );
    assert!(
        has(
            "inbound_http_route_not_found_total{",
            &[
                "srv_name=\"authors\"",
                &format!("client_id=\"{}\"", id("webapp"))
            ]
        ),
        "{am}"
    );
    assert!(
        has(
            "inbound_http_authz_allow_total{",
            &[
                "srv_name=\"authors-audit\"",
                "authz_name=\"audit\"",
                &format!("client_id=\"{}\"", id("traffic"))
            ]
        ),
        "{am}"
    );
    let dm = metrics(DB_IP).await;
    assert!(
        dm.lines()
            .any(|l| l.starts_with("inbound_tcp_authz_allow_total{")
                && l.contains("authz_name=\"db-clients\"")),
        "{dm}"
    );
    assert!(
        dm.lines()
            .any(|l| l.starts_with("inbound_tcp_authz_deny_total{") && l.contains(&id("webapp"))),
        "{dm}"
    );
    let log = daemons[authors_proxy].output();
    assert!(
        log.lines().any(|l| l.contains("request denied")
            && l.contains(&id("traffic"))
            && l.contains("route=httproute/authors-get-route")),
        "{log}"
    );

    // An open connection the policy stops admitting is terminated.
    let mut held = tokio::net::TcpStream::connect(format!("{books}:4140"))
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
        dm.lines().any(
            |l| l.starts_with("inbound_tcp_authz_terminate_total{") && l.contains(&id("books"))
        ),
        "{dm}"
    );
    std::fs::write(m.join("workloads.tmp"), workloads()).unwrap();
    std::fs::rename(m.join("workloads.tmp"), &workloads_file).unwrap();

    // A policy edit on disk reaches the running proxy within 2s.
    edit_authn(&m, &[id("books"), id("webapp"), id("traffic")]);
    let edited = Instant::now();
    loop {
        let (status, _, _) = request(traffic, "GET", &authors_url("/authors.json")).await;
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(2),
            "the edit did not take effect within 2s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("policy edit took effect in {:?}", edited.elapsed());
    edit_authn(&m, &[id("books"), id("webapp")]);
    let edited = Instant::now();
    loop {
        let (status, _, _) = request(traffic, "GET", &authors_url("/authors.json")).await;
        if status.starts_with("HTTP/1.1 403") {
            break;
        }
        assert!(
            edited.elapsed() < Duration::from_secs(2),
            "revocation took over 2s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The controller dies: the proxy keeps the last policy (the default,
    // all-unauthenticated, would let the plaintext client in).
    let before = daemons[authors_proxy]
        .output()
        .matches("the inbound policy stream")
        .count();
    mesh.controller.interrupt();
    eventually_async(
        Duration::from_secs(10),
        "authors' proxy seeing its policy stream end",
        || {
            let log = daemons[authors_proxy].output();
            async move {
                check(
                    log.matches("the inbound policy stream").count() > before,
                    log,
                )
            }
        },
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(format!("{AUTHORS_IP}:4143"))
        .await
        .unwrap();
    s.write_all(b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(s).await;
    assert!(
        status.starts_with("HTTP/1.1 403"),
        "after the controller died: {status}"
    );
    drop(daemons);
}
