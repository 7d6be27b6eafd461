//! Explicit mode's outbound proxy is no open relay (issue 11), between
//! network namespaces (root, as CI is):
//! - a workload whose app listens on its pod address keeps its outbound
//!   proxy on loopback: another namespace cannot use it (before the fix
//!   `curl -x http://WORKLOAD_IP:4140 ...` was served with the workload's
//!   identity);
//! - inside the workload's namespace only the application's uid
//!   (`ZTMESH_PROXY_APP_UID`, checked through sock_diag) is served;
//! - the workload's own loopback services are not relayed to.

use crate::support;

use std::time::Duration;
use support::netns::{MeshFiles, Net, require_root_and_tools};
use support::*;

const SUBNET: &str = "10.237.0";

fn curl(cmd: &mut std::process::Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Workload w's proxy (the app's uid 65534) and an app outside the mesh
/// in x.
struct Relay {
    proxy: Daemon,
    _app: Daemon,
    _controller: Daemon,
    net: Net,
    _mesh: MeshFiles,
    w_ip: String,
    x_ip: String,
}

impl Relay {
    /// A URL of x's app, which the relay would reach.
    fn target(&self) -> String {
        format!("http://{}:18400/through-the-relay", self.x_ip)
    }
}

#[test]
fn explicit_outbound_serves_only_the_apps_own_processes() {
    require_root_and_tools(&["ip", "curl", "setpriv"]);
    let mut r = step("start w's proxy on loopback and x's app", start);
    step("another namespace finds nothing listening", || {
        from_another_namespace(&r)
    });
    step("the app's own uid is served", || the_apps_uid_served(&r));
    step(
        "another local user is refused, and the log says why",
        || another_user_refused(&mut r),
    );
    step(
        "the workload's loopback services are not relayed to",
        || no_relay_to_loopback(&r),
    );
}

fn start() -> Relay {
    let (w_ip, x_ip) = (format!("{SUBNET}.2"), format!("{SUBNET}.3"));
    let net = Net::new("rl", SUBNET, &[("w", &w_ip), ("x", &x_ip)]);
    let mesh = MeshFiles::new();
    std::fs::write(
        mesh.manifests.join("w.yaml"),
        booksapp_workload("webapp", &w_ip),
    )
    .unwrap();
    let _controller = net.controller(&mesh.identity_dir, &mesh.manifests);
    // An app outside the mesh, in x: a target the relay would reach.
    let mut app = Net::unprivileged(net.pod("x"), env!("CARGO_BIN_EXE_ztmesh"));
    app.args([
        "app",
        "serve",
        "--name",
        "x",
        "--http",
        &format!("{x_ip}:18400"),
    ]);
    let mut app = Daemon::spawn(app);
    app.wait_for("HTTP on", Duration::from_secs(10));

    let host = &net.host_ip;
    let mut cmd = Net::exec(net.pod("w"), env!("CARGO_BIN_EXE_ztmesh"));
    cmd.arg("proxy")
        .env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", &mesh.anchors)
        .env(
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            mesh.token("booksapp", "webapp"),
        )
        .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", format!("{host}:8080"))
        .env(
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
        )
        .env(
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local",
        )
        .env(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            format!("{host}:8086"),
        )
        .env(
            "LINKERD2_PROXY_DESTINATION_SVC_NAME",
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
        )
        .env("ZTMESH_PROXY_MODE", "explicit")
        .env("ZTMESH_PROXY_APP_ADDR", format!("{w_ip}:18400"))
        .env("ZTMESH_PROXY_APP_UID", "65534");
    let mut proxy = Daemon::spawn(cmd);
    let line = proxy.wait_for("outbound HTTP proxy listening", Duration::from_secs(20));
    assert!(line.contains("127.0.0.1:4140"), "{line}");
    Relay {
        proxy,
        _app: app,
        _controller,
        net,
        _mesh: mesh,
        w_ip,
        x_ip,
    }
}

/// From another namespace: nothing listens there any more.
fn from_another_namespace(r: &Relay) {
    let (net, w_ip, target) = (&r.net, &r.w_ip, r.target());
    let (code, out) = curl(
        Net::exec(net.pod("x"), "curl")
            .args(["-sS", "-m", "5", "-x", &format!("http://{w_ip}:4140")])
            .arg(&target),
    );
    assert_eq!(code, 7, "curl should fail to connect: {out}");
}

/// The app's own uid is served (once the proxy holds a certificate).
fn the_apps_uid_served(r: &Relay) {
    let (net, proxy, target) = (&r.net, &r.proxy, r.target());
    eventually(Duration::from_secs(15), "the app's uid served", || {
        let (code, out) = curl(
            Net::unprivileged(net.pod("w"), "curl")
                .args(["-sS", "-m", "5", "-x", "http://127.0.0.1:4140"])
                .arg(&target),
        );
        let served = code == 0 && out.contains("x:GET /through-the-relay");
        check(served, (code, out, proxy.output()))
    });
}

/// Another local user (root here) is refused, and the log says why.
fn another_user_refused(r: &mut Relay) {
    let target = r.target();
    let (net, proxy) = (&r.net, &mut r.proxy);
    let (code, out) = curl(
        Net::exec(net.pod("w"), "curl")
            .args(["-sS", "-m", "5", "-x", "http://127.0.0.1:4140"])
            .arg(&target),
    );
    assert_ne!(code, 0, "another uid was served: {out}");
    proxy.wait_for(
        "runs as uid 0, not as the application's",
        Duration::from_secs(5),
    );
}

/// The workload's own loopback services are not relayed to.
fn no_relay_to_loopback(r: &Relay) {
    let net = &r.net;
    let (_, out) = curl(
        Net::unprivileged(net.pod("w"), "curl")
            .args(["-sS", "-m", "5", "-D", "-", "-x", "http://127.0.0.1:4140"])
            .arg("http://127.0.0.1:4191/metrics"),
    );
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
}
