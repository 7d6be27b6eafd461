//! SIGTERM drains the real proxy binary: webapp's proxy (explicit mode)
//! is relaying a request to a slow authors app when it gets SIGTERM; it
//! stops accepting at once, the request in flight still completes with
//! 200, and the process then exits successfully, well within
//! `LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD`.

use crate::support;

use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NET: &str = "127.0.74";
const AUTHORS_ID: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP_ID: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const URL: &str = "http://authors.booksapp.svc.cluster.local:7001/authors.json";
/// How long the authors app takes to answer.
const APP_DELAY: &str = "3s";

fn manifests(client_ip: &str, server_ip: &str) -> String {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    [
        booksapp_workload("authors", server_ip),
        booksapp_workload("webapp", client_ip),
        service.to_string(),
    ]
    .join("---\n")
}

/// Sends one absolute-form GET through `proxy`; the task yields the whole
/// answer, read until the connection closes: at once with `close`, else
/// when the proxy closes the kept-alive connection.
async fn get_through(proxy: &str, close: bool) -> tokio::task::JoinHandle<String> {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let connection = if close { "Connection: close\r\n" } else { "" };
    s.write_all(
        format!(
            "GET {URL} HTTP/1.1\r\nHost: authors.booksapp.svc.cluster.local:7001\r\n{connection}\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// The outbound requests the proxy at `ip` has counted.
async fn outbound_requests(ip: &str) -> u64 {
    let Ok(mut s) = tokio::net::TcpStream::connect(format!("{ip}:4191")).await else {
        return 0;
    };
    if s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.lines()
        .filter(|l| l.starts_with("request_total{") && l.contains("direction=\"outbound\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let (client_ip, server_ip) = (format!("{NET}.1"), format!("{NET}.2"));
    let m = manifests(&client_ip, &server_ip);
    let mesh = LocalMesh::start(|dir| std::fs::write(dir.join("pair.yaml"), m).unwrap());
    let mut app = unprivileged_ztmesh();
    app.args([
        "app",
        "serve",
        "--name",
        "authors",
        "--http",
        &format!("{server_ip}:18400"),
        "--delay",
        APP_DELAY,
    ]);
    let mut app = Daemon::spawn(app);
    app.wait_for("HTTP on", Duration::from_secs(10));
    let _server_proxy = explicit_proxy(
        &mesh.control_plane(),
        AUTHORS_ID,
        &mesh.token("booksapp", "authors"),
        &format!("{server_ip}:18400"),
        &[],
    );
    let mut client_proxy = explicit_proxy(
        &mesh.control_plane(),
        WEBAPP_ID,
        &mesh.token("booksapp", "webapp"),
        &format!("{client_ip}:9"),
        &[("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "30s")],
    );
    let proxy = format!("{client_ip}:4140");

    // Ready once a request makes it through both proxies.
    eventually_async(Duration::from_secs(30), "the pair to serve", || async {
        let answer = get_through(&proxy, true).await.await.unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(answer)
        }
    })
    .await;
    let before = outbound_requests(&client_ip).await;

    // A request in flight: the proxy has counted it, the app is waiting.
    let in_flight = get_through(&proxy, false).await;
    eventually_async(
        Duration::from_secs(5),
        "the request to leave the proxy",
        || async {
            let now = outbound_requests(&client_ip).await;
            if now > before { Ok(()) } else { Err(now) }
        },
    )
    .await;

    client_proxy.terminate();
    // New connections are refused while the request is still in flight.
    eventually_async(
        Duration::from_secs(2),
        "the listener to refuse connections after SIGTERM",
        || async {
            match tokio::net::TcpStream::connect(&proxy).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                other => Err(format!("{:?}", other.map(|_| "accepted"))),
            }
        },
    )
    .await;
    assert!(
        !client_proxy.exited(),
        "the proxy exited before its request was answered"
    );

    let answer = in_flight.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        client_proxy.output()
    );
    let status = client_proxy
        .wait_exit(Duration::from_secs(10))
        .expect("the proxy exits once drained");
    assert!(status.success(), "{status}\n{}", client_proxy.output());
    assert!(
        client_proxy.output().contains("drained; exiting"),
        "{}",
        client_proxy.output()
    );
}
