//! `ztmesh agent` with an independent client: py-spiffe (PyPI `spiffe`,
//! pinned; scripts/test installs it into a venv) fetches an X.509-SVID and
//! a JWT-SVID from the agent's socket, validates the JWT-SVID with its own
//! validator, and `openssl verify` checks the X.509-SVID against the
//! bundle the agent served. The same client as another uid (setpriv) is
//! refused with PermissionDenied. Real binaries: `ztmesh controller
//! --workload-attestations`, `ztmesh token create --node`, `ztmesh agent`.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const SCRIPT: &str = include_str!("spiffe/py_spiffe_client.py");

/// The venv scripts/test makes (ZTMESH_PY_SPIFFE_VENV overrides).
fn py_spiffe_python() -> PathBuf {
    let venv = std::env::var_os("ZTMESH_PY_SPIFFE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/ztmesh/py-spiffe-venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import spiffe"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs py-spiffe in {} (scripts/test installs it)",
        venv.display()
    );
    python
}

fn client(python: &Path, script: &Path, socket: &Path, out: &Path, as_nobody: bool) -> Command {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(python);
        c
    } else {
        Command::new(python)
    };
    cmd.arg(script).arg(socket).arg(out);
    cmd
}

#[test]
fn py_spiffe_fetches_svids_from_the_agent_and_an_unattested_caller_is_refused() {
    require_tool("openssl");
    require_tool("setpriv");
    assert!(
        is_root(),
        "this test runs a client as another uid (setpriv): run it as root"
    );
    let python = py_spiffe_python();
    let exe = std::fs::canonicalize(&python).expect("the venv's python resolves");
    let tmp = tempfile::tempdir().unwrap();
    // Other uids must reach the socket and the script.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let script = tmp.path().join("py_spiffe_client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let attestations = tmp.path().join("attestations.yaml");
    std::fs::write(
        &attestations,
        format!(
            "apiVersion: ztmesh.io/v1alpha1\nkind: WorkloadAttestation\nmetadata: {{name: web}}\nspec:\n  namespace: demo\n  serviceAccount: web\n  nodes: [node-a]\n  selectors: [unix:uid:0, unix:path:{}]\n",
            exe.display()
        ),
    )
    .unwrap();

    let (_controller, addr) = controller(
        &d,
        &["--workload-attestations", attestations.to_str().unwrap()],
    );
    let token = run_ok(
        ztmesh()
            .args(["token", "create", "--dir"])
            .arg(&d)
            .args(["--node", "node-a"]),
    );
    let token_file = tmp.path().join("node.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let socket = tmp.path().join("agent.sock");
    let mut agent = Daemon::spawn({
        let mut c = ztmesh();
        c.arg("agent")
            .arg("--socket")
            .arg(&socket)
            .args(["--node", "node-a", "--controller-addr", &addr])
            .arg("--node-token-file")
            .arg(&token_file)
            .arg("--attestations")
            .arg(&attestations)
            .arg("--trust-anchors")
            .arg(d.join("ca.crt"));
        c
    });
    agent.wait_for("SPIFFE Workload API on", Duration::from_secs(20));

    step(
        "py-spiffe fetches and validates X.509 and JWT SVIDs",
        || {
            let out = tmp.path().join("svid");
            std::fs::create_dir(&out).unwrap();
            let printed = run_ok(&mut client(&python, &script, &socket, &out, false));
            let got: serde_json::Value = serde_json::from_str(printed.trim()).expect("JSON");
            let id = "spiffe://cluster.local/ns/demo/sa/web";
            assert_eq!(got["x509_spiffe_id"], id, "{got}");
            assert_eq!(got["jwt_spiffe_id"], id, "{got}");
            assert_eq!(got["jwt_validated_spiffe_id"], id, "{got}");
            assert_eq!(got["server_validated_spiffe_id"], id, "{got}");
            assert!(got["jwt_wrong_audience_refused"].is_string(), "{got}");
            assert_eq!(got["chain_len"], 2, "{got}");

            let verify = run_ok(
                Command::new("openssl")
                    .args(["verify", "-CAfile"])
                    .arg(out.join("bundle.pem"))
                    .arg("-untrusted")
                    .arg(out.join("chain.pem"))
                    .arg(out.join("leaf.pem")),
            );
            assert!(verify.trim().ends_with(": OK"), "{verify}");
            let sans = run_ok(
                Command::new("openssl")
                    .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
                    .arg(out.join("leaf.pem")),
            );
            // The SPIFFE ID is the SVID's only name.
            let names: Vec<&str> = sans
                .lines()
                .skip_while(|l| !l.contains("Subject Alternative Name"))
                .nth(1)
                .map(|l| l.split(", ").map(str::trim).collect())
                .unwrap_or_default();
            assert_eq!(
                names,
                ["URI:spiffe://cluster.local/ns/demo/sa/web"],
                "{sans}"
            );
        },
    );

    step("another uid is refused with PermissionDenied", || {
        let out = tmp.path().join("nobody");
        std::fs::create_dir(&out).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
        let result = client(&python, &script, &socket, &out, true)
            .output()
            .expect("spawn");
        let printed = String::from_utf8_lossy(&result.stdout);
        assert_eq!(result.status.code(), Some(3), "{}", describe(&result));
        assert!(printed.contains("PERMISSION_DENIED"), "{printed}");
        assert!(printed.contains("uid=65534"), "{printed}");
        assert!(!out.join("leaf.pem").exists());
    });
}
