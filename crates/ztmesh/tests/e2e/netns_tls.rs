//! Off loopback the Identity service speaks TLS with the controller's own
//! identity; on loopback, plaintext. Proven in a network namespace this test
//! creates (a veth pair gives it a non-loopback address), with the real
//! binaries. Needs root, as CI has: it fails, never skips, without it.

use crate::support;

use std::process::Command;
use std::time::Duration;
use support::*;

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const CONTROLLER_ID: &str =
    "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";

/// A network namespace with lo up and a veth pair whose end v0 holds `addr`; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(addr: &str) -> Self {
        let name = format!("ztm-tls-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", describe(&out));
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&["-n", &ns.name, "addr", "add", addr, "dev", "v0"]);
        ip(&["-n", &ns.name, "link", "set", "v0", "up"]);
        ip(&["-n", &ns.name, "link", "set", "v1", "up"]);
        ns
    }

    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program])
            .env("ZTMESH_CONTEXT", support::context_file());
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The namespace with the controller in it, and the install it serves.
struct Scene {
    controller: Daemon,
    ns: Netns,
    d: std::path::PathBuf,
    token_file: std::path::PathBuf,
    tmp: tempfile::TempDir,
}

const BIN: &str = env!("CARGO_BIN_EXE_ztmesh");

#[test]
fn tls_off_loopback_plaintext_on_loopback() {
    support::netns::require_root_and_tools(&["ip", "openssl", "curl"]);
    let s = step("start the controller in a namespace", start);
    step("certify over TLS off loopback, plaintext on it", || {
        certify(&s)
    });
    step(
        "openssl sees TLS 1.3 and the controller's certificate",
        || tls13_and_the_certificate(&s),
    );
    step("TLS 1.2 is refused", || tls12_refused(&s));
    step("policy and destination speak TLS off loopback", || {
        policy_and_destination_tls(&s)
    });
    step("plaintext HTTP/2 off loopback gets no answer", || {
        plaintext_off_loopback_fails(&s)
    });
}

/// An install, a token for books, the manifests, and the controller in a
/// namespace whose v0 holds 10.231.0.1, listening on every address.
fn start() -> Scene {
    let bin = BIN;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let token_file = tmp.path().join("token");
    support::token_file(&d, "booksapp", "books", &token_file);

    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("authors.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: authors, namespace: booksapp}\nspec: {containers: [{name: app}]}\nstatus: {podIP: 10.231.0.9}\n",
    )
    .unwrap();

    let ns = Netns::new("10.231.0.1/24");
    let mut cmd = ns.exec(bin);
    cmd.args(["controller", "--identity-dir"])
        .arg(&d)
        .args([
            "--identity-addr",
            "0.0.0.0:8080",
            "--policy-addr",
            "0.0.0.0:8090",
        ])
        .args(["--destination-addr", "0.0.0.0:8086", "--manifests"])
        .arg(&manifests);
    let mut controller = Daemon::spawn(cmd);
    controller.wait_for(
        "identity service listening on 0.0.0.0:8080",
        Duration::from_secs(20),
    );
    controller.wait_for(
        "destination service listening on 0.0.0.0:8086",
        Duration::from_secs(20),
    );

    Scene {
        controller,
        ns,
        d,
        token_file,
        tmp,
    }
}

impl Scene {
    /// `identity certify` for books inside the namespace.
    fn certify_in_ns(&self, addr: &str, svc_name: &str, out: &str) -> Command {
        let mut cmd = self.ns.exec(BIN);
        cmd.args([
            "identity",
            "certify",
            "--identity",
            BOOKS,
            "--identity-addr",
            addr,
            "--identity-svc-name",
            svc_name,
        ])
        .arg("--token-file")
        .arg(&self.token_file)
        .arg("--trust-anchors")
        .arg(self.d.join("ca.crt"))
        .arg("--out")
        .arg(self.tmp.path().join(out));
        cmd
    }
}

fn certify(s: &Scene) {
    // Off loopback: TLS, the controller proving its identity.
    let out = run_ok(&mut s.certify_in_ns("10.231.0.1:8080", CONTROLLER_ID, "via-tls"));
    assert!(out.contains("verified against"), "{out}");
    // On loopback: plaintext, same service.
    run_ok(&mut s.certify_in_ns("127.0.0.1:8080", CONTROLLER_ID, "via-loopback"));
    // A client expecting another identity refuses the controller.
    let err = run_err(&mut s.certify_in_ns(
        "10.231.0.1:8080",
        "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
        "wrong-name",
    ));
    assert!(
        err.contains("NotValidForName") || err.contains("certificate"),
        "{err}"
    );
}

/// What a TLS client sees on the non-loopback address: TLS 1.3 and the
/// controller's certificate, chained to the anchor, no client cert asked.
fn tls13_and_the_certificate(s: &Scene) {
    let (ns, d) = (&s.ns, &s.d);
    let mut s_client = ns.exec("openssl");
    s_client
        .args([
            "s_client",
            "-connect",
            "10.231.0.1:8080",
            "-servername",
            CONTROLLER_ID,
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(d.join("ca.crt"))
        .stdin(std::process::Stdio::null());
    let out = s_client.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.3"), "{}", describe(&out));
    assert!(
        text.contains(&format!("CN = {CONTROLLER_ID}")),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "{}",
        describe(&out)
    );
}

/// TLS 1.2 is refused (1.3 only by default).
fn tls12_refused(s: &Scene) {
    let ns = &s.ns;
    let mut tls12 = ns.exec("openssl");
    tls12
        .args(["s_client", "-tls1_2", "-connect", "10.231.0.1:8080"])
        .stdin(std::process::Stdio::null());
    let out = tls12.output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alert protocol version"),
        "{}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Cipher is (NONE)"),
        "{}",
        describe(&out)
    );
}

/// Policy and destination off loopback: TLS as linkerd-destination.
fn policy_and_destination_tls(s: &Scene) {
    let (ns, d, bin, controller) = (&s.ns, &s.d, BIN, &s.controller);
    let mut diagnose = ns.exec(bin);
    diagnose
        .args([
            "diagnose",
            "inbound-policy",
            "--policy-addr",
            "10.231.0.1:8090",
            "--workload",
            "booksapp:authors",
            "--port",
            "7001",
            "--trust-anchors",
        ])
        .arg(d.join("ca.crt"));
    let out = diagnose.output().unwrap();
    assert!(
        out.status.success(),
        "{}\ncontroller:\n{}",
        describe(&out),
        controller.output()
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("default policy all-unauthenticated"), "{out}");
    let mut s_client = ns.exec("openssl");
    s_client
        .args([
            "s_client",
            "-connect",
            "10.231.0.1:8086",
            "-servername",
            "x",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(d.join("ca.crt"))
        .stdin(std::process::Stdio::null());
    let out = s_client.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "CN = linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
        ),
        "{}",
        describe(&out)
    );
}

/// Plaintext HTTP/2 to the non-loopback address gets no gRPC answer.
fn plaintext_off_loopback_fails(s: &Scene) {
    let ns = &s.ns;
    let mut plain = ns.exec("curl");
    plain.args([
        "-sS",
        "--max-time",
        "5",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://10.231.0.1:8080/",
    ]);
    let out = plain.output().unwrap();
    assert!(
        !out.status.success(),
        "plaintext off loopback must fail: {}",
        describe(&out)
    );
}
