//! `ztmesh check` against a real mesh (the controller binary, two
//! workloads behind explicit-mode proxies): every check passes when the
//! mesh is healthy (exit 0, `-o json` parsed); a stopped proxy and an
//! expired issuer each FAIL with their fix named (exit 1); `--pre`,
//! `--proxy` and `--compliance` answer, and the viz API's `/compliance`
//! is the same report; `ztmesh identity KIND/NAME` shows the chain the
//! proxy presents, public certificates only.

use crate::support;

use std::time::Duration;
use support::*;

const AUTHORS: &str = "127.0.13.2";
const WEBAPP: &str = "127.0.13.4";

fn manifests() -> String {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    [
        booksapp_workload("authors", AUTHORS),
        booksapp_workload("webapp", WEBAPP),
        service.to_string(),
    ]
    .join("---\n")
}

/// `ztmesh check ARGS -o json`: exit code and the parsed report.
fn check_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = ztmesh()
        .arg("check")
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("spawn");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&out)));
    (out.status.code(), json)
}

fn by_id<'a>(report: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn check_passes_on_a_healthy_mesh_and_names_the_fix_of_each_failure() {
    let mesh = LocalMesh::start_with(
        |m| std::fs::write(m.join("w.yaml"), manifests()).unwrap(),
        &[],
    );
    let _authors = mesh.run_booksapp_workload("authors", AUTHORS);
    let (_webapp_app, webapp_proxy) = mesh.run_booksapp_workload("webapp", WEBAPP);
    let identity_dir = mesh.identity_dir.to_str().unwrap().to_string();

    step(
        "every check passes on the healthy mesh (no flags: the context file)",
        || {
            eventually(Duration::from_secs(20), "check to pass", || {
                let (code, report) = check_json(&[]);
                let s = statuses(&report);
                check(
                    code == Some(0) && s.iter().all(|(_, st)| st == "pass") && s.len() >= 11,
                    format!("exit {code:?}: {report:#}"),
                )
            });
            let out = ztmesh().arg("check").output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            for want in [
                "control-plane",
                "PASS  identity API answers",
                "trusts the current anchors",
                "0 failed",
            ] {
                assert!(text.contains(want), "{want} not in:\n{text}");
            }
        },
    );

    step("--proxy: three passing checks per workload", || {
        let (code, report) = check_json(&["--proxy"]);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["summary"]["pass"], 6, "{report:#}");
        for c in report["checks"].as_array().unwrap() {
            assert_eq!(c["group"], "data-plane", "{c}");
            assert!(c["fix"].is_null(), "{c}");
        }
    });

    step(
        "--pre: a held port fails with its fix; a free one passes",
        || {
            let (code, report) = check_json(&[
                "--pre",
                "--identity-dir",
                &identity_dir,
                "--listen",
                "127.0.0.1:0",
            ]);
            let ports = &by_id(&report, "ports-free")[0];
            assert_eq!(ports["status"], "pass", "{report:#}");
            assert_eq!(by_id(&report, "issuer")[0]["status"], "pass", "{report:#}");
            assert_eq!(
                by_id(&report, "token-key")[0]["status"],
                "pass",
                "{report:#}"
            );
            let failed = report["summary"]["fail"].as_u64().unwrap();
            assert_eq!(code, Some(if failed == 0 { 0 } else { 1 }), "{report:#}");

            let (code, report) = check_json(&[
                "--pre",
                "--identity-dir",
                &identity_dir,
                "--listen",
                &mesh.policy,
            ]);
            assert_eq!(code, Some(1), "{report:#}");
            let ports = &by_id(&report, "ports-free")[0];
            assert_eq!(ports["status"], "fail", "{report:#}");
            assert!(
                ports["offenders"][0]
                    .as_str()
                    .unwrap()
                    .contains(&mesh.policy)
            );
            assert!(ports["fix"].is_string(), "{report:#}");
        },
    );

    step(
        "--compliance: the invariants and the checklist, as the viz API serves them",
        || {
            let (_, report) = check_json(&["--compliance"]);
            for id in [
                "INV-1",
                "INV-6",
                "INV-7",
                "INV-10",
                "default-deny",
                "explicit-allows",
                "one-sa-per-service",
                "rotation",
                "tls-alerts",
                "egress",
                "no-bypass",
            ] {
                let c = by_id(&report, id);
                assert_eq!(c.len(), 1, "{id}: {report:#}");
                assert_eq!(c[0]["group"], "compliance");
            }
            assert_eq!(by_id(&report, "INV-1")[0]["status"], "pass", "{report:#}");
            let inv1 = by_id(&report, "INV-1")[0]["evidence"].to_string();
            assert!(
                inv1.contains("spiffe://cluster.local/ns/booksapp/sa/authors"),
                "{inv1}"
            );
            // The explicit-mode apps listen on their workload addresses:
            // reachable around their proxies, named.
            let bypass = by_id(&report, "no-bypass")[0];
            assert_eq!(bypass["status"], "fail", "{bypass}");
            assert!(
                bypass["offenders"]
                    .to_string()
                    .contains(&format!("{AUTHORS}:18400")),
                "{bypass}"
            );

            let viz = mesh.viz.as_deref().unwrap();
            let served: serde_json::Value =
                serde_json::from_str(&http_get(viz, "/compliance")).unwrap();
            let ids = |r: &serde_json::Value| {
                statuses(r)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&served), ids(&report));
            assert!(served["summary"]["pass"].is_u64(), "{served:#}");
        },
    );

    step(
        "identity KIND/NAME: the chain the proxy presents, public only",
        || {
            // authors is an ExternalWorkload labelled app=authors.
            let out = run_ok(ztmesh().args(["identity", "deploy/authors", "-n", "booksapp"]));
            assert_eq!(
                out,
                run_ok(ztmesh().args(["identity", "booksapp/ew/authors"])),
                "deploy/authors and the older NS/KIND/NAME name the same workload"
            );
            for want in [
                "SAN URI:    spiffe://cluster.local/ns/booksapp/sa/authors",
                "SAN DNS:    authors.booksapp.serviceaccount.identity.linkerd.cluster.local",
                "certificate #2 (intermediate)",
                "-----BEGIN CERTIFICATE-----",
            ] {
                assert!(out.contains(want), "{want} not in:\n{out}");
            }
            assert!(!out.contains("PRIVATE KEY"), "{out}");
            let err = run_err(ztmesh().args(["identity", "po/nobody", "-n", "booksapp"]));
            assert!(
                err.contains("no workload pod/nobody in namespace booksapp"),
                "{err}"
            );
            assert!(!err.contains("Pod("), "{err}");
        },
    );

    step("a stopped proxy fails, named, with its fix", || {
        drop(webapp_proxy);
        let (code, report) = check_json(&[]);
        assert_eq!(code, Some(1), "{report:#}");
        let ready = by_id(&report, "proxy-ready")[0];
        assert_eq!(ready["status"], "fail", "{ready}");
        assert!(
            ready["offenders"]
                .to_string()
                .contains("externalworkload/webapp"),
            "{ready}"
        );
        assert!(
            ready["fix"].as_str().unwrap().contains("restart"),
            "{ready}"
        );
        let (code, report) = check_json(&["--proxy"]);
        assert_eq!(code, Some(1));
        assert_eq!(report["summary"]["fail"], 3, "{report:#}");
        assert_eq!(report["summary"]["pass"], 3, "{report:#}");
    });

    step(
        "an expired issuer fails with the rotation as its fix",
        || {
            run_ok(ztmesh().args([
                "install",
                "--rotate-issuer",
                "--issuer-validity",
                "1s",
                "--dir",
                &identity_dir,
            ]));
            eventually(Duration::from_secs(10), "the issuer to expire", || {
                let (code, report) = check_json(&[]);
                let issuer = by_id(&report, "issuer")[0].clone();
                check(
                    code == Some(1) && issuer["status"] == "fail",
                    format!("exit {code:?}: {issuer}"),
                )
            });
            let (_, report) = check_json(&[]);
            let issuer = by_id(&report, "issuer")[0];
            assert!(
                issuer["detail"].as_str().unwrap().contains("expired"),
                "{issuer}"
            );
            assert!(
                issuer["fix"].as_str().unwrap().contains("--rotate-issuer"),
                "{issuer}"
            );
            let table = ztmesh().arg("check").output().unwrap();
            let text = String::from_utf8_lossy(&table.stdout);
            assert_eq!(table.status.code(), Some(1));
            assert!(text.contains("FAIL  issuer valid"), "{text}");
            assert!(text.contains("fix: ztmesh install --dir"), "{text}");
        },
    );
}

/// GET from the viz API, the body of a 200.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body.to_string()
}
