//! The CLI a Linkerd user already knows, on the demo's manifests: the
//! README's own commands (`KIND/NAME -n NS`, the controller found through
//! its context file) run as written and succeed; the older forms the issue
//! quoted still work; an unknown name is an error in words; `identity
//! certify` finds the identity service in the context file too; and every
//! command ends quietly when its stdout's reader has gone away.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

/// A directory holding the demo's manifests, as `ztmesh demo` writes them.
fn demo_manifests(dir: &Path) -> PathBuf {
    let m = dir.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("booksapp.yaml"),
        include_str!("../../src/demo/booksapp.yaml"),
    )
    .unwrap();
    m
}

/// The commands of the README's "control plane with manifests" block:
/// continuation lines joined, comments dropped.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### The control plane with manifests")
        .nth(1)
        .expect("the README's manifests section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its sh block");
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let code = line.split(" #").next().unwrap_or_default().trim();
        if code.starts_with('#') || code.is_empty() {
            continue;
        }
        match code.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(code);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// `ztmesh` with a context file of its own (`context`), and no
/// `ZTMESH_CONTROLLER` from the environment.
fn with_context(context: &Path) -> Command {
    let mut cmd = ztmesh();
    cmd.env("ZTMESH_CONTEXT", context)
        .env_remove("ZTMESH_CONTROLLER");
    cmd
}

/// `ztmesh controller` on the demo's manifests, on ephemeral loopback
/// ports, recording itself in `context`; waits until the file names it.
fn controller(dir: &Path, manifests: &Path, context: &Path) -> Daemon {
    let identity = dir.join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&identity));
    let mut cmd = with_context(context);
    cmd.args(["controller", "--identity-dir"])
        .arg(&identity)
        .arg("--manifests")
        .arg(manifests);
    for flag in [
        "--identity-addr",
        "--viz-addr",
        "--policy-addr",
        "--destination-addr",
    ] {
        cmd.args([flag, "127.0.0.1:0"]);
    }
    let mut daemon = Daemon::spawn(cmd);
    let viz = daemon.listening_addr("viz API");
    eventually(
        Duration::from_secs(10),
        "the controller's context file",
        || {
            let text = std::fs::read_to_string(context).map_err(|e| e.to_string())?;
            check(text.contains(&viz), text)
        },
    );
    daemon
}

#[test]
fn the_readme_commands_work_on_the_demo_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let m = demo_manifests(tmp.path());
    let context = tmp.path().join("context.json");
    let mut controller = controller(tmp.path(), &m, &context);
    let commands: Vec<String> = readme_commands()
        .into_iter()
        .filter(|c| !c.starts_with("ztmesh controller") && c.starts_with("ztmesh "))
        .collect();
    assert!(commands.len() >= 10, "{commands:#?}");
    for command in &commands {
        let line = command
            .replacen("ztmesh ", &format!("{} ", env!("CARGO_BIN_EXE_ztmesh")), 1)
            .split(' ')
            .map(|w| match w {
                "M" => m.to_str().unwrap(),
                w => w,
            })
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("sh")
            .args(["-c", &line])
            .env("ZTMESH_CONTEXT", &context)
            .env_remove("ZTMESH_CONTROLLER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if command.contains("diagnose policy") {
            assert!(stdout.starts_with("ALLOW: "), "{command}: {stdout}");
        }
        if command.contains("authz") || command.contains("inbound-policy") {
            assert!(stdout.contains("authors-get-policy"), "{command}: {stdout}");
        }
    }
    step("the older forms the issue quoted", || {
        older_forms(&m, &context)
    });
    step("unknown names are errors in words", || {
        unknown_names(&m, &context)
    });
    step("identity certify finds the identity service", || {
        certify_from_the_context(tmp.path(), &context)
    });
    controller.interrupt();
}

/// Through the controller, `deploy/authors` is the workload labelled
/// app=authors in the controller's index, whatever its own name: here an
/// ExternalWorkload `authors-7f9c`, which no Pod or ExternalWorkload
/// named `authors` stands for.
#[test]
fn deploy_names_resolve_through_the_controllers_index() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    let yaml = include_str!("../../src/demo/booksapp.yaml").replacen(
        "  name: authors\n  namespace: booksapp\n  labels: {app: authors}",
        "  name: authors-7f9c\n  namespace: booksapp\n  labels: {app: authors}",
        1,
    );
    assert!(yaml.contains("authors-7f9c"));
    std::fs::write(m.join("booksapp.yaml"), yaml).unwrap();
    let context = tmp.path().join("context.json");
    let mut controller = controller(tmp.path(), &m, &context);
    let asked: [&[&str]; 3] = [
        &[
            "authz",
            "deploy/authors",
            "-n",
            "booksapp",
            "--port",
            "7001",
        ],
        &[
            "diagnose",
            "inbound-policy",
            "--workload",
            "deploy/authors",
            "-n",
            "booksapp",
            "--port",
            "7001",
        ],
        &[
            "diagnose",
            "policy",
            "-n",
            "booksapp",
            "--from",
            WEBAPP,
            "--to",
            "deploy/authors:7001",
            "--path",
            "/authors.json",
        ],
    ];
    for args in asked {
        let out = run_ok(with_context(&context).args(args));
        if args[0] == "diagnose" && args[1] == "policy" {
            assert!(out.starts_with("ALLOW: "), "{args:?}: {out}");
        } else {
            assert!(out.contains("authors-get-policy"), "{args:?}: {out}");
        }
    }
    let err = run_err(with_context(&context).args([
        "authz",
        "deploy/nobody",
        "-n",
        "booksapp",
        "--port",
        "7001",
    ]));
    assert!(
        err.contains(
            "no workload deployment/nobody in namespace booksapp (none labelled app=nobody"
        ),
        "{err}"
    );
    controller.interrupt();
}

/// `authz -n booksapp authors` and `diagnose policy --to booksapp/authors:7001`,
/// from the manifests and from the controller.
fn older_forms(m: &Path, context: &Path) {
    let out = run_ok(
        with_context(context)
            .args(["authz", "-n", "booksapp", "authors", "--manifests"])
            .arg(m),
    );
    assert!(out.contains("authors-get-policy"), "{out}");
    for source in [&["--manifests", m.to_str().unwrap()][..], &[]] {
        let out = run_ok(
            with_context(context)
                .args(["diagnose", "policy", "--from", BOOKS])
                .args(["--to", "booksapp/authors:7001", "--path", "/authors.json"])
                .args(source),
        );
        assert!(out.starts_with("ALLOW: "), "{source:?}: {out}");
    }
    let out = run_ok(with_context(context).args([
        "diagnose",
        "inbound-policy",
        "--workload",
        "booksapp:authors",
        "--port",
        "7001",
    ]));
    assert!(out.contains("authors-get-policy"), "{out}");
    // --from a workload of another namespace than --to's: NS/KIND/NAME.
    let out = run_ok(
        with_context(context)
            .args([
                "diagnose",
                "policy",
                "-n",
                "booksapp",
                "--to",
                "ew/authors:7001",
            ])
            .args([
                "--from",
                "booksapp/deploy/webapp",
                "--path",
                "/authors.json",
            ])
            .arg("--manifests")
            .arg(m),
    );
    assert!(out.starts_with("ALLOW: ") && out.contains(WEBAPP), "{out}");
}

/// `identity certify` without `--identity-addr` asks the controller the
/// context file names (here on an ephemeral port, not 8080).
fn certify_from_the_context(dir: &Path, context: &Path) {
    let identity = dir.join("identity");
    let token = dir.join("books.token");
    token_file(&identity, "booksapp", "books", &token);
    let out = dir.join("leaf");
    std::fs::create_dir_all(&out).unwrap();
    run_ok(
        with_context(context)
            .args(["identity", "certify", "--identity", BOOKS, "--token-file"])
            .arg(&token)
            .arg("--trust-anchors")
            .arg(identity.join("ca.crt"))
            .arg("--out")
            .arg(&out),
    );
    assert!(out.join("leaf.pem").is_file());
}

/// What was looked for, in which namespace, and what exists there; never
/// Rust's debug formatting.
fn unknown_names(m: &Path, context: &Path) {
    let there = "workloads there: externalworkload/authors, externalworkload/books, \
                 externalworkload/traffic, externalworkload/webapp";
    let cases: [(&[&str], i32, String); 4] = [
        (
            &["authz", "deploy/nobody", "-n", "booksapp", "--manifests"],
            1,
            format!(
                "no workload deployment/nobody (none labelled app=nobody) in namespace booksapp ({there})"
            ),
        ),
        (
            &["authz", "po/authors", "-n", "booksapp", "--manifests"],
            1,
            format!("no workload pod/authors in namespace booksapp ({there})"),
        ),
        (
            &[
                "diagnose",
                "policy",
                "--from",
                WEBAPP,
                "-n",
                "booksapp",
                "--to",
                "deploy/nobody:7001",
                "--manifests",
            ],
            2,
            format!(
                "no workload deployment/nobody (none labelled app=nobody) in namespace booksapp ({there})"
            ),
        ),
        (
            &["viz", "stat", "cm/authors", "-n", "booksapp", "--manifests"],
            2,
            "unknown kind 'cm' (po, deploy, sts, ds, ew or ns, optionally /NAME)".to_string(),
        ),
    ];
    for (args, code, want) in cases {
        let out = with_context(context).args(args).arg(m).output().unwrap();
        let all = describe(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {all}");
        assert!(all.contains(&want), "{args:?}: {all}");
        assert!(
            !all.contains("Pod(") && !all.contains("Some("),
            "{args:?}: {all}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let m = demo_manifests(tmp.path());
    let m = m.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["completion", "bash"],
        &[
            "viz",
            "stat",
            "deploy",
            "-n",
            "booksapp",
            "--window",
            "100ms",
            "--manifests",
            m,
        ],
        &[
            "viz",
            "edges",
            "-n",
            "booksapp",
            "-o",
            "json",
            "--manifests",
            m,
        ],
        &["viz", "routes", "-n", "booksapp", "--manifests", m],
        &[
            "authz",
            "deploy/authors",
            "-n",
            "booksapp",
            "-o",
            "json",
            "--manifests",
            m,
        ],
        // println! (not the table printer): the panic it raises is quiet too.
        &[
            "diagnose",
            "policy",
            "--from",
            WEBAPP,
            "-n",
            "booksapp",
            "--to",
            "deploy/authors:7001",
            "--manifests",
            m,
        ],
    ];
    for args in cases {
        // The reader is gone before the command starts: its first write
        // to stdout fails with EPIPE, whatever the timing.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ztmesh()
            .args(*args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}
