//! Memory is given back after a flood (issue 11): 5,000 connections at
//! once to the client proxy's outbound port, each sending a request through
//! the mesh, and 5,000 to the server proxy's admin port, each closed
//! together. A minute later (polled, bounded) each proxy's RSS must be back
//! within twice its resting RSS. Before the fix the outbound proxy stayed
//! at ~175 MB (13 MB at rest) in a release build, and here (debug) at
//! 94.6 MB a minute after the flood for 32.9 MB at rest.

use crate::support;

use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const NET: &str = "127.0.69";
const FLOOD: usize = 5_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the proxy runs")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Reads one HTTP/1.1 answer with a Content-Length (all the proxy's
/// answers here have one) to its end; its head, or `None` if the
/// connection ended first.
async fn read_answer(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf[..end].to_vec();
            let length: usize = String::from_utf8_lossy(&head)
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let mut have = buf.len() - (end + 4);
            while have < length {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                have += n;
            }
            return Some(head);
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `FLOOD` connections at once, each sending `request` and reading the
/// answer; all held open until every one has answered, then closed.
async fn flood(addr: &str, request: &'static [u8]) -> usize {
    let mut tasks = Vec::with_capacity(FLOOD);
    let (release, _) = tokio::sync::broadcast::channel::<()>(1);
    // Connections that have their answer (or gave up on it).
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..FLOOD {
        let addr = addr.to_string();
        let mut released = release.subscribe();
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let answer = async {
                let mut s = TcpStream::connect(&addr).await.ok()?;
                s.write_all(request).await.ok()?;
                // The whole answer, as a scraper reads it (an answer left
                // unread in 5,000 sockets is the kernel's memory, not
                // the proxy's).
                let head = tokio::time::timeout(Duration::from_secs(30), read_answer(&mut s))
                    .await
                    .ok()??;
                Some((s, head.starts_with(b"HTTP/1.1 200")))
            }
            .await;
            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (_held, ok) = answer?;
            let _ = released.recv().await;
            Some(ok)
        }));
    }
    // Every connection gets its answer before any closes.
    eventually_async(
        Duration::from_secs(60),
        "every flood connection answered",
        || {
            let n = answered.load(std::sync::atomic::Ordering::Relaxed);
            async move { check(n == FLOOD, n) }
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        let _ = release.send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Some(true)) = t.await {
            ok += 1;
        }
    }
    ok
}

/// The meshed pair: webapp's proxy (client) and authors' (server).
struct Pair {
    client_proxy: Daemon,
    server_proxy: Daemon,
    outbound: String,
    admin: String,
    _app: Daemon,
    _mesh: LocalMesh,
}

const GET: &[u8] = b"GET http://authors.booksapp.svc.cluster.local:7001/authors.json HTTP/1.1\r\nHost: authors.booksapp.svc.cluster.local:7001\r\n\r\n";
const METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n";

// The serial guard spans the whole test on purpose: only test threads
// take it, at their start, never a task of this test's runtime.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_give_memory_back_after_a_flood() {
    let _serial = serial();
    raise_open_files_limit(FLOOD + 1_000);
    let p = step("start the meshed pair", start);
    let rest = step_async("warm up, then the resting RSS", resting_rss(&p)).await;
    let peak = step_async("the floods are served", floods_served(&p, rest)).await;
    step_async(
        "both give memory back within a minute",
        memory_given_back(&p, rest, peak),
    )
    .await;
}

fn start() -> Pair {
    let (client, server) = (format!("{NET}.1"), format!("{NET}.2"));
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    let files = [
        booksapp_workload("authors", &server),
        booksapp_workload("webapp", &client),
        service.to_string(),
    ]
    .join("---\n");
    let mesh = LocalMesh::start(|m| std::fs::write(m.join("w.yaml"), files).unwrap());
    let _app = sample_app("authors", &format!("{server}:18400"));
    let server_proxy = explicit_proxy(
        &mesh.control_plane(),
        "authors.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &mesh.token("booksapp", "authors"),
        &format!("{server}:18400"),
        &[],
    );
    let client_proxy = explicit_proxy(
        &mesh.control_plane(),
        "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &mesh.token("booksapp", "webapp"),
        &format!("{client}:9"),
        &[],
    );
    Pair {
        outbound: format!("{client}:4140"),
        admin: format!("{server}:4191"),
        client_proxy,
        server_proxy,
        _app,
        _mesh: mesh,
    }
}

/// Warm up (certificates, discovery, pools), then the resting RSS after a
/// quiet second: (client, server) in KiB.
async fn resting_rss(p: &Pair) -> (u64, u64) {
    let Pair {
        client_proxy,
        server_proxy,
        outbound,
        admin,
        ..
    } = p;
    eventually_async(
        Duration::from_secs(20),
        "a request through the pair",
        || async {
            flood_one(outbound, GET)
                .await
                .ok_or_else(|| client_proxy.output())
        },
    )
    .await;
    for _ in 0..50 {
        flood_one(outbound, GET).await;
        flood_one(admin, METRICS).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    (rss_kib(client_proxy.pid()), rss_kib(server_proxy.pid()))
}

/// FLOOD connections at once to each; most are answered. The RSS just
/// after: (client, server) in KiB.
async fn floods_served(p: &Pair, rest: (u64, u64)) -> (u64, u64) {
    let Pair {
        client_proxy,
        server_proxy,
        outbound,
        admin,
        ..
    } = p;
    let served = flood(outbound, GET).await;
    let peak_out = rss_kib(client_proxy.pid());
    let admin_served = flood(admin, METRICS).await;
    let peak = (
        rss_kib(client_proxy.pid()).max(peak_out),
        rss_kib(server_proxy.pid()),
    );
    eprintln!(
        "flood: {served}/{FLOOD} outbound and {admin_served}/{FLOOD} admin requests answered; RSS at rest {rest:?} KiB, after the floods {peak:?} KiB"
    );
    assert!(served >= FLOOD * 9 / 10, "{served}/{FLOOD} served");
    // The admin flood must really have loaded the proxy (most scrapes
    // answered); how many of 5,000 simultaneous /metrics encodings finish
    // within the head timeout depends on the machine's load (4456-5000
    // seen), which is a benchmark's question, not this memory test's.
    assert!(
        admin_served >= FLOOD * 3 / 4,
        "{admin_served}/{FLOOD} served"
    );
    peak
}

/// Within a minute both are back within twice their resting RSS.
async fn memory_given_back(p: &Pair, rest: (u64, u64), peak: (u64, u64)) {
    let Pair {
        client_proxy,
        server_proxy,
        ..
    } = p;
    let started = Instant::now();
    let limit = Duration::from_secs(60);
    loop {
        let now = (rss_kib(client_proxy.pid()), rss_kib(server_proxy.pid()));
        if now.0 <= 2 * rest.0 && now.1 <= 2 * rest.1 {
            eprintln!(
                "back to {now:?} KiB after {:?} (rest {rest:?}, peak {peak:?})",
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < limit,
            "RSS still {now:?} KiB a minute after the floods (rest {rest:?}, peak {peak:?}); trims: {:?}",
            [&client_proxy, &server_proxy].map(|p| p
                .output()
                .lines()
                .filter(|l| l.contains("free memory"))
                .map(String::from)
                .collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One request on its own connection; its answer if it was a 200.
async fn flood_one(addr: &str, request: &[u8]) -> Option<()> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(request).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf[..n].starts_with(b"HTTP/1.1 200").then_some(())
}
