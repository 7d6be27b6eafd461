//! Load balancing end to end (explicit mode, loopback, unprivileged): a
//! service with several meshed endpoints behind their own proxies, the
//! controller watching the manifests. Requests spread over the fast
//! endpoints; a slow endpoint that joins gets a taste and is then avoided
//! (peak-EWMA); an endpoint that leaves under load fails no request.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const CLIENT: &str = "127.0.3.1";
/// (name, IP, app delay)
const ENDPOINTS: [(&str, &str, &str); 3] = [
    ("authors-1", "127.0.3.2", "0s"),
    ("authors-2", "127.0.3.3", "0s"),
    ("authors-slow", "127.0.3.4", "300ms"),
];
const APP_PORT: u16 = 18_090;
const TARGET: &str = "authors.booksapp.svc.cluster.local:7001";

fn service() -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: authors, namespace: booksapp}}\nspec: {{selector: {{app: authors}}, ports: [{{port: 7001, targetPort: {APP_PORT}}}]}}\n"
    )
}

fn workload(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: booksapp, labels: {{app: authors}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {AUTHORS}, serverName: {AUTHORS}}}\n  workloadIPs: [{{ip: {ip}}}]\n  ports: [{{port: {APP_PORT}, name: http}}]\n"
    )
}

/// One file per endpoint, so endpoints join and leave by file.
fn write_endpoint(dir: &Path, i: usize) {
    let (name, ip, _) = ENDPOINTS[i];
    std::fs::write(dir.join(format!("{name}.yaml")), workload(name, ip)).unwrap();
}

/// One request through the client's HTTP proxy; the endpoint that served it.
async fn request() -> Result<String, String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(format!("{CLIENT}:4140"))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(
            format!("GET http://{TARGET}/authors.json HTTP/1.1\r\nHost: {TARGET}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        if !out.starts_with("HTTP/1.1 200") {
            return Err(out);
        }
        out.lines()
            .find_map(|l| l.strip_prefix("x-served-by: "))
            .map(|s| s.trim().to_string())
            .ok_or(out.clone())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "no answer within 10s".to_string())?
}

/// `n` requests from `concurrency` clients at once; who served how many.
async fn tally(n: usize, concurrency: usize) -> BTreeMap<String, usize> {
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(tokio::spawn(async move {
            let mut by = BTreeMap::<String, usize>::new();
            for _ in 0..n / concurrency {
                let served = request().await.expect("the request succeeds");
                *by.entry(served).or_default() += 1;
            }
            by
        }));
    }
    let mut by = BTreeMap::new();
    for c in clients {
        for (k, v) in c.await.unwrap() {
            *by.entry(k).or_default() += v;
        }
    }
    by
}

/// The endpoints' apps and proxies, and the client's proxy.
struct Balance {
    client: Daemon,
    _daemons: Vec<Daemon>,
    mesh: LocalMesh,
}

// The serial guard spans the whole test on purpose: only test threads
// take it, at their start, never a task of this test's runtime.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_avoid_the_slow_and_survive_a_leaving_endpoint() {
    let _serial = serial();
    let b = step("start two endpoints and the client", start);
    step_async("ready once the client is certified", ready(&b)).await;
    step_async("two fast endpoints share the traffic", two_share()).await;
    step_async("a slow endpoint joins and is avoided", slow_joins(&b)).await;
    step_async(
        "an endpoint leaves under load, no request fails",
        one_leaves(&b),
    )
    .await;
}

fn start() -> Balance {
    let mesh = LocalMesh::start(|m| {
        std::fs::write(m.join("service.yaml"), service()).unwrap();
        write_endpoint(m, 0);
        write_endpoint(m, 1);
    });
    let cp = mesh.control_plane();
    let token = |sa: &str| mesh.token("booksapp", sa);
    let (webapp_token, authors_token) = (token("webapp"), token("authors"));
    let mut daemons = Vec::new();
    for (name, ip, delay) in ENDPOINTS {
        let mut app = unprivileged_ztmesh();
        app.args(["app", "serve", "--name", name, "--delay", delay])
            .args(["--http", &format!("{ip}:{APP_PORT}")]);
        let mut app = Daemon::spawn(app);
        app.wait_for("HTTP on", Duration::from_secs(10));
        daemons.push(app);
        daemons.push(explicit_proxy(
            &cp,
            AUTHORS,
            &authors_token,
            &format!("{ip}:{APP_PORT}"),
            &[],
        ));
    }
    let client = explicit_proxy(&cp, WEBAPP, &webapp_token, &format!("{CLIENT}:9"), &[]);
    Balance {
        client,
        _daemons: daemons,
        mesh,
    }
}

/// Ready once the client's identity is certified.
async fn ready(b: &Balance) {
    eventually_async(Duration::from_secs(15), "a request served", || async {
        request().await.map_err(|e| (e, b.client.output()))
    })
    .await;
}

/// Two fast endpoints share concurrent traffic (requests in flight
/// raise an endpoint's cost).
async fn two_share() {
    let by = tally(200, 8).await;
    eprintln!("two endpoints: {by:?}");
    assert_eq!(by.values().sum::<usize>(), 200);
    for name in ["authors-1", "authors-2"] {
        assert!(by.get(name).copied().unwrap_or(0) >= 40, "{by:?}");
    }
}

/// A slow endpoint joins: it gets some traffic, then little.
async fn slow_joins(b: &Balance) {
    let m = &b.mesh.manifests;
    write_endpoint(m, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut by = BTreeMap::<String, usize>::new();
    while !by.contains_key("authors-slow") {
        assert!(
            Instant::now() < deadline,
            "authors-slow never joined: {by:?}"
        );
        let served = request().await.expect("the request succeeds");
        *by.entry(served).or_default() += 1;
    }
    let by = tally(200, 8).await;
    eprintln!("after the slow endpoint joined: {by:?}");
    assert!(by.get("authors-slow").copied().unwrap_or(0) <= 20, "{by:?}");
}

/// authors-2 leaves while four clients keep sending: no request fails,
/// and once the change has landed it serves nothing.
async fn one_leaves(b: &Balance) {
    let m = &b.mesh.manifests;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let removed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let late = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (stop, failures, removed_at, late) = (
            stop.clone(),
            failures.clone(),
            removed_at.clone(),
            late.clone(),
        );
        loops.push(tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 2_000 {
                sent += 1;
                match request().await {
                    Ok(served) => {
                        let settled = removed_at
                            .lock()
                            .unwrap()
                            .is_some_and(|t| t.elapsed() > Duration::from_secs(2));
                        if settled {
                            *late.lock().unwrap().entry(served).or_default() += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(m.join("authors-2.yaml")).unwrap();
    *removed_at.lock().unwrap() = Some(Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for l in loops {
        sent += l.await.unwrap();
    }
    let late = late.lock().unwrap().clone();
    eprintln!("{sent} requests while authors-2 left; after it left: {late:?}");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed");
    assert!(
        late.values().sum::<usize>() > 0,
        "no requests after the change"
    );
    assert!(!late.contains_key("authors-2"), "{late:?}");
}
