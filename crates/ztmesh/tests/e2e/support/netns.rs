//! Pods as network namespaces: a host namespace with a bridge (where the
//! controller runs), one namespace per pod on a veth pair, `ztmesh
//! proxy-init` and the real proxy in meshed pods. Needs root (CI is root);
//! every namespace is deleted on drop.

use super::*;
use std::process::Command;
use std::time::Duration;

pub struct Net {
    pub host: String,
    pub host_ip: String,
    /// (pod name, namespace name, IP)
    pods: Vec<(String, String, String)>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
}

/// Fails loudly (never skips) when the test cannot build namespaces: every
/// network-namespace test calls it first.
pub fn require_root_and_tools(tools: &[&str]) {
    assert!(
        is_root(),
        "this end-to-end test builds network namespaces and iptables rules and needs root (CI runs as root; run it with sudo)"
    );
    for tool in tools {
        require_tool(tool);
    }
}

impl Net {
    /// `subnet` is the first three octets of a /24 (`10.234.0`); the host
    /// takes `.1`, the pods the addresses given.
    pub fn new(tag: &str, subnet: &str, pods: &[(&str, &str)]) -> Self {
        let id = std::process::id();
        let host = format!("ztm{tag}-h-{id}");
        let pods: Vec<(String, String, String)> = pods
            .iter()
            .map(|(p, ip)| (p.to_string(), format!("ztm{tag}-{p}-{id}"), ip.to_string()))
            .collect();
        let host_ip = format!("{subnet}.1");
        let net = Self {
            host: host.clone(),
            host_ip: host_ip.clone(),
            pods: pods.clone(),
        };
        for ns in std::iter::once(&host).chain(pods.iter().map(|(_, ns, _)| ns)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&["ip", "-n", &host, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            &host,
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", &host, "link", "set", "br0", "up"]);
        for (i, (_, ns, ip)) in pods.iter().enumerate() {
            let veth = format!("v{i}");
            sh(&[
                "ip", "-n", &host, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ]);
            sh(&[
                "ip", "-n", &host, "link", "set", &veth, "master", "br0", "up",
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            // Everything else via the host, so that connections to cluster
            // IPs (which no one answers) reach the pod's iptables rules.
            sh(&["ip", "-n", ns, "route", "add", "default", "via", &host_ip]);
        }
        net
    }

    fn find(&self, p: &str) -> &(String, String, String) {
        self.pods
            .iter()
            .find(|(q, _, _)| q == p)
            .unwrap_or_else(|| panic!("no pod {p}"))
    }

    /// The pod's namespace name.
    pub fn pod(&self, p: &str) -> &str {
        &self.find(p).1
    }

    /// The host-side veth of a pod (for captures).
    pub fn veth(&self, p: &str) -> String {
        format!(
            "v{}",
            self.pods.iter().position(|(q, _, _)| q == p).unwrap()
        )
    }

    pub fn ip(&self, p: &str) -> &str {
        &self.find(p).2
    }

    /// `program` in namespace `ns`; a ztmesh there (a controller writes
    /// its context file) gets this test process's private context file.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program])
            .env("ZTMESH_CONTEXT", super::context_file());
        cmd
    }

    /// `program` as an unprivileged user, whose traffic iptables redirects.
    pub fn unprivileged(ns: &str, program: &str) -> Command {
        let mut cmd = Self::exec(ns, "setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        cmd
    }

    pub fn curl(ns: &str, url: &str) -> std::process::Output {
        Self::unprivileged(ns, "curl")
            .args(["-sS", "-m", "5", url])
            .output()
            .unwrap()
    }

    pub fn metrics(ns: &str) -> String {
        let out = Self::exec(ns, "curl")
            .args(["-sS", "-m", "5", "http://127.0.0.1:4191/metrics"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The controller in the host namespace, on Linkerd's ports.
    pub fn controller(&self, identity_dir: &Path, manifests: &Path) -> Daemon {
        let mut cmd = Self::exec(&self.host, env!("CARGO_BIN_EXE_ztmesh"));
        cmd.args(["controller", "--identity-dir"])
            .arg(identity_dir)
            .arg("--manifests")
            .arg(manifests)
            .args([
                "--identity-addr",
                &format!("{}:8080", self.host_ip),
                "--destination-addr",
                &format!("{}:8086", self.host_ip),
                "--policy-addr",
                &format!("{}:8090", self.host_ip),
            ]);
        let mut d = Daemon::spawn(cmd);
        d.wait_for("destination service listening", Duration::from_secs(20));
        d
    }

    /// `ztmesh proxy-init` in the pod (the proxy runs as root, uid 0, which
    /// the rules exclude; apps run unprivileged).
    pub fn proxy_init(&self, p: &str) {
        let out = Self::exec(self.pod(p), env!("CARGO_BIN_EXE_ztmesh"))
            .args([
                "proxy-init",
                "--proxy-uid",
                "0",
                "--inbound-ports-to-ignore",
                "4190,4191",
                "--iptables-mode",
                "legacy",
                "--ipv6=false",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "proxy-init: {}", describe(&out));
    }

    /// The proxy of pod `p` (service account `ns/sa`), transparent, with
    /// the controller's identity, destination and (given the workload's
    /// JSON) policy services; waits until `/ready`.
    pub fn proxy(
        &self,
        p: &str,
        (ns, sa): (&str, &str),
        mesh: &MeshFiles,
        policy_workload: Option<&str>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let pod_ns = self.pod(p);
        let token = mesh.token(ns, sa);
        let mut cmd = Self::exec(pod_ns, env!("CARGO_BIN_EXE_ztmesh"));
        let host = &self.host_ip;
        cmd.arg("proxy")
            .env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", &mesh.anchors)
            .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", &token)
            .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", format!("{host}:8080"))
            .env(
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
            )
            .env(
                "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
                format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local"),
            )
            .env(
                "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
                format!("{host}:8086"),
            )
            .env(
                "LINKERD2_PROXY_DESTINATION_SVC_NAME",
                "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
            );
        if let Some(workload) = policy_workload {
            cmd.env("LINKERD2_PROXY_POLICY_SVC_ADDR", format!("{host}:8090"))
                .env(
                    "LINKERD2_PROXY_POLICY_SVC_NAME",
                    "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
                )
                .env("LINKERD2_PROXY_POLICY_WORKLOAD", workload);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proxy = Daemon::spawn(cmd);
        proxy.wait_for("transparent outbound listening", Duration::from_secs(20));
        eventually(
            Duration::from_secs(15),
            &format!("{p}'s proxy ready"),
            || {
                let ready = Self::exec(pod_ns, "curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg("http://127.0.0.1:4191/ready")
                    .output()
                    .unwrap();
                let code = String::from_utf8_lossy(&ready.stdout).into_owned();
                check(code == "200", (code, proxy.output()))
            },
        );
        proxy
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self
            .pods
            .iter()
            .map(|(_, ns, _)| ns)
            .chain(std::iter::once(&self.host))
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The identity files and manifests a netns mesh shares.
pub struct MeshFiles {
    pub tmp: tempfile::TempDir,
    pub identity_dir: std::path::PathBuf,
    pub manifests: std::path::PathBuf,
    pub anchors: String,
}

impl MeshFiles {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let identity_dir = tmp.path().join("identity");
        run_ok(ztmesh().args(["install", "--dir"]).arg(&identity_dir));
        let anchors = std::fs::read_to_string(identity_dir.join("ca.crt")).unwrap();
        let manifests = tmp.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        Self {
            tmp,
            identity_dir,
            manifests,
            anchors,
        }
    }

    pub fn token(&self, ns: &str, sa: &str) -> std::path::PathBuf {
        let path = self.tmp.path().join(format!("{ns}-{sa}.token"));
        token_file(&self.identity_dir, ns, sa, &path);
        path
    }
}

/// A Pod manifest: meshed pods carry `linkerd.io/inject: enabled`.
pub fn pod_manifest(
    name: &str,
    ns: &str,
    sa: &str,
    ip: &str,
    labels: &str,
    port: u16,
    meshed: bool,
) -> String {
    let ann = if meshed {
        ", annotations: {linkerd.io/inject: enabled}"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}{ann}}}\nspec: {{serviceAccountName: {sa}, containers: [{{name: app, ports: [{{name: main, containerPort: {port}}}]}}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}
