//! `ztmesh viz tap` against a real proxy's Tap API: the tap identity sees
//! the requests that match its filter, up to its limit; any other
//! identity, and plaintext, are refused.

use crate::support;

use std::time::Duration;
use support::*;
use tokio::time::Instant;

const AUTHORS: &str = "127.0.8.2";
const AUTHORS_ID: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TAP_ID: &str = "linkerd-tap.linkerd.serviceaccount.identity.linkerd.cluster.local";

fn get(path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(format!("{AUTHORS}:4143")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn tap(mesh: &LocalMesh, tap_identity: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = ztmesh();
    cmd.args(["viz", "tap", "--to", &format!("{AUTHORS}:4190")])
        .args([
            "--proxy-identity",
            AUTHORS_ID,
            "--tap-identity",
            tap_identity,
        ])
        .arg("--identity-dir")
        .arg(&mesh.identity_dir)
        .args(extra);
    cmd
}

/// The mesh, authors' app, and its proxy with a tap identity.
struct Tapped {
    proxy: Daemon,
    _app: Daemon,
    mesh: LocalMesh,
}

#[test]
fn the_tap_identity_sees_matching_requests_and_no_one_else_does() {
    let t = step("start authors behind a proxy with a tap identity", start);
    step("tap sees the matching requests up to its limit", || {
        tap_sees_matching(&t)
    });
    step("viz top shows the busiest paths first", || {
        top_busiest_first(&t)
    });
    step("another identity and plaintext are refused", || {
        others_refused(&t)
    });
}

fn start() -> Tapped {
    let mesh = LocalMesh::start(|_| {});
    let _app = sample_app("authors", &format!("{AUTHORS}:18500"));
    let mut proxy = explicit_proxy(
        &mesh.control_plane(),
        AUTHORS_ID,
        &mesh.token("booksapp", "authors"),
        &format!("{AUTHORS}:18500"),
        &[("LINKERD2_PROXY_TAP_SVC_NAME", TAP_ID)],
    );
    proxy.wait_for("tap listening", Duration::from_secs(10));

    Tapped { proxy, _app, mesh }
}

/// Three requests to /books, with /other ones in between that the filter drops.
fn tap_sees_matching(t: &Tapped) {
    let mesh = &t.mesh;
    let mut tapping = Daemon::spawn(tap(
        mesh,
        TAP_ID,
        &["--path", "/books", "--limit", "3", "--max-wait", "20s"],
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0;
    while tapping.output().matches("req id=").count() < 3 {
        assert!(Instant::now() < deadline, "tap saw:\n{}", tapping.output());
        assert!(get("/other").starts_with("HTTP/1.1 200"));
        assert!(get(&format!("/books/{sent}")).starts_with("HTTP/1.1 200"));
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    tapping.wait_for("end id=", Duration::from_secs(5));
    let out = tapping.output();
    let reqs: Vec<&str> = out.lines().filter(|l| l.starts_with("req ")).collect();
    assert_eq!(reqs.len(), 3, "{out}");
    assert!(
        reqs.iter()
            .all(|l| l.contains(":path=/books/") && l.contains("proxy=in")),
        "{out}"
    );
    assert!(!out.contains(":path=/other"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("rsp ") && l.contains(":status=200")),
        "{out}"
    );
    assert!(out.contains(&format!("dst_id={AUTHORS_ID}")), "{out}");
}

/// viz top: the busiest paths first.
fn top_busiest_first(t: &Tapped) {
    let (mesh, proxy) = (&t.mesh, &t.proxy);
    let mut cmd = ztmesh();
    cmd.args(["viz", "top", "--to", &format!("{AUTHORS}:4190")])
        .args(["--proxy-identity", AUTHORS_ID, "--tap-identity", TAP_ID])
        .arg("--identity-dir")
        .arg(&mesh.identity_dir)
        .args(["--limit", "3", "--max-wait", "20s", "--refresh", "500ms"]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once subscribed (the proxy logs each observer), /hot twice and
    // /cold once fill its limit.
    eventually(Duration::from_secs(10), "top subscribing", || {
        let log = proxy.output();
        check(log.matches("tap observer registered").count() >= 2, log)
    });
    for path in ["/hot", "/hot", "/cold"] {
        assert!(get(path).starts_with("HTTP/1.1 200"));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", describe(&out));
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        (rows[0][3], rows[0][4], rows[0][5]),
        ("/hot", "2", "100.0%"),
        "{text}"
    );
    assert_eq!((rows[1][3], rows[1][4]), ("/cold", "1"), "{text}");
}

/// Another identity is refused; so is plaintext.
fn others_refused(t: &Tapped) {
    let (mesh, proxy) = (&t.mesh, &t.proxy);
    let refused = tap(
        mesh,
        "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &["--max-wait", "5s"],
    )
    .output()
    .unwrap();
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        proxy
            .output()
            .contains("refused: only the tap identity may connect"),
        "{}",
        proxy.output()
    );
    let plain = std::process::Command::new("curl")
        .args(["-s", "-m", "3", "--http2-prior-knowledge"])
        .arg(format!("http://{AUTHORS}:4190/"))
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "plaintext tap: {}",
        describe(&plain)
    );
}
