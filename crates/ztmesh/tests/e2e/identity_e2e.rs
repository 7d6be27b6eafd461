//! The identity flow with the real binaries, as the README tells an operator
//! to run it: install, token, controller, certify, and OpenSSL's verdict.

use crate::support;

use std::time::Duration;
use support::*;

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

#[test]
fn install_token_controller_certify_and_openssl_verifies() {
    require_tool("openssl");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    let out = run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    assert!(out.contains("trust anchor SHA-256 fingerprint: "), "{out}");
    assert!(
        out.contains(&format!("wrote {}", d.join("issuer.key").display())),
        "{out}"
    );
    let err = run_err(ztmesh().args(["install", "--dir"]).arg(&d));
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );

    let token_file = tmp.path().join("token");
    support::token_file(&d, "booksapp", "books", &token_file);

    let (_controller, addr) = in_process_controller(&d);
    let leaf_dir = tmp.path().join("leaf");
    let out = run_ok(&mut certify(
        &addr,
        BOOKS,
        &token_file,
        &d.join("ca.crt"),
        &leaf_dir,
    ));
    assert!(
        out.contains("SAN DNS:    books.booksapp.serviceaccount.identity.linkerd.cluster.local"),
        "{out}"
    );

    let verify = run_ok(
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(d.join("ca.crt"))
            .arg("-untrusted")
            .arg(d.join("issuer.crt"))
            .arg(leaf_dir.join("leaf.pem")),
    );
    assert!(verify.trim().ends_with(": OK"), "{verify}");
    let text = run_ok(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(leaf_dir.join("leaf.pem")),
    );
    assert!(
        text.contains("DNS:books.booksapp.serviceaccount.identity.linkerd.cluster.local, URI:spiffe://cluster.local/ns/booksapp/sa/books"),
        "{text}"
    );
    // The key is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(leaf_dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn refusals_reach_the_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let (_controller, addr) = in_process_controller(&d);
    let token_file = tmp.path().join("token");
    support::token_file(&d, "booksapp", "webapp", &token_file);
    let err = run_err(&mut certify(
        &addr,
        BOOKS,
        &token_file,
        &d.join("ca.crt"),
        tmp.path(),
    ));
    assert!(
        err.contains("PermissionDenied") && err.contains("booksapp/webapp"),
        "{err}"
    );

    std::fs::write(&token_file, "not a token").unwrap();
    let err = run_err(&mut certify(
        &addr,
        BOOKS,
        &token_file,
        &d.join("ca.crt"),
        tmp.path(),
    ));
    assert!(
        err.contains("Unauthenticated") && err.contains("not a JWT"),
        "{err}"
    );

    let err = run_err(ztmesh().args(["token", "create", "--dir"]).arg(&d).args([
        "-n",
        "Books",
        "--service-account",
        "x",
    ]));
    assert!(err.contains("not a DNS-1123 label"), "{err}");
    let err = run_err(
        ztmesh()
            .args(["controller", "--identity-dir"])
            .arg(tmp.path().join("nope")),
    );
    assert!(err.contains("ztmesh install"), "{err}");
}

#[test]
fn issuer_hot_reload_and_bad_issuer_kept_out() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let (controller, addr) = controller(&d, &["--issuer-poll-interval", "100ms"]);
    let token_file = tmp.path().join("token");
    support::token_file(&d, "booksapp", "books", &token_file);
    let issued_by = |name: &str| {
        let out = tmp.path().join(name);
        run_ok(&mut certify(
            &addr,
            BOOKS,
            &token_file,
            &d.join("ca.crt"),
            &out,
        ));
        std::fs::read(out.join("intermediates.pem")).unwrap()
    };

    let first = issued_by("a");
    assert_eq!(first, std::fs::read(d.join("issuer.crt")).unwrap());

    // Rotate the issuer under the same anchor; no restart.
    run_ok(
        ztmesh()
            .args(["install", "--rotate-issuer", "--dir"])
            .arg(&d),
    );
    let rotated = std::fs::read(d.join("issuer.crt")).unwrap();
    assert_ne!(rotated, first);
    eventually(Duration::from_secs(10), "the new issuer signing", || {
        check(issued_by("b") == rotated, controller.output())
    });

    // A broken issuer is refused and the rotated one keeps signing.
    std::fs::write(
        d.join("issuer.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    eventually(Duration::from_secs(10), "the refusal logged", || {
        let log = controller.output();
        check(log.contains("new identity issuer refused"), log)
    });
    assert!(
        controller
            .output()
            .contains("issuer.crt: not a valid X.509 certificate"),
        "{}",
        controller.output()
    );
    assert_eq!(
        issued_by("c"),
        rotated,
        "the last good issuer stays in force"
    );
}

#[test]
fn demo_runs_a_whole_local_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(
        ztmesh()
            .args(["demo", "--dir"])
            .arg(tmp.path().join("demo")),
    );
    for needle in [
        "[1] install",
        "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local  spiffe://cluster.local/ns/booksapp/sa/webapp",
        "refused as it should be: the identity service answered PermissionDenied",
        "new certificates chain through the rotated issuer",
        // The mesh: every outcome is checked by the demo itself; these are
        // the lines that say so.
        "webapp   GET  /authors.json  -> HTTP/1.1 200 OK",
        "traffic  GET  /authors.json  -> HTTP/1.1 403 Forbidden",
        "traffic's proxy logged the reason: server/authors, httproute/authors-get-route: no authorization admits the client",
        "webapp   POST /authors.json  -> HTTP/1.1 404 Not Found",
        "(plain)  GET  /authors.json  -> HTTP/1.1 403 Forbidden",
        "DENY: traffic.booksapp.serviceaccount.identity.linkerd.cluster.local",
        "160 requests from webapp and books at 20/s each: 160 answered 200",
        // The compliance report: the plaintext client is the one
        // non-compliant edge, a WARN with its reason.
        "[10] compliance",
        "WARN  every edge between meshed workloads is mTLS",
        "offender: (unknown client) -> booksapp/externalworkload/authors: plaintext, no_tls_reason=no_tls_from_remote",
        // Explicit mode's gap, said in words; the demo does not hinge on it.
        "FAIL  no workload bypassing the mesh",
        "no-bypass FAILs here, and that is true of this demo",
        "all steps passed.",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The command printed reproduces the report: the demo controller's
    // context, not `--controller VIZ` (which knows only the viz API).
    let context = tmp.path().join("demo").join("context.json");
    assert!(
        out.contains(&format!(
            "$ ZTMESH_CONTEXT={} ztmesh check --compliance",
            context.display()
        )),
        "{out}"
    );
    assert!(context.exists(), "the demo controller's context file");
}
