//! Trust-anchor rotation with no proxy restart and no failed request:
//! webapp's proxy sends steady load to authors through the mesh while
//! `ztmesh install --rotate-anchor add|issue|remove` runs its three
//! phases. Both proxies follow `ca.crt` as their bundle file
//! (`ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`) and renew every 2s
//! (`LINKERD2_PROXY_IDENTITY_MAX_REFRESH`), so each phase's check is met
//! without a restart; `issue` and `remove` are retried until their check
//! passes (they refuse before, naming the proxies). The load's counts are
//! printed for the note.

use crate::support;

use std::time::Duration;
use support::*;

const WEB_IP: &str = "127.0.17.20";
const AUTHORS_IP: &str = "127.0.17.21";
const RPS: u32 = 500;
const LOAD_SECS: u32 = 40;

fn manifests(m: &std::path::Path) {
    let text = booksapp_workload("authors", AUTHORS_IP)
        + "---\n"
        + &booksapp_workload("webapp", WEB_IP)
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    std::fs::write(m.join("workloads.yaml"), text).unwrap();
}

fn anchor_lines(admin: &str) -> usize {
    http_get(admin, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ztmesh_identity_trust_anchors{"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchor_rotation_under_load_loses_no_request() {
    let _serial = serial();
    let mesh = LocalMesh::start(manifests);
    {
        // The unprivileged proxies read ca.crt (the keys stay 0600).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mesh.identity_dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let bundle = mesh.identity_dir.join("ca.crt").display().to_string();
    let env = [
        ("ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE", bundle.as_str()),
        ("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "1s"),
        ("LINKERD2_PROXY_IDENTITY_MAX_REFRESH", "2s"),
    ];
    let _app = sample_app("authors", &format!("{AUTHORS_IP}:18400"));
    let proxy = |name: &str, app: &str| {
        explicit_proxy(
            &mesh.control_plane(),
            &format!("{name}.booksapp.serviceaccount.identity.linkerd.cluster.local"),
            &mesh.token("booksapp", name),
            app,
            &env,
        )
    };
    let mut authors = proxy("authors", &format!("{AUTHORS_IP}:18400"));
    let mut webapp = proxy("webapp", &format!("{WEB_IP}:9"));
    let pids = (authors.pid(), webapp.pid());
    let url = "http://authors.booksapp.svc.cluster.local:7001/authors.json";
    let outbound = format!("{WEB_IP}:4140");
    eventually(Duration::from_secs(20), "webapp reaching authors", || {
        let out = run_ok(ztmesh().args([
            "app",
            "load",
            url,
            "--rps",
            "5",
            "--duration",
            "1s",
            "--proxy",
            &outbound,
        ]));
        check(out.contains(" errors=0") && !out.contains(" ok=0"), out)
    });

    let load = {
        let (url, outbound) = (url.to_string(), outbound.clone());
        std::thread::spawn(move || {
            run_ok(ztmesh().args([
                "app",
                "load",
                &url,
                "--rps",
                &RPS.to_string(),
                "--duration",
                &format!("{LOAD_SECS}s"),
                "--proxy",
                &outbound,
            ]))
        })
    };
    let dir = mesh.identity_dir.to_str().unwrap().to_string();
    let manifests = mesh.manifests.to_str().unwrap().to_string();
    let rotate = |phase: &str| {
        ztmesh()
            .args(["install", "--dir", &dir, "--rotate-anchor", phase])
            .args(["--manifests", &manifests, "--controller", "127.0.0.1:1"])
            .output()
            .expect("spawn ztmesh install")
    };
    step("phase 1: the new anchor joins the bundle", || {
        let out = rotate("add");
        assert!(out.status.success(), "{}", describe(&out));
        eventually(
            Duration::from_secs(20),
            "both proxies trust two anchors",
            || {
                let n = (
                    anchor_lines(&format!("{WEB_IP}:4191")),
                    anchor_lines(&format!("{AUTHORS_IP}:4191")),
                );
                check(n == (2, 2), n)
            },
        );
    });
    step("phase 2: a new issuer under the new anchor", || {
        eventually(Duration::from_secs(20), "issue accepted", || {
            let out = rotate("issue");
            check(out.status.success(), describe(&out))
        });
    });
    step(
        "phase 3: the old anchor leaves once every leaf is under the new one",
        || {
            let mut refusals = 0;
            eventually(Duration::from_secs(30), "remove accepted", || {
                let out = rotate("remove");
                if !out.status.success() {
                    refusals += 1;
                }
                check(out.status.success(), describe(&out))
            });
            eprintln!("remove was refused {refusals} time(s) while proxies still held old leaves");
            eventually(
                Duration::from_secs(20),
                "both proxies trust one anchor",
                || {
                    let n = (
                        anchor_lines(&format!("{WEB_IP}:4191")),
                        anchor_lines(&format!("{AUTHORS_IP}:4191")),
                    );
                    check(n == (1, 1), n)
                },
            );
        },
    );
    let report = load.join().expect("the load thread");
    eprintln!("anchor rotation under load: {}", report.trim());
    step("no request failed and no proxy restarted", || {
        assert!(report.contains(" errors=0"), "{report}");
        assert!(!authors.exited() && !webapp.exited(), "a proxy exited");
        assert_eq!((authors.pid(), webapp.pid()), pids);
        let sent: u64 = report
            .split_whitespace()
            .find_map(|w| w.strip_prefix("sent="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            sent >= u64::from(RPS) * u64::from(LOAD_SECS) * 9 / 10,
            "{report}"
        );
    });
}
