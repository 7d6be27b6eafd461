//! A mesh mixing identity sources, with the real binaries: webapp's proxy
//! is certified by the controller (Certify, a DNS identity), books' proxy
//! takes its X.509-SVID from a SPIFFE Workload API (a SPIFFE ID only),
//! under one bundle. Here the Workload API is the in-process test server
//! (`ztmesh-proxy`'s `test-util`), serving SVIDs signed by the mesh's
//! issuer on a Unix socket, until `ztmesh agent` serves it. Requests go
//! both ways; each side's policy names the other (books by its
//! `spiffe://` ID), and webapp's metrics name books by its SPIFFE ID.

use crate::support;

use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztmesh_proxy::identity::workload_api::proto::X509SvidResponse;
use ztmesh_proxy::identity::workload_api::test_server::{TestWorkloadApi, issue_svid};

const NS: &str = "booksapp";
const WEB_IP: &str = "127.0.17.2";
const BOOKS_IP: &str = "127.0.17.3";
const PORT: u16 = 18_170;
const WEB: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const BOOKS_DNS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const BOOKS_ID: &str = "spiffe://cluster.local/ns/booksapp/sa/books";
const TRAFFIC_IP: &str = "127.0.17.4";
const TRAFFIC: &str = "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local";

/// A workload, its Service, a Server on its port, and a policy admitting
/// exactly `admits`.
fn workload(name: &str, ip: &str, identity: &str, server_name: &str, admits: &str) -> String {
    format!(
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: {NS}, labels: {{app: {name}}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: \"{identity}\", serverName: {server_name}}}\n  workloadIPs: [{{ip: {ip}}}]\n  ports: [{{port: {PORT}, name: http}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 7001, targetPort: {PORT}}}]}}\n---\n\
apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: {name}}}}}, port: {PORT}, proxyProtocol: HTTP/1}}\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: {name}}}\n  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: {name}}}]\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{identities: [\"{admits}\"]}}\n---\n"
    )
}

/// (status line, body) of a GET through the proxy on `ip`.
async fn get(ip: &str, service: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(format!("{ip}:4140"))
        .await
        .unwrap();
    let host = format!("{service}.{NS}.svc.cluster.local:7001");
    s.write_all(
        format!("GET http://{host}/hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().into(), body.into())
}

async fn metrics(ip: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(format!("{ip}:4191"))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn policy_env<C>(mesh: &LocalMesh<C>, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LINKERD2_PROXY_POLICY_SVC_ADDR", mesh.policy.clone()),
        (
            "LINKERD2_PROXY_POLICY_SVC_NAME",
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local".into(),
        ),
        (
            "LINKERD2_PROXY_POLICY_WORKLOAD",
            format!(r#"{{"ns":"{NS}","external_workload":"{name}"}}"#),
        ),
        ("LINKERD2_PROXY_INBOUND_PORTS", PORT.to_string()),
    ]
}

/// The two workloads; webapp admits books as `books_client` (the identity
/// its certificate shows a peer).
fn manifests(books_client: &'static str) -> impl FnOnce(&std::path::Path) {
    move |m| {
        let both = workload("webapp", WEB_IP, WEB, WEB, books_client)
            + &workload("books", BOOKS_IP, BOOKS_ID, BOOKS_DNS, WEB);
        std::fs::write(m.join("workloads.yaml"), both).unwrap();
    }
}

/// With the in-process Workload API test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // serial(): the agent's test uses the same addresses
async fn a_workload_api_proxy_and_a_certified_proxy_talk_both_ways() {
    let _serial = serial(); // the same addresses as the agent's test
    let mesh = LocalMesh::start(manifests(BOOKS_ID));

    // The Workload API on a socket the unprivileged proxy may use.
    let socket = mesh.tmp.path().join("workload-api.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let api = TestWorkloadApi::new();
    tokio::spawn(api.clone().serve(listener));
    let issuer =
        ztmesh_identity::Issuer::load_dir(&mesh.identity_dir, std::time::SystemTime::now())
            .unwrap();
    let chain: Vec<Vec<u8>> = issuer.chain().iter().map(|c| c.to_vec()).collect();
    let bundle: Vec<Vec<u8>> =
        ztmesh_identity::pem::certificates(mesh.anchors.as_bytes(), "anchors")
            .unwrap()
            .iter()
            .map(|c| c.to_vec())
            .collect();
    let key = std::fs::read_to_string(mesh.identity_dir.join("issuer.key")).unwrap();
    let svid = issue_svid(&chain, &key, BOOKS_ID, Duration::from_secs(3600), &bundle).unwrap();
    api.send(X509SvidResponse {
        svids: vec![svid],
        ..Default::default()
    });
    mixed_mesh(&mesh, &socket, &[], BOOKS_ID).await;
    assert!(
        api.streams() >= 1 && api.refused() == 0,
        "the proxy called FetchX509SVID with the security header"
    );
}

/// Two proxies (webapp certified, books from the Workload API at `socket`)
/// and a third certified client; requests both ways and a refusal; webapp
/// sees books as `books_client`.
async fn mixed_mesh<C>(
    mesh: &LocalMesh<C>,
    socket: &std::path::Path,
    extra: &[&Daemon],
    books_client: &str,
) {
    let mut daemons = vec![
        sample_app("webapp", &format!("{WEB_IP}:{PORT}")),
        sample_app("books", &format!("{BOOKS_IP}:{PORT}")),
    ];
    let env = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let web_env = env(&policy_env(mesh, "webapp"));
    let web_env: Vec<(&str, &str)> = web_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    daemons.push(explicit_proxy(
        &mesh.control_plane(),
        WEB,
        &mesh.token(NS, "webapp"),
        &format!("{WEB_IP}:{PORT}"),
        &web_env,
    ));
    let address = format!("unix://{}", socket.display());
    let mut books_env = policy_env(mesh, "books");
    books_env.extend([
        (
            "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS",
            address,
        ),
        ("LINKERD2_PROXY_IDENTITY_SERVER_ID", BOOKS_ID.into()),
        ("LINKERD2_PROXY_IDENTITY_SERVER_NAME", BOOKS_DNS.into()),
    ]);
    let books_env: Vec<(&str, &str)> = books_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The Certify settings explicit_proxy sets are unused in this mode.
    daemons.push(explicit_proxy(
        &mesh.control_plane(),
        BOOKS_DNS,
        &mesh.token(NS, "books"),
        &format!("{BOOKS_IP}:{PORT}"),
        &books_env,
    ));
    // A third, certified client that webapp's policy does not name.
    daemons.push(explicit_proxy(
        &mesh.control_plane(),
        TRAFFIC,
        &mesh.token(NS, "traffic"),
        &format!("{TRAFFIC_IP}:9"),
        &[],
    ));
    let logs = |d: &[Daemon]| {
        let others: Vec<String> = extra.iter().map(|e| e.output()).collect();
        format!(
            "webapp:\n{}\nbooks:\n{}\nothers:\n{}",
            d[2].output(),
            d[3].output(),
            others.join("\n")
        )
    };

    step_async("books -> webapp: policy admits books by name", async {
        eventually_async(Duration::from_secs(20), "books reaching webapp", || async {
            let (status, body) = get(BOOKS_IP, "webapp").await;
            check(
                status.starts_with("HTTP/1.1 200"),
                (status, body, logs(&daemons)),
            )
        })
        .await;
    })
    .await;
    step_async("webapp -> books: books proves its SPIFFE ID", async {
        eventually_async(Duration::from_secs(20), "webapp reaching books", || async {
            let (status, body) = get(WEB_IP, "books").await;
            check(
                status.starts_with("HTTP/1.1 200"),
                (status, body, logs(&daemons)),
            )
        })
        .await;
    })
    .await;
    step_async("webapp's policy refuses a client it does not name", async {
        eventually_async(
            Duration::from_secs(20),
            "traffic refused by webapp",
            || async {
                let (status, body) = get(TRAFFIC_IP, "webapp").await;
                check(status.starts_with("HTTP/1.1 403"), (status, body))
            },
        )
        .await;
    })
    .await;
    step_async(
        "webapp's metrics name books as its certificate does",
        async {
            let text = metrics(WEB_IP).await;
            assert!(
                text.contains(&format!("client_id=\"{books_client}\"")),
                "{}",
                text.lines()
                    .filter(|l| l.contains("client_id"))
                    .take(10)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        },
    )
    .await;
}

const BUNDLE_IP: &str = "127.0.17.10";

fn anchor_lines(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("ztmesh_identity_trust_anchors{"))
        .count()
}

/// `ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`: the running proxy follows
/// its bundle file (an added anchor shows in its metrics), refuses a bad
/// update with the reason in its log, and keeps the last good bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_follows_its_trust_bundle_file() {
    let mesh = LocalMesh::start(|_| {});
    let other = mesh.tmp.path().join("other");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&other));
    let bundle = mesh.tmp.path().join("bundle.pem");
    std::fs::write(&bundle, &mesh.anchors).unwrap();
    let file = bundle.display().to_string();
    let mut proxy = explicit_proxy(
        &mesh.control_plane(),
        WEB,
        &mesh.token(NS, "webapp"),
        &format!("{BUNDLE_IP}:9"),
        &[("ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE", file.as_str())],
    );
    proxy.wait_for("certificate installed", Duration::from_secs(10));
    assert_eq!(anchor_lines(&metrics(BUNDLE_IP).await), 1);

    step_async("an added anchor is followed", async {
        let both = mesh.anchors.clone() + &std::fs::read_to_string(other.join("ca.crt")).unwrap();
        std::fs::write(&bundle, both).unwrap();
        eventually_async(Duration::from_secs(15), "two anchors in use", || async {
            let text = metrics(BUNDLE_IP).await;
            check(anchor_lines(&text) == 2, proxy.output())
        })
        .await;
    })
    .await;
    step_async(
        "a bad bundle is refused and the last good one stays",
        async {
            std::fs::write(&bundle, "not a bundle").unwrap();
            proxy.wait_for("trust bundle update refused", Duration::from_secs(15));
            assert_eq!(anchor_lines(&metrics(BUNDLE_IP).await), 2);
            assert!(!proxy.exited(), "the proxy keeps running");
        },
    )
    .await;
}

/// With the real `ztmesh agent`: the controller signs books' SVID for the
/// agent (NodeIdentity, node token), the agent attests the proxy by its
/// uid and serves it the SVID and the bundle. The SVID names books by its
/// SPIFFE ID alone, as SPIRE's do, so webapp's policy admits books by
/// that ID and webapp's metrics show it as books' `client_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // serial(): the test server's test uses the same addresses
async fn a_proxy_on_ztmesh_agent_and_a_certified_proxy_talk_both_ways() {
    let _serial = serial();
    let files = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The proxies run as nobody when the tests run as root.
    let uid = if is_root() { 65534 } else { unsafe_free_uid() };
    let attestations = files.path().join("attestations.yaml");
    std::fs::write(
        &attestations,
        format!(
            "apiVersion: ztmesh.io/v1alpha1\nkind: WorkloadAttestation\nmetadata: {{name: books}}\nspec:\n  namespace: {NS}\n  serviceAccount: books\n  nodes: [node-a]\n  selectors: [unix:uid:{uid}]\n"
        ),
    )
    .unwrap();
    let mesh = LocalMesh::start_with(
        manifests(BOOKS_ID),
        &["--workload-attestations", attestations.to_str().unwrap()],
    );
    let token = run_ok(
        ztmesh()
            .args(["token", "create", "--dir"])
            .arg(&mesh.identity_dir)
            .args(["--node", "node-a"]),
    );
    let token_file = files.path().join("node.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let socket = files.path().join("agent.sock");
    let mut agent = Daemon::spawn({
        let mut c = ztmesh();
        c.arg("agent")
            .arg("--socket")
            .arg(&socket)
            .args(["--node", "node-a", "--controller-addr", &mesh.identity])
            .arg("--node-token-file")
            .arg(&token_file)
            .arg("--attestations")
            .arg(&attestations)
            .arg("--trust-anchors")
            .arg(mesh.identity_dir.join("ca.crt"));
        c
    });
    agent.wait_for("SPIFFE Workload API on", Duration::from_secs(20));
    mixed_mesh(&mesh, &socket, &[&agent], BOOKS_ID).await;
}

/// This process's uid, without unsafe code: the owner of a file it creates.
fn unsafe_free_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}
