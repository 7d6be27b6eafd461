//! Running the real `ztmesh` binary in tests: commands and long-running
//! daemons whose output is collected (this file), the controller in
//! process ([`controller`]) and the control plane on loopback
//! ([`LocalMesh`]), pods as network namespaces (`netns`), waiting on
//! conditions with a deadline and keeping heavy suites apart (`wait`),
//! scenarios as named steps (`steps`), probes of the proxies' admin
//! ports (`http`), and the test as kubelet on a real cluster (`kubelet`).

#![allow(dead_code)]

pub mod controller;
mod http;
pub mod kubelet;
pub mod netns;
mod steps;
mod wait;

pub use http::{admin_metric, http_get};
pub use steps::{step, step_async};
pub use wait::{check, eventually, eventually_async, serial};

#[allow(unused_imports)] // each test binary uses some of them
pub use controller::{InProcessController, in_process_controller};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The ztmesh binary, with its context file (where `controller` records
/// itself and other commands find it) private to this test process.
pub fn ztmesh() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztmesh"));
    cmd.env("ZTMESH_CONTEXT", context_file());
    cmd
}

/// This test process's context file (absent until a controller writes it).
pub fn context_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ztmesh-e2e-context-{}.json", std::process::id()))
}

/// Runs to completion; panics with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed:\n{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs to completion; panics if it succeeds. Returns stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded:\n{}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A long-running process whose stdout and stderr are collected; killed on drop.
pub struct Daemon {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Self { child, output }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits (bounded) for a line containing `needle`; returns that line.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "process exited ({status}) before printing {needle:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The real uid the process runs as.
    pub fn uid(&self) -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is alive");
        let line = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .expect("a Uid line");
        line.split_whitespace()
            .nth(1)
            .and_then(|u| u.parse().ok())
            .expect("a numeric uid")
    }

    /// Asks the process to stop (SIGINT) and waits up to 5s for it.
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) with a pid this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {}", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit; None if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ztmesh controller` on an ephemeral loopback port; returns it and its address.
pub fn controller(dir: &Path, extra: &[&str]) -> (Daemon, String) {
    let mut cmd = ztmesh();
    cmd.args(["controller", "--identity-dir"])
        .arg(dir)
        .args([
            "--identity-addr",
            "127.0.0.1:0",
            "--viz-addr",
            "127.0.0.1:0",
        ])
        .args(extra);
    let mut daemon = Daemon::spawn(cmd);
    let addr = daemon.listening_addr("identity service");
    (daemon, addr)
}

impl Daemon {
    /// Waits for `{service} listening on ADDR` and returns ADDR.
    pub fn listening_addr(&mut self, service: &str) -> String {
        let line = self.wait_for(&format!("{service} listening on "), Duration::from_secs(20));
        line.split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("address in the listening line")
            .to_string()
    }
}

/// Requests a certificate for `identity` with the CLI; writes into `out`.
pub fn certify(
    addr: &str,
    identity: &str,
    token_file: &Path,
    anchors: &Path,
    out: &Path,
) -> Command {
    let mut cmd = ztmesh();
    cmd.args([
        "identity",
        "certify",
        "--identity",
        identity,
        "--identity-addr",
        addr,
    ])
    .arg("--token-file")
    .arg(token_file)
    .arg("--trust-anchors")
    .arg(anchors)
    .arg("--out")
    .arg(out);
    cmd
}

/// The tool must exist: tests that need it fail loudly rather than skip.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "this test needs `{name}` on PATH (.ci/run installs it: apt-get install -y openssl iproute2 curl)"
    );
}

/// `ztmesh token create` for `ns/sa` with the install in `dir`, saved to `path`.
pub fn token_file(dir: &Path, ns: &str, sa: &str, path: &Path) {
    let token = run_ok(ztmesh().args(["token", "create", "--dir"]).arg(dir).args([
        "--namespace",
        ns,
        "--service-account",
        sa,
    ]));
    std::fs::write(path, token.trim()).unwrap();
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `ztmesh`, as nobody (uid 65534) when the test runs as root (CI): what
/// needs no privileges must not get them.
pub fn unprivileged_ztmesh() -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_ztmesh"),
        ]);
        c.env("ZTMESH_CONTEXT", context_file());
        c
    } else {
        ztmesh()
    }
}

/// Where a proxy finds the control plane.
pub struct ControlPlane<'a> {
    pub anchors: &'a str,
    pub identity: &'a str,
    pub destination: Option<&'a str>,
}

/// A proxy in explicit mode for the app at `app` (its listeners on the
/// app's IP unless `env` says otherwise), unprivileged; waits until it
/// listens.
pub fn explicit_proxy(
    cp: &ControlPlane<'_>,
    name: &str,
    token: &Path,
    app: &str,
    env: &[(&str, &str)],
) -> Daemon {
    let mut cmd = unprivileged_ztmesh();
    cmd.arg("proxy")
        .env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", cp.anchors)
        .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", token)
        .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", cp.identity)
        .env(
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
        )
        .env("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", name)
        .env("ZTMESH_PROXY_MODE", "explicit")
        .env("ZTMESH_PROXY_APP_ADDR", app);
    if let Some(destination) = cp.destination {
        cmd.env("LINKERD2_PROXY_DESTINATION_SVC_ADDR", destination)
            .env(
                "LINKERD2_PROXY_DESTINATION_SVC_NAME",
                "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
            );
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut d = Daemon::spawn(cmd);
    d.wait_for("ztmesh-proxy listening", Duration::from_secs(20));
    d
}

/// A local mesh's control plane: an install in a temporary directory that
/// unprivileged proxies can read, a manifests directory, and the controller
/// serving identity, destination and policy on loopback: in process
/// ([`LocalMesh::start`]) or the real binary ([`LocalMesh::start_with`]).
pub struct LocalMesh<C = InProcessController> {
    pub tmp: tempfile::TempDir,
    pub identity_dir: std::path::PathBuf,
    pub manifests: std::path::PathBuf,
    pub anchors: String,
    pub controller: C,
    pub identity: String,
    pub destination: String,
    pub policy: String,
    /// The controller's viz API: the CLI's, so only the binary serves it.
    pub viz: Option<String>,
}

/// The install and the manifests directory `write` fills.
fn mesh_dirs(
    write: impl FnOnce(&Path),
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let identity_dir = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&identity_dir));
    let anchors = std::fs::read_to_string(identity_dir.join("ca.crt")).unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    write(&manifests);
    (tmp, identity_dir, manifests, anchors)
}

impl LocalMesh {
    /// `write` fills the manifests directory before the controller starts
    /// in process.
    pub fn start(write: impl FnOnce(&Path)) -> Self {
        let (tmp, identity_dir, manifests, anchors) = mesh_dirs(write);
        let controller = InProcessController::with_manifests(&identity_dir, &manifests);
        let addrs = controller.addrs().clone();
        let addr = |a: Option<std::net::SocketAddr>| a.expect("served with manifests").to_string();
        Self {
            tmp,
            identity_dir,
            manifests,
            anchors,
            identity: addrs.identity.to_string(),
            destination: addr(addrs.destination),
            policy: addr(addrs.policy),
            viz: None,
            controller,
        }
    }
}

impl LocalMesh<Daemon> {
    /// As [`LocalMesh::start`], with the real `ztmesh controller` binary and
    /// more arguments for it (for tests of its log, its viz API, or a kill).
    pub fn start_with(write: impl FnOnce(&Path), controller_args: &[&str]) -> Self {
        let (tmp, identity_dir, manifests, anchors) = mesh_dirs(write);
        let (mut controller, identity) = controller(
            &identity_dir,
            &[
                "--manifests",
                manifests.to_str().unwrap(),
                "--policy-addr",
                "127.0.0.1:0",
                "--destination-addr",
                "127.0.0.1:0",
            ]
            .into_iter()
            .chain(controller_args.iter().copied())
            .collect::<Vec<_>>(),
        );
        let destination = controller.listening_addr("destination service");
        let policy = controller.listening_addr("policy service");
        let viz = controller.listening_addr("viz API");
        Self {
            tmp,
            identity_dir,
            manifests,
            anchors,
            controller,
            identity,
            destination,
            policy,
            viz: Some(viz),
        }
    }
}

impl<C> LocalMesh<C> {
    pub fn control_plane(&self) -> ControlPlane<'_> {
        ControlPlane {
            anchors: &self.anchors,
            identity: &self.identity,
            destination: Some(&self.destination),
        }
    }

    /// The sample app `name` on `ip`:18400 behind its explicit-mode proxy
    /// (identity `name.booksapp...`, as [`booksapp_workload`] declares it).
    pub fn run_booksapp_workload(&self, name: &str, ip: &str) -> (Daemon, Daemon) {
        let app_addr = format!("{ip}:18400");
        let app = sample_app(name, &app_addr);
        let proxy = explicit_proxy(
            &self.control_plane(),
            &format!("{name}.booksapp.serviceaccount.identity.linkerd.cluster.local"),
            &self.token("booksapp", name),
            &app_addr,
            &[],
        );
        (app, proxy)
    }

    /// A token file for `ns/sa`.
    pub fn token(&self, ns: &str, sa: &str) -> std::path::PathBuf {
        let path = self.tmp.path().join(format!("{ns}-{sa}.token"));
        token_file(&self.identity_dir, ns, sa, &path);
        path
    }
}

/// `ztmesh app serve --name NAME --http ADDR`, unprivileged, once it listens.
pub fn sample_app(name: &str, http: &str) -> Daemon {
    let mut app = unprivileged_ztmesh();
    app.args(["app", "serve", "--name", name, "--http", http]);
    let mut app = Daemon::spawn(app);
    app.wait_for("HTTP on", Duration::from_secs(10));
    app
}

/// An explicit-mode `ExternalWorkload` `name` in namespace booksapp (label
/// `app: name`, identity `name.booksapp...`) at `ip`, port 18400 named http.
pub fn booksapp_workload(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: booksapp, labels: {{app: {name}}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: {name}.booksapp.serviceaccount.identity.linkerd.cluster.local, serverName: {name}.booksapp.serviceaccount.identity.linkerd.cluster.local}}\n  workloadIPs: [{{ip: {ip}}}]\n  ports: [{{port: 18400, name: http}}]\n"
    )
}

/// `ztmesh app load URL` at `rps` for `secs` seconds, in a thread; joins to its report.
pub fn load_in_background(url: &str, rps: u32, secs: u32) -> std::thread::JoinHandle<String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        run_ok(ztmesh().args([
            "app",
            "load",
            &url,
            "--rps",
            &rps.to_string(),
            "--duration",
            &format!("{secs}s"),
        ]))
    })
}

/// The cells of the table row whose second column is `name`.
pub fn table_row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Makes room for a test's own descriptors: the soft open-files limit is
/// raised to the hard one, which must allow `need`.
pub fn raise_open_files_limit(need: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur as usize >= need,
        "this test needs an open-files limit of {need} (hard limit {}); raise it with `ulimit -Hn`",
        limit.rlim_cur
    );
}
