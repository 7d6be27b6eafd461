//! What the real-API-server tests share: `kubectl` against the cluster
//! `ZTMESH_TEST_KUBECONFIG` names (`ZTMESH_TEST_KUBECTL`, else the PATH's),
//! and a fresh namespace per test.

/// The cluster's kubeconfig (`ZTMESH_TEST_KUBECONFIG`).
#[allow(dead_code)] // each test binary uses part of this module
pub fn kubeconfig() -> std::ffi::OsString {
    std::env::var_os("ZTMESH_TEST_KUBECONFIG").expect(
        "ZTMESH_TEST_KUBECONFIG names a disposable cluster's kubeconfig (scripts/test-kube)",
    )
}

/// `prefix` and a number from the clock: a name no earlier run used.
#[allow(dead_code)]
pub fn unique(prefix: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    format!("{prefix}{}", secs % 1_000_000)
}

/// A namespace created for this test: [`unique`]`(prefix)`.
#[allow(dead_code)]
pub fn namespace(kubeconfig: &std::ffi::OsStr, prefix: &str) -> String {
    let ns = unique(prefix);
    kubectl(kubeconfig, &["create", "namespace", &ns], None);
    ns
}

/// Runs kubectl with `args` (and `stdin`); its trimmed stdout. Panics
/// with kubectl's stderr when it fails.
pub fn kubectl(kubeconfig: &std::ffi::OsStr, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
    let mut child = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
