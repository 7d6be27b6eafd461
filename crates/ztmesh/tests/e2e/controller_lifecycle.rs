//! The controller process across its life, with the real binary: a restart
//! with a refused manifest keeps the last good policy, hostile and large
//! manifests never stall identity or policy, SIGTERM stops it with streams
//! open, and a port in use stops it at start.

use crate::support;

use futures::StreamExt;
use linkerd2_proxy_api::inbound::PortSpec;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;
use tokio::time::Instant;

const AUTHORS: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: authors, namespace: booksapp, labels: {app: authors}}\nspec:\n  serviceAccountName: authors\n  containers: [{name: app, image: authors, ports: [{name: http, containerPort: 7001}]}]\n";

/// The seed whose MeshTLSAuthentication lets only books and webapp GET authors.
fn seed_authors() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/seeds/seed003-booksapp-authors.yaml");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("seed fixture {}: {e}", path.display()))
}

struct Install {
    tmp: tempfile::TempDir,
    identity: PathBuf,
    manifests: PathBuf,
}

fn install() -> Install {
    let tmp = tempfile::tempdir().unwrap();
    let identity = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&identity));
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    Install {
        tmp,
        identity,
        manifests,
    }
}

/// `ztmesh controller` over `install`, every port ephemeral unless `extra` says.
fn start(install: &Install, extra: &[&str]) -> Daemon {
    let mut cmd = ztmesh();
    cmd.arg("controller")
        .arg("--identity-dir")
        .arg(&install.identity)
        .arg("--manifests")
        .arg(&install.manifests);
    for (flag, value) in [
        ("--identity-addr", "127.0.0.1:0"),
        ("--policy-addr", "127.0.0.1:0"),
        ("--destination-addr", "127.0.0.1:0"),
        ("--viz-addr", "127.0.0.1:0"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(extra);
    Daemon::spawn(cmd)
}

/// Opens a WatchPort stream for authors:7001 on the controller's policy port.
async fn watch_authors(policy_addr: &str) -> tonic::Streaming<linkerd2_proxy_api::inbound::Server> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{policy_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    InboundServerPoliciesClient::new(channel)
        .watch_port(PortSpec {
            workload: r#"{"ns":"booksapp","pod":"authors"}"#.into(),
            port: 7001,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The identities the authors route's authorization allows (empty when
/// the route has no authorization).
fn route_identities(server: &linkerd2_proxy_api::inbound::Server) -> Vec<String> {
    use linkerd2_proxy_api::inbound::authn::{Permit, permit_mesh_tls::Clients};
    use linkerd2_proxy_api::inbound::proxy_protocol::Kind;
    let Some(Kind::Http1(h)) = server.protocol.as_ref().and_then(|p| p.kind.clone()) else {
        panic!("HTTP/1 expected: {server:?}")
    };
    let Some(authz) = h.routes.first().and_then(|r| r.authorizations.first()) else {
        return Vec::new();
    };
    assert_eq!(authz.labels["name"], "authors-get-policy");
    match authz.authentication.as_ref().and_then(|a| a.permit.clone()) {
        Some(Permit::MeshTls(m)) => match m.clients {
            Some(Clients::Identities(ids)) => ids.identities.into_iter().map(|i| i.name).collect(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

const BOOKS_AND_WEBAPP: [&str; 2] = [
    "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
    "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
];

async fn first_policy(controller: &mut Daemon) -> linkerd2_proxy_api::inbound::Server {
    let addr = controller.listening_addr("policy service");
    let mut stream = watch_authors(&addr).await;
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a policy within 20s")
        .expect("a message")
        .expect("not an error")
}

/// GET `path` from `addr` (HTTP/1.1, connection closed after); the body.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut rsp = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut rsp))
        .await
        .expect("a response within 10s")
        .unwrap();
    assert!(rsp.starts_with("HTTP/1.1 200"), "{rsp}");
    rsp.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// Stops the controller with SIGTERM; it must exit 0 within `within`.
fn stop(controller: &mut Daemon, within: Duration) {
    controller.terminate();
    let status = controller.wait_exit(within);
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit within {within:?}, status 0:\n{}",
        controller.output()
    );
}

#[tokio::test]
async fn restart_with_a_refused_authentication_keeps_its_last_good_content() {
    let install = install();
    step_async("a first run serves the seed's policy", first_run(&install)).await;
    step("while it is down, bad files are written", || {
        bad_files_while_down(&install)
    });
    let mut controller = step_async(
        "the restarted controller keeps the last good content",
        restarted_keeps_last_good(&install),
    )
    .await;
    step_async(
        "the viz API's /status lists the refused files",
        status_lists_refused(&install, &mut controller),
    )
    .await;
    drop(install.tmp);
}

/// The seed's policy is served; then the controller is killed (SIGKILL):
/// what is recorded must not depend on a clean exit.
async fn first_run(install: &Install) {
    let m = &install.manifests;
    std::fs::write(m.join("authors.yaml"), AUTHORS).unwrap();
    std::fs::write(m.join("seed003.yaml"), seed_authors()).unwrap();
    let mut controller = start(install, &[]);
    assert_eq!(
        route_identities(&first_policy(&mut controller).await),
        BOOKS_AND_WEBAPP
    );
    drop(controller);
}

/// While it is down: an unknown field in the MeshTLSAuthentication, and
/// a file that sorts first redefining it to allow traffic.
fn bad_files_while_down(install: &Install) {
    let m = &install.manifests;
    let seed = seed_authors().replace("  identities:\n", "  colour: red\n  identities:\n");
    std::fs::write(m.join("seed003.yaml"), seed).unwrap();
    std::fs::write(
        m.join("0-open.yaml"),
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: authors-get-authn, namespace: booksapp}\nspec: {identities: [traffic.booksapp.serviceaccount.identity.linkerd.cluster.local]}\n",
    )
    .unwrap();
}

/// The Server, with its last good authorization, and the refusals logged.
async fn restarted_keeps_last_good(install: &Install) -> Daemon {
    let mut controller = start(install, &[]);
    let policy = first_policy(&mut controller).await;
    assert_eq!(
        (
            policy.labels["kind"].as_str(),
            policy.labels["name"].as_str()
        ),
        ("server", "authors"),
        "the Server, not the default policy"
    );
    assert_eq!(
        route_identities(&policy),
        BOOKS_AND_WEBAPP,
        "the last good authorization:\n{}",
        controller.output()
    );
    for needle in [
        "seed003.yaml document 3 (MeshTLSAuthentication booksapp/authors-get-authn) spec.colour: unknown field `colour`",
        "manifest refused; its last good content from the state directory is in force",
        "0-open.yaml document 1 (MeshTLSAuthentication booksapp/authors-get-authn): already defined in",
    ] {
        assert!(
            output_within(&controller, needle, Duration::from_secs(5)),
            "{needle}:\n{}",
            controller.output()
        );
    }
    controller
}

/// The viz API's /status lists both refused files and what is in force.
async fn status_lists_refused(install: &Install, controller: &mut Daemon) {
    let viz = controller.listening_addr("viz API");
    let status = http_get(&viz, "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    let refused: Vec<(String, String)> = status["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap();
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            (
                name.into_owned(),
                r["in_force"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("0-open.yaml".to_string(), "nothing".to_string()),
            ("seed003.yaml".to_string(), "state-dir".to_string()),
        ],
        "{status}"
    );
    assert!(
        install.identity.join(".ztmesh-state").is_dir(),
        "the default state directory"
    );
}

/// Polls the collected output for `needle` until `timeout` (the process may have exited).
fn output_within(daemon: &Daemon, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !daemon.output().contains(needle) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[tokio::test]
async fn a_deeply_nested_manifest_is_refused_by_name_quickly() {
    let install = install();
    let m = &install.manifests;
    std::fs::write(m.join("authors.yaml"), AUTHORS).unwrap();
    std::fs::write(m.join("seed003.yaml"), seed_authors()).unwrap();
    // The attacker's 400 KB of nested `[` (serde_yaml alone needs minutes).
    std::fs::write(m.join("deep.yaml"), format!("a: {}\n", "[".repeat(400_000))).unwrap();
    let started = Instant::now();
    let mut controller = start(&install, &[]);
    let policy = first_policy(&mut controller).await;
    assert_eq!(route_identities(&policy), BOOKS_AND_WEBAPP);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let needle = format!(
        "{}: nesting deeper than 100 levels at line 1",
        m.join("deep.yaml").display()
    );
    assert!(
        output_within(&controller, &needle, Duration::from_secs(5)),
        "{needle}:\n{}",
        controller.output()
    );
}

/// A legal manifest that takes the controller many seconds to parse: a
/// Namespace with `n` annotations.
fn large_manifest(n: usize) -> String {
    let mut text =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: large\n  annotations:\n");
    for i in 0..n {
        text.push_str(&format!("    example.com/annotation-{i}: value-{i}\n"));
    }
    text
}

#[tokio::test]
async fn certify_answers_while_a_large_manifest_is_parsed() {
    let install = install();
    let m = &install.manifests;
    std::fs::write(m.join("authors.yaml"), AUTHORS).unwrap();
    std::fs::write(m.join("large.yaml"), large_manifest(LARGE_ANNOTATIONS)).unwrap();
    let token = install.tmp.path().join("books.token");
    token_file(&install.identity, "booksapp", "books", &token);
    let mut controller = start(&install, &["--manifest-size-limit", "256MiB"]);
    let identity = controller.listening_addr("identity service");

    let started = Instant::now();
    let mut certify = Daemon::spawn(support::certify(
        &identity,
        "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &token,
        &install.identity.join("ca.crt"),
        &install.tmp.path().join("books"),
    ));
    let status = certify.wait_exit(Duration::from_secs(10));
    let elapsed = started.elapsed();
    let log = controller.output();
    assert!(
        status.is_some_and(|s| s.success()),
        "Certify within 10s: {status:?} after {elapsed:?}\n{}\ncontroller:\n{log}",
        certify.output()
    );
    // The first scan logs this once the large file is parsed and applied.
    assert!(
        !log.contains("manifests applied"),
        "Certify must answer while the large manifest is still being parsed, not after:\n{log}"
    );
    eprintln!("Certify answered in {elapsed:?} while the manifests were parsed");
}

/// Enough annotations to take several times Certify's bound to parse.
const LARGE_ANNOTATIONS: usize = 400_000;

#[tokio::test]
async fn sigterm_stops_the_controller_with_streams_open() {
    let install = install();
    std::fs::write(install.manifests.join("authors.yaml"), AUTHORS).unwrap();
    std::fs::write(install.manifests.join("seed003.yaml"), seed_authors()).unwrap();
    let mut controller = start(&install, &[]);
    let addr = controller.listening_addr("policy service");
    let mut stream = watch_authors(&addr).await;
    let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a policy")
        .unwrap()
        .unwrap();
    assert_eq!(first.labels["name"], "authors");

    let started = Instant::now();
    stop(&mut controller, Duration::from_secs(10));
    eprintln!("stopped {:?} after SIGTERM", started.elapsed());
    assert!(
        output_within(&controller, "controller stopped", Duration::from_secs(2)),
        "{}",
        controller.output()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends with the process");
    assert!(
        !matches!(end, Some(Ok(_))),
        "no more policy after the exit: {end:?}"
    );
}

#[test]
fn a_port_in_use_stops_the_controller_at_start() {
    let install = install();
    let mut first = start(&install, &[]);
    let policy = first.listening_addr("policy service");

    let mut second = start(&install, &["--policy-addr", &policy]);
    let status = second.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a controller that cannot bind must exit non-zero within 10s: {status:?}\n{}",
        second.output()
    );
    let needle = format!("error: binding the policy service to {policy}: Address already in use");
    assert!(
        output_within(&second, &needle, Duration::from_secs(2)),
        "{}",
        second.output()
    );
    assert!(
        !second.output().contains("listening on"),
        "nothing is served before every listener is bound:\n{}",
        second.output()
    );
}
