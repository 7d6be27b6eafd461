//! `ztmesh diagnose policy` on the seeds' manifests, directly and through a
//! running controller: the first line is ALLOW or DENY with the reason,
//! the exit status 0 / 1 / 2. Also on the demo's manifests (ExternalWorkloads
//! named like their app), with every identity form the proxy accepts.

use crate::support;

use std::path::Path;
use support::*;

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TRAFFIC: &str = "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEB_FRONTEND: &str = "web-frontend.my-app.serviceaccount.identity.linkerd.cluster.local";
const LEGACY: &str = "legacy-service.legacy.serviceaccount.identity.linkerd.cluster.local";

/// The workloads the seeds' policies select (the seeds leave them out),
/// and booksapp's authors Server, which seed003's HTTPRoute attaches to.
const WORKLOADS: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: authors, namespace: booksapp, labels: {app: authors}}\nspec:\n  serviceAccountName: authors\n  containers: [{name: app, ports: [{containerPort: 7001}]}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: api-server, namespace: my-app, labels: {app: my-api}}\nspec:\n  serviceAccountName: api-server\n  containers: [{name: app, ports: [{containerPort: 8080}]}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-frontend-1, namespace: my-app, labels: {app: web-frontend}}\nspec:\n  serviceAccountName: web-frontend\n  containers: [{name: app}]\nstatus: {podIP: 10.1.2.3}\n";

fn seeds() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(dir.is_dir(), "seed fixtures expected at {}", dir.display());
    dir
}

fn manifests(dir: &Path, seed_files: &[&str], extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for f in seed_files {
        std::fs::copy(seeds().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("workloads.yaml"), extra).unwrap();
}

/// (exit status, first line, whole stdout + stderr)
fn ask(source: &[&str], args: &[&str]) -> (i32, String, String) {
    let out = ztmesh()
        .args(["diagnose", "policy"])
        .args(source)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().next().unwrap_or_default().to_string(),
        all,
    )
}

/// seed003 and seed002's ServerAuthorization with their workloads.
fn seed_manifests() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    manifests(
        &m,
        &[
            "seed003-booksapp-authors.yaml",
            "seed002-server-authorization.yaml",
        ],
        WORKLOADS,
    );
    (tmp, m)
}

#[test]
fn seeds_allowed_and_denied_with_reasons() {
    let (tmp, m) = seed_manifests();
    let deny = tmp.path().join("deny");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: api-server, namespace: my-app, labels: {app: my-api}}\nspec:\n  containers: [{name: app, ports: [{containerPort: 8080}]}]\n";
    manifests(&deny, &["seed002-default-deny.yaml"], pod);
    // seed002's ServerAuthorization without web-frontend's pod: its address is unknown.
    let no_web = tmp.path().join("no-web");
    manifests(&no_web, &["seed002-server-authorization.yaml"], pod);
    let no_web_src = ["--manifests", no_web.to_str().unwrap()];
    let m_src = ["--manifests", m.to_str().unwrap()];
    let deny_src = ["--manifests", deny.to_str().unwrap()];
    let authors = "booksapp/authors:7001";
    let api = "my-app/api-server:8080";
    #[rustfmt::skip]
    let cases: Vec<(&[&str], Vec<&str>, i32, &str)> = vec![
        (&m_src, vec!["--from", BOOKS, "--to", authors, "--path", "/authors.json"], 0,
         "may GET /authors.json on booksapp/authors:7001: route httproute/authors-get-route, authorization authorizationpolicy/authors-get-policy"),
        (&m_src, vec!["--from", WEBAPP, "--to", authors, "--path", "/authors/3.json"], 0, "authorization authorizationpolicy/authors-get-policy"),
        // KIND/NAME with -n, as Linkerd names workloads.
        (&m_src, vec!["-n", "booksapp", "--from", BOOKS, "--to", "po/authors:7001", "--path", "/authors.json"], 0, "authorization authorizationpolicy/authors-get-policy"),
        (&m_src, vec!["-n", "booksapp", "--from", BOOKS, "--to", "deploy/authors:7001", "--path", "/authors.json"], 0, "authorization authorizationpolicy/authors-get-policy"),
        (&m_src, vec!["-n", "my-app", "--from", "deploy/web-frontend", "--to", "deploy/my-api:8080"], 0, "mesh TLS from 10.1.2.3, the address of pod/web-frontend-1) may GET / on deploy/my-api:8080"),
        (&m_src, vec!["-n", "my-app", "--from", BOOKS, "--to", "booksapp/authors:7001"], 2, "is in namespace booksapp but -n says my-app"),
        (&m_src, vec!["--from", TRAFFIC, "--to", authors, "--path", "/authors.json"], 1, "no authorization admits the client"),
        (&m_src, vec!["--from", "10.2.3.4", "--to", authors, "--path", "/authors.json"], 1, "presented no mesh identity"),
        (&m_src, vec!["--from", BOOKS, "--to", authors, "--method", "POST", "--path", "/authors.json"], 1, "no route matches the request"),
        (&m_src, vec!["--from", WEBAPP, "--to", authors, "--path", "/books.json"], 1, "no route matches the request"),
        (&m_src, vec!["--from", WEB_FRONTEND, "--to", api, "--path", "/api/users"], 0, "authorization serverauthorization/allow-web-to-api"),
        // No --from-ip: the address of the workload with that identity.
        (&m_src, vec!["--from", WEB_FRONTEND, "--to", api], 0, "(mesh TLS from 10.1.2.3, the address of pod/web-frontend-1)"),
        (&m_src, vec!["--from", "spiffe://cluster.local/ns/booksapp/sa/webapp", "--to", authors, "--path", "/authors.json"], 0,
         "spiffe://cluster.local/ns/booksapp/sa/webapp (seen by the proxy as webapp.booksapp.serviceaccount.identity.linkerd.cluster.local; mesh TLS from an unspecified address) may GET"),
        (&m_src, vec!["--from", "spiffe://cluster.local/ns/booksapp/sa/traffic", "--to", authors, "--path", "/authors.json"], 1, "no authorization admits the client"),
        (&m_src, vec!["--from", WEB_FRONTEND, "--to", api, "--tcp"], 0, "may connect to my-app/api-server:8080"),
        (&m_src, vec!["--from", LEGACY, "--to", api], 1, "no authorization admits the client"),
        (&m_src, vec!["--from", "10.9.9.9", "--to", api], 1, "presented no mesh identity"),
        (&m_src, vec!["--from", WEB_FRONTEND, "--from-ip", "203.0.113.7", "--to", api], 1, "no authorization admits the client"),
        (&deny_src, vec!["--from", WEB_FRONTEND, "--to", api], 1, "server/default-deny"),
        (&deny_src, vec!["--from", "10.0.0.9", "--to", api, "--tcp"], 1, "no authorization admits the client"),
        (&no_web_src, vec!["--from", LEGACY, "--to", api], 1, "no authorization admits the client"),
        (&no_web_src, vec!["--from", WEB_FRONTEND, "--from-ip", "10.1.2.3", "--to", api], 0, "authorization serverauthorization/allow-web-to-api"),
                // Wrong questions.
        (&no_web_src, vec!["--from", WEB_FRONTEND, "--to", api], 2,
         "the answer depends on the client's address, which is unknown: from 0.0.0.0 it is DENY (server/api-server, default/default: no authorization admits the client), but serverauthorization/allow-web-to-api admits web-frontend.my-app.serviceaccount.identity.linkerd.cluster.local from 10.0.0.0/8; pass --from-ip"),
        (&m_src, vec!["--from", "not an identity", "--to", api], 2, "is neither an IP address nor a mesh identity"),
        (&m_src, vec!["--from", BOOKS, "--to", "booksapp/nobody:7001"], 2,
         "no workload named \"nobody\" (a Pod or ExternalWorkload, or labelled app=nobody) in namespace booksapp (workloads there: pod/authors)"),
        (&m_src, vec!["--from", "spiffe://cluster.local/webapp", "--to", authors], 2, "is not a SPIFFE ID of a service account"),
        (&m_src, vec!["--from", BOOKS, "--to", "booksapp-authors-7001"], 2, "has no :PORT (KIND/NAME:PORT)"),
    ];
    for (source, args, status, needle) in cases {
        let (code, first, all) = ask(source, &args);
        assert_eq!(code, status, "{args:?}:\n{all}");
        assert!(
            !all.contains("10.0.0.1") && !all.contains("Pod(\""),
            "{args:?}: {all}"
        );
        match status {
            0 => assert!(
                first.starts_with("ALLOW: ") && first.contains(needle),
                "{args:?}: {all}"
            ),
            1 => assert!(
                first.starts_with("DENY: ") && first.contains(needle),
                "{args:?}: {all}"
            ),
            _ => assert!(all.contains(needle), "{args:?}: {all}"),
        }
    }
}

#[test]
fn a_running_controller_gives_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let m = tmp.path().join("m");
    manifests(&m, &["seed003-booksapp-authors.yaml"], WORKLOADS);
    let controller = InProcessController::with_manifests(&d, &m);
    let policy = controller.addrs().policy.unwrap().to_string();
    for (source, label) in [
        (vec!["--policy-addr", policy.as_str()], "controller"),
        (vec!["--manifests", m.to_str().unwrap()], "manifests"),
    ] {
        let (code, first, all) = ask(
            &source,
            &[
                "--from",
                WEBAPP,
                "--to",
                "booksapp/authors:7001",
                "--path",
                "/authors.json",
            ],
        );
        assert_eq!(code, 0, "{label}: {all}");
        assert!(
            first.contains("authorizationpolicy/authors-get-policy"),
            "{label}: {all}"
        );
        let (code, first, all) = ask(
            &source,
            &[
                "--from",
                TRAFFIC,
                "--to",
                "booksapp/authors:7001",
                "--path",
                "/authors.json",
            ],
        );
        assert_eq!(code, 1, "{label}: {all}");
        assert!(first.starts_with("DENY: "), "{label}: {all}");
    }
    let (code, _, all) = ask(
        &["--policy-addr", "127.0.0.1:1"],
        &["--from", WEBAPP, "--to", "booksapp/authors:7001"],
    );
    assert_eq!(code, 2, "{all}");
    assert!(all.contains("127.0.0.1:1"), "{all}");
}

#[test]
fn authz_lists_servers_routes_and_authorizations() {
    let (_tmp, m) = seed_manifests();
    let out = run_ok(
        ztmesh()
            .args(["authz", "-n", "booksapp", "authors", "--manifests"])
            .arg(&m),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PORT  SERVER"), "{out}");
    let row: Vec<&str> = lines[1]
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        row,
        vec![
            "7001",
            "server/authors",
            "Http1",
            "httproute/authors-get-route",
            "authorizationpolicy/authors-get-policy",
            &format!("{BOOKS}, {WEBAPP}"),
            "0.0.0.0/0, ::/0"
        ],
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    let json = run_ok(
        ztmesh()
            .args([
                "authz",
                "-n",
                "booksapp",
                "authors",
                "-o",
                "json",
                "--manifests",
            ])
            .arg(&m),
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(rows[0]["port"], 7001, "{json}");
    assert_eq!(rows[0]["route"], "httproute/authors-get-route", "{json}");
    assert_eq!(
        rows[0]["authorization"], "authorizationpolicy/authors-get-policy",
        "{json}"
    );
    assert_eq!(
        rows[0]["clients"],
        serde_json::json!([BOOKS, WEBAPP]),
        "{json}"
    );
    assert_eq!(
        rows[0]["networks"],
        serde_json::json!(["0.0.0.0/0", "::/0"]),
        "{json}"
    );
    let out = run_ok(
        ztmesh()
            .args(["authz", "-n", "my-app", "api-server", "--manifests"])
            .arg(&m),
    );
    assert!(
        out.contains("server/api-server")
            && out.contains("serverauthorization/allow-web-to-api")
            && out.contains(WEB_FRONTEND)
            && out.contains("10.0.0.0/8"),
        "{out}"
    );
    let err = run_err(
        ztmesh()
            .args(["authz", "-n", "my-app", "nobody", "--manifests"])
            .arg(&m),
    );
    assert!(
        err.contains(
            "no workload named \"nobody\" (a Pod or ExternalWorkload, or labelled app=nobody) in namespace my-app (workloads there: pod/api-server, pod/web-frontend-1)"
        ),
        "{err}"
    );
}

/// The demo's manifests, as `ztmesh demo` writes them.
fn demo_manifests() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir_all(&m).unwrap();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/booksapp.yaml");
    std::fs::copy(demo, m.join("booksapp.yaml")).unwrap();
    (tmp, m)
}

#[test]
fn the_demos_workloads_are_found_by_name_and_every_identity_form_answers_alike() {
    let (_tmp, m) = demo_manifests();
    let src = ["--manifests", m.to_str().unwrap()];
    let authors = "booksapp/authors:7001";
    let seen = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--from", WEBAPP, "--to", authors, "--path", "/authors.json"], 0,
         "ALLOW: webapp.booksapp.serviceaccount.identity.linkerd.cluster.local (mesh TLS from 127.0.9.4, the address of externalworkload/webapp) may GET /authors.json"),
        (vec!["--from", "spiffe://cluster.local/ns/booksapp/sa/webapp", "--to", authors, "--path", "/authors.json"], 0, seen),
        (vec!["--from", "spiffe://cluster.local/ns/booksapp/sa/webapp", "--to", "booksapp/externalworkload/authors:7001", "--path", "/authors.json"], 0, "127.0.9.4"),
        (vec!["--from", "spiffe://cluster.local/ns/booksapp/sa/traffic", "--to", authors, "--path", "/authors.json"], 1, "; mesh TLS from 127.0.9.5, the address of externalworkload/traffic): server/authors, httproute/authors-get-route: no authorization admits the client"),
        (vec!["--from", "127.0.9.4", "--to", authors, "--path", "/authors.json"], 1, "presented no mesh identity"),
        // NS/WORKLOAD: the workload's identity and address.
        (vec!["--from", "booksapp/webapp", "--to", authors, "--path", "/authors.json"], 0,
         "ALLOW: booksapp/webapp (seen by the proxy as webapp.booksapp.serviceaccount.identity.linkerd.cluster.local; mesh TLS from 127.0.9.4, the address of externalworkload/webapp) may GET"),
        (vec!["--from", "booksapp/traffic", "--from-ip", "127.0.0.1", "--to", authors, "--path", "/authors.json"], 1,
         "DENY: booksapp/traffic (seen by the proxy as traffic.booksapp.serviceaccount.identity.linkerd.cluster.local; mesh TLS from 127.0.0.1)"),
        (vec!["--from", "booksapp/nobody", "--to", authors], 2, "no workload named \"nobody\""),
        (vec!["--from", WEBAPP, "--to", "booksapp/reviews:7001"], 2,
         "no workload named \"reviews\" (a Pod or ExternalWorkload, or labelled app=reviews) in namespace booksapp (workloads there: externalworkload/authors, externalworkload/books, externalworkload/traffic, externalworkload/webapp)"),
    ];
    for (args, status, needle) in cases {
        let (code, first, all) = ask(&src, &args);
        assert_eq!(code, status, "{args:?}:\n{all}");
        let line = if status == 2 { &all } else { &first };
        assert!(line.contains(needle), "{args:?}: {all}");
    }
    let out = run_ok(
        ztmesh()
            .args(["authz", "-n", "booksapp", "authors", "--manifests"])
            .arg(&m),
    );
    assert!(
        out.contains("server/authors")
            && out.contains("authorizationpolicy/authors-get-policy")
            && out.contains(&format!("{BOOKS}, {WEBAPP}")),
        "{out}"
    );
    // A running controller resolves a bare name as a Pod, then an ExternalWorkload.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let controller = InProcessController::with_manifests(&d, &m);
    let policy = controller.addrs().policy.unwrap().to_string();
    let args = ["--from", WEBAPP, "--to", authors, "--path", "/authors.json"];
    let (code, first, all) = ask(&["--policy-addr", policy.as_str()], &args);
    assert_eq!(code, 0, "{all}");
    assert!(
        first.contains("(mesh TLS from an unspecified address)")
            && first.contains("authorizationpolicy/authors-get-policy"),
        "{all}"
    );
    // inbound-policy's ns:NAME (a Pod in the protocol) finds the ExternalWorkload.
    let out = run_ok(ztmesh().args([
        "diagnose",
        "inbound-policy",
        "--policy-addr",
        policy.as_str(),
        "--workload",
        "booksapp:authors",
        "--port",
        "7001",
    ]));
    assert!(
        out.starts_with("Server authors") && out.contains("authors-get-policy"),
        "{out}"
    );
    let (code, _, all) = ask(
        &["--policy-addr", policy.as_str()],
        &["--from", "booksapp/webapp", "--to", authors],
    );
    assert_eq!(code, 2, "{all}");
    assert!(all.contains("names a workload: pass --manifests"), "{all}");
    let out = run_ok(ztmesh().args([
        "authz",
        "-n",
        "booksapp",
        "authors",
        "--port",
        "7001",
        "--policy-addr",
        policy.as_str(),
    ]));
    assert!(
        out.contains("authorizationpolicy/authors-get-policy"),
        "{out}"
    );
    let (code, _, all) = ask(
        &["--policy-addr", policy.as_str()],
        &["--from", WEBAPP, "--to", "booksapp/reviews:7001"],
    );
    assert_eq!(code, 2, "{all}");
    assert!(
        all.contains("no workload") && !all.contains("Pod(\""),
        "{all}"
    );
    let err = run_err(
        ztmesh()
            .args(["authz", "-n", "booksapp", "pod/authors", "--manifests"])
            .arg(&m),
    );
    assert!(
        err.contains("no workload pod/authors in namespace booksapp (workloads there: externalworkload/authors,"),
        "{err}"
    );
}
