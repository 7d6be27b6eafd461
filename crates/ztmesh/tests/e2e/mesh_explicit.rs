//! Two meshed workloads in explicit mode on their own loopback addresses:
//! webapp's application reaches authors through its proxy's HTTP proxy
//! port; the proxies speak mTLS with the controller's certificates, and the
//! identities show in both proxies' metrics. An endpoint that claims another
//! identity is refused with a clear error.

use crate::support;

use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const A: &str = "127.0.1.31";
const B: &str = "127.0.1.32";
const APP_PORT: u16 = 18_080;

fn manifests(app_port: u16) -> String {
    let workload = |name: &str, identity: &str, app: &str| {
        format!(
            "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: booksapp, labels: {{app: {app}}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {identity}, serverName: {AUTHORS}}}\n  workloadIPs: [{{ip: {B}}}]\n  ports: [{{port: {app_port}, name: http}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: {app}, namespace: booksapp}}\nspec: {{selector: {{app: {app}}}, ports: [{{port: 7001, targetPort: {app_port}}}]}}\n"
        )
    };
    format!(
        "{}---\n{}",
        workload("authors", AUTHORS, "authors"),
        // The impostor's endpoint is authors' proxy, but it claims reviews' identity.
        workload(
            "impostor",
            "reviews.booksapp.serviceaccount.identity.linkerd.cluster.local",
            "impostor"
        )
    )
}

async fn http(addr: &str, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// CONNECT through `proxy`, send `payload`, half-close, read everything.
async fn tunnel(proxy: &str, authority: &str, payload: &[u8]) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        return (head, String::from_utf8_lossy(&rest).into_owned());
    }
    s.write_all(payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    (head, String::from_utf8_lossy(&out).into_owned())
}

async fn wait_ready(ip: &str, proxy: &Daemon) {
    eventually_async(Duration::from_secs(10), &format!("{ip} ready"), || async {
        let status = http(&format!("{ip}:4191"), b"GET /ready HTTP/1.0\r\n\r\n").await;
        check(status.starts_with("HTTP/1.0 200"), (status, proxy.output()))
    })
    .await;
}

/// The controller, authors' app, and both workloads' proxies.
struct Pair {
    a: Daemon,
    _b: Daemon,
    _app: Daemon,
    _controller: InProcessController,
    _tmp: tempfile::TempDir,
}

/// webapp's HTTP proxy port.
fn outbound() -> String {
    format!("{A}:4140")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webapp_reaches_authors_over_mtls() {
    let p = step_async("start the mesh, unprivileged", start()).await;
    step_async("CONNECT tunnels over mTLS", connect_tunnels(&p)).await;
    step_async(
        "an absolute-form request goes on in origin form",
        absolute_form(),
    )
    .await;
    step_async(
        "an endpoint that cannot prove its identity is refused",
        impostor_refused(),
    )
    .await;
    step_async("not a proxy request: 400", not_a_proxy_request()).await;
    step_async(
        "both proxies count the mTLS connections",
        metrics_count_mtls(),
    )
    .await;
}

/// An install, authors' application and both proxies, unprivileged, with
/// the controller; ready when both proxies are.
async fn start() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    // The unprivileged proxies read their token files from here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let anchors = std::fs::read_to_string(d.join("ca.crt")).unwrap();

    // authors' application, unprivileged too.
    let mut app = unprivileged_ztmesh();
    app.args([
        "app",
        "serve",
        "--name",
        "app",
        "--http",
        &format!("{B}:{APP_PORT}"),
    ]);
    let mut app = Daemon::spawn(app);
    app.wait_for("HTTP on", Duration::from_secs(10));

    let m = tmp.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("booksapp.yaml"), manifests(APP_PORT)).unwrap();
    let controller = InProcessController::with_manifests(&d, &m);
    let identity_addr = controller.addrs().identity.to_string();
    let destination_addr = controller.addrs().destination.unwrap().to_string();

    let tokens = |sa: &str| {
        let path = tmp.path().join(format!("{sa}.token"));
        token_file(&d, "booksapp", sa, &path);
        path
    };
    let cp = ControlPlane {
        anchors: &anchors,
        identity: &identity_addr,
        destination: Some(&destination_addr),
    };
    let a = explicit_proxy(&cp, WEBAPP, &tokens("webapp"), &format!("{A}:9"), &[]);
    let b = explicit_proxy(
        &cp,
        AUTHORS,
        &tokens("authors"),
        &format!("{B}:{APP_PORT}"),
        &[],
    );
    wait_ready(A, &a).await;
    wait_ready(B, &b).await;
    if is_root() {
        assert_eq!(
            (a.uid(), b.uid(), app.uid()),
            (65534, 65534, 65534),
            "the proxies and the app run unprivileged"
        );
    }
    Pair {
        a,
        _b: b,
        _app: app,
        _controller: controller,
        _tmp: tmp,
    }
}

/// CONNECT: a tunnel for any bytes, mTLS between the proxies.
async fn connect_tunnels(p: &Pair) {
    let (a, outbound) = (&p.a, outbound());
    let (head, body) = tunnel(
        &outbound,
        "authors.booksapp.svc.cluster.local:7001",
        b"GET /through-the-tunnel HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{head}{body}\nA:\n{}",
        a.output()
    );
    assert!(
        body.ends_with("\r\n\r\napp:GET /through-the-tunnel"),
        "{body}"
    );
}

/// An absolute-form request goes on in origin form.
async fn absolute_form() {
    let outbound = outbound();
    let mut s = tokio::net::TcpStream::connect(&outbound).await.unwrap();
    s.write_all(b"GET http://authors.booksapp.svc.cluster.local:7001/authors.json HTTP/1.1\r\nHost: authors\r\n\r\n").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("app:GET /authors.json"),
        "{out}"
    );
}

/// An endpoint that cannot prove the identity it claims is refused.
async fn impostor_refused() {
    let outbound = outbound();
    let (head, body) = tunnel(&outbound, "impostor.booksapp.svc.cluster.local:7001", b"x").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}{body}");
    assert!(
        head.contains("l5d-proxy-error: mTLS to")
            && head.contains(
                "as reviews.booksapp.serviceaccount.identity.linkerd.cluster.local failed"
            ),
        "{head}"
    );
    assert!(head.to_lowercase().contains("not valid for name"), "{head}");
}

/// Not a proxy request at all.
async fn not_a_proxy_request() {
    let outbound = outbound();
    let resp = http(
        &outbound,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 400") && resp.contains("l5d-proxy-error"),
        "{resp}"
    );
}

/// Both proxies count the two mTLS connections (a counter is bumped as
/// the connection is accounted, which may trail the answer).
async fn metrics_count_mtls() {
    let target =
        format!("target_addr=\"{B}:{APP_PORT}\",target_ip=\"{B}\",target_port=\"{APP_PORT}\"");
    let b_open = format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"true\",client_id=\"{WEBAPP}\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{APP_PORT}\"}} 2"
    );
    let b_metrics = eventually_async(Duration::from_secs(5), &b_open, || async {
        let m = http(&format!("{B}:4191"), b"GET /metrics HTTP/1.0\r\n\r\n").await;
        check(m.contains(&b_open), m)
    })
    .await;
    // Counted with the Service's name and the endpoint's labels from
    // Destination, as linkerd2-proxy counts them.
    let a_open = format!(
        "tcp_open_total{{direction=\"outbound\",peer=\"dst\",authority=\"authors.booksapp.svc.cluster.local:7001\",{target},tls=\"true\",server_id=\"{AUTHORS}\",dst_external_workload=\"authors\",dst_namespace=\"booksapp\",dst_service=\"authors\",dst_zone=\"\"}} 2"
    );
    let a_metrics = eventually_async(Duration::from_secs(5), &a_open, || async {
        let m = http(&format!("{A}:4191"), b"GET /metrics HTTP/1.0\r\n\r\n").await;
        check(m.contains(&a_open), m)
    })
    .await;
    // Debian's promtool parses both and finds nothing to say but the
    // abbreviated units Linkerd's `_ms` family names force.
    for metrics in [&a_metrics, &b_metrics] {
        let body = metrics
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or(metrics);
        assert!(body.contains("response_latency_ms_bucket{"), "{body}");
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        let problems = promtool_problems(body);
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }
}

/// `promtool check metrics` on `text`: its findings, less the
/// abbreviated-unit ones.
fn promtool_problems(text: &str) -> Vec<String> {
    use std::io::Write;
    require_tool("promtool");
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    all.lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("abbreviated unit"))
        .map(String::from)
        .collect()
}
