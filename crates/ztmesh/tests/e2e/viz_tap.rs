//! `ztmesh viz tap` and `viz top` through the controller, against a real
//! proxy's Tap API: the controller holds the tap identity, the CLI holds
//! no key (only `--controller`); the tap sees the requests that match its
//! filter, up to its limit; a proxy expecting another tap identity
//! refuses the controller (and the CLI says so), and plaintext is refused.

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

/// `ztmesh viz CMD deploy/authors -n booksapp --controller VIZ ...`: no
/// identity directory, no key.
fn viz(cmd: &str, mesh: &LocalMesh<Daemon>, extra: &[&str]) -> std::process::Command {
    let mut c = ztmesh();
    c.args([
        "viz",
        cmd,
        "deploy/authors",
        "-n",
        "booksapp",
        "--controller",
    ])
    .arg(mesh.viz.as_deref().expect("the binary serves the viz API"))
    .args(extra);
    c
}

/// The mesh (the controller binary, with authors in its manifests),
/// authors' app, and its proxy with `tap_identity`.
struct Tapped {
    proxy: Daemon,
    _app: Daemon,
    mesh: LocalMesh<Daemon>,
}

#[test]
fn tap_and_top_through_the_controller_and_no_one_else() {
    let t = step("start authors behind a proxy with a tap identity", || {
        start(TAP_ID)
    });
    step("tap sees the matching requests up to its limit", || {
        tap_sees_matching(&t)
    });
    step(
        "viz top shows the busiest paths first, by source and method",
        || top_busiest_first(&t),
    );
    drop(t);
    step(
        "a proxy expecting another tap identity refuses the controller; plaintext is refused",
        others_refused,
    );
}

fn start(tap_identity: &str) -> Tapped {
    let mesh = LocalMesh::start_with(
        |dir| {
            std::fs::write(
                dir.join("authors.yaml"),
                booksapp_workload("authors", AUTHORS),
            )
            .unwrap()
        },
        &[],
    );
    let app_addr = format!("{AUTHORS}:18400");
    let _app = sample_app("authors", &app_addr);
    let mut proxy = explicit_proxy(
        &mesh.control_plane(),
        AUTHORS_ID,
        &mesh.token("booksapp", "authors"),
        &app_addr,
        &[("LINKERD2_PROXY_TAP_SVC_NAME", tap_identity)],
    );
    proxy.wait_for("tap listening", Duration::from_secs(10));
    Tapped { proxy, _app, mesh }
}

/// Three requests to /books, with /other ones in between that the filter drops.
fn tap_sees_matching(t: &Tapped) {
    let mut tapping = Daemon::spawn(viz(
        "tap",
        &t.mesh,
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
    // The controller tapped as the tap identity (the proxy logs who).
    assert!(
        t.proxy.output().contains("tap observer registered"),
        "{}",
        t.proxy.output()
    );
}

/// viz top: the busiest paths first; SOURCE is the client, not the
/// tapped proxy, and METHOD is shown.
fn top_busiest_first(t: &Tapped) {
    let child = viz(
        "top",
        &t.mesh,
        &["--limit", "3", "--max-wait", "20s", "--refresh", "500ms"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Once subscribed (the proxy logs each observer), /hot twice and
    // /cold once fill its limit.
    eventually(Duration::from_secs(10), "top subscribing", || {
        let log = t.proxy.output();
        check(log.matches("tap observer registered").count() >= 2, log)
    });
    for path in ["/hot", "/hot", "/cold"] {
        assert!(get(path).starts_with("HTTP/1.1 200"));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "SOURCE",
            "DESTINATION",
            "METHOD",
            "PATH",
            "COUNT",
            "BEST",
            "WORST",
            "LAST",
            "SUCCESS"
        ],
        "{text}"
    );
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let cells = |r: &[&str]| {
        (
            r[1].to_string(),
            r[2].to_string(),
            r[3].to_string(),
            r[4].to_string(),
            r[8].to_string(),
        )
    };
    assert_eq!(
        cells(&rows[0]),
        (
            "externalworkload/authors".into(),
            "GET".into(),
            "/hot".into(),
            "2".into(),
            "100.0%".into()
        ),
        "{text}"
    );
    assert_eq!((rows[1][3], rows[1][4]), ("/cold", "1"), "{text}");
    // The source is the client, never the tapped proxy's own address.
    for r in &rows {
        assert!(!r[0].starts_with(AUTHORS), "{text}");
    }
}

/// A proxy whose tap identity is another's refuses the controller, and
/// the CLI says so in words; plaintext to the tap port is refused.
fn others_refused() {
    let t = start("webapp.booksapp.serviceaccount.identity.linkerd.cluster.local");
    // Until the proxy holds its certificate its tap port has none to
    // present, and the handshake fails before the identity is judged.
    eventually(Duration::from_secs(10), "the proxy certified", || {
        let log = t.proxy.output();
        check(log.contains("certificate installed"), log)
    });
    let refused = viz("tap", &t.mesh, &["--max-wait", "5s"]).output().unwrap();
    assert!(!refused.status.success(), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no proxy could be tapped")
            && stderr.contains("booksapp/externalworkload/authors"),
        "{}",
        describe(&refused)
    );
    eventually(
        Duration::from_secs(5),
        "the proxy refusing the controller",
        || {
            let log = t.proxy.output();
            check(
                log.contains("refused: only the tap identity may connect"),
                log,
            )
        },
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
