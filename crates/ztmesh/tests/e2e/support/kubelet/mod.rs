//! The test as kubelet, for the real-cluster tests (there is no kubelet,
//! scheduler, CNI or cluster DNS there; [`Kube`] is its kubectl): given
//! a Pod the API server stored, [`Kubelet::run_pod`] binds it to a Node object it created,
//! gives it a network namespace on the node's bridge with an address of
//! the pod network ([`sandbox`]), builds its volumes with projected tokens
//! from TokenRequest ([`volumes`]), runs its init containers to completion
//! and then its containers with the environment kubelet would give them
//! ([`spec`]) and as the spec's users, waits for their readiness probes,
//! and writes the pod's status (podIP, Running, Ready, each container's state) so that
//! EndpointSlices fill. Images are mapped to local programs ([`images`]).
//! Everything it started or created is removed on drop: processes,
//! namespaces, veths, the bridge, `/etc/netns/<pod>`, the mount points it
//! had to create, the pods (forced) and the Node. Pods' DNS is a server
//! on the node that knows no names ([`nxdomain`]): names the test maps
//! come from `/etc/hosts`.

mod images;
mod kubectl;
mod nxdomain;
pub mod sandbox;
pub mod spec;
pub mod volumes;

use super::{Daemon, check, eventually};
use sandbox::{Bridge, Sandbox};
use spec::{Container, IntOrString, Pod, PodFacts, Probe};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use volumes::Volumes;

pub use images::{Images, Program, ProxyBin};
pub use kubectl::Kube;

/// One pod the player runs.
pub struct RunningPod {
    pub name: String,
    /// Its `app` label.
    pub app: Option<String>,
    pub namespace: String,
    pub ip: Ipv4Addr,
    /// (container name, process); killed on drop, before the sandbox goes.
    pub containers: Vec<(String, Daemon)>,
    pub sandbox: Sandbox,
}

impl RunningPod {
    pub fn netns(&self) -> &str {
        &self.sandbox.netns
    }

    pub fn container(&self, name: &str) -> &Daemon {
        &self
            .containers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{}: no container {name}", self.name))
            .1
    }

    /// The environment container `name`'s process runs with.
    pub fn environ(&self, name: &str) -> Vec<(String, String)> {
        let pid = self.container(name).pid();
        let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the process is alive");
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// A file as container `name` sees it: read in its mount namespace
    /// (`/proc/PID/root` would follow absolute symlinks such as
    /// `/var/run` out of it).
    pub fn read(&self, name: &str, path: &str) -> Result<String, String> {
        let pid = self.container(name).pid().to_string();
        let out = std::process::Command::new("nsenter")
            .args(["-t", &pid, "-m", "cat", path])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// What every container printed, for failure messages.
    pub fn logs(&self) -> String {
        self.containers
            .iter()
            .map(|(n, d)| format!("--- {}/{n}:\n{}", self.name, d.output()))
            .collect()
    }
}

/// The node: its Node object, bridge and pods.
pub struct Kubelet {
    pub kube: Kube,
    pub node: String,
    images: Images,
    hosts: Vec<(String, String)>,
    subnet: [u8; 3],
    tmp: tempfile::TempDir,
    /// Mount points this player created on the host's filesystem
    /// (outermost first), removed on drop if still empty.
    created: Vec<PathBuf>,
    pods: Vec<RunningPod>,
    _dns: nxdomain::NxDomain,
    bridge: Bridge,
}

impl Kubelet {
    /// The node on `subnet` (first three octets of a /24; the node takes
    /// `.1`, pods `.2` on): creates the bridge and the Node object.
    pub fn new(kube: Kube, subnet: [u8; 3], images: Images) -> Self {
        let id = std::process::id();
        let node = format!("ztmesh-kubelet-{id}");
        let [a, b, c] = subnet;
        let bridge = Bridge::new(format!("zkb{}", id % 100_000), Ipv4Addr::new(a, b, c, 1));
        let node_json = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
        });
        kube.run(&["apply", "-f", "-"], Some(&node_json.to_string()));
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let dns = nxdomain::NxDomain::start(bridge.host_ip);
        Self {
            kube,
            node,
            images,
            hosts: Vec::new(),
            subnet,
            tmp,
            created: Vec::new(),
            pods: Vec::new(),
            _dns: dns,
            bridge,
        }
    }

    /// The node's address on the pod network (where the controller listens).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.bridge.host_ip
    }

    /// Pods started from now on resolve `name` to `addr`.
    pub fn map_host(&mut self, name: &str, addr: &str) {
        self.hosts.push((name.to_string(), addr.to_string()));
    }

    pub fn pod(&self, name: &str) -> &RunningPod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no running pod {name}"))
    }

    /// The running pod labelled `app: APP`.
    pub fn pod_by_app(&self, app: &str) -> &RunningPod {
        self.pods
            .iter()
            .find(|p| p.app.as_deref() == Some(app))
            .unwrap_or_else(|| panic!("no running pod of app {app}"))
    }

    /// The first pod of `namespace` with label selector `selector`, once
    /// the controller-manager created it.
    pub fn wait_for_pod(&self, namespace: &str, selector: &str) -> Pod {
        eventually(
            Duration::from_secs(60),
            &format!("a pod {selector} in {namespace}"),
            || {
                let list = self
                    .kube
                    .json(&["get", "pods", "-n", namespace, "-l", selector]);
                let first = list["items"].get(0).cloned().ok_or("none yet")?;
                serde_json::from_value::<Pod>(first).map_err(|_| "not a pod")
            },
        )
    }

    /// Runs `pod` as kubelet would, its proxy from `proxy`; returns once
    /// every readiness probe passes and the status says Ready.
    pub fn run_pod(&mut self, pod: &Pod, proxy: &ProxyBin) -> &RunningPod {
        let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
        self.bind(ns, name);
        let pod: Pod = serde_json::from_value(self.kube.json(&["get", "pod", name, "-n", ns]))
            .expect("the bound pod");
        let index = self.pods.len() as u8;
        let [a, b, c] = self.subnet;
        let ip = Ipv4Addr::new(a, b, c, 2 + index);
        let id = std::process::id();
        let sandbox = Sandbox::new(
            &self.bridge,
            format!("zk{id}-{name}"),
            format!("zk{}v{index}", id % 100_000),
            ip,
            &self.hosts,
        );
        let node = self.node.clone();
        let facts = PodFacts {
            pod: &pod,
            ip: ip.into(),
            host_ip: self.bridge.host_ip.into(),
            node: &node,
        };
        let volumes = Volumes::build(&pod, &facts, &self.tmp.path().join(name), &self.kube);
        let mut running = RunningPod {
            name: name.clone(),
            app: pod.metadata.labels.get("app").cloned(),
            namespace: ns.clone(),
            ip,
            containers: Vec::new(),
            sandbox,
        };
        for c in &pod.spec.init_containers {
            let mut daemon = self.start(&pod, &facts, c, &volumes, &running.sandbox, proxy);
            if c.restart_policy.as_deref() == Some("Always") {
                // A native sidecar: the next container starts once it
                // has started (its startup probe, else it runs).
                self.wait_probe(&running, c, c.startup_probe.as_ref(), &daemon);
                running.containers.push((c.name.clone(), daemon));
                continue;
            }
            let status = daemon.wait_exit(Duration::from_secs(60));
            assert!(
                status.is_some_and(|s| s.success()),
                "init container {name}/{} ended {status:?}:\n{}",
                c.name,
                daemon.output()
            );
        }
        for c in &pod.spec.containers {
            let daemon = self.start(&pod, &facts, c, &volumes, &running.sandbox, proxy);
            running.containers.push((c.name.clone(), daemon));
        }
        // Ready: every sidecar's and container's readiness probe passes.
        let sidecars = pod
            .spec
            .init_containers
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in sidecars.chain(&pod.spec.containers) {
            let probe = c.readiness_probe.as_ref();
            self.wait_probe(&running, c, probe, running.container(&c.name));
        }
        self.set_ready(&pod, ip);
        self.pods.push(running);
        self.pods.last().expect("just pushed")
    }

    fn bind(&self, ns: &str, name: &str) {
        let binding = serde_json::json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        });
        self.kube
            .run(&["create", "-f", "-"], Some(&binding.to_string()));
    }

    fn start(
        &mut self,
        pod: &Pod,
        facts: &PodFacts<'_>,
        c: &Container,
        volumes: &Volumes,
        sandbox: &Sandbox,
        proxy: &ProxyBin,
    ) -> Daemon {
        let ns = &pod.metadata.namespace;
        let lookup = |kind: &'static str, name: &str, key: &str| self.kube.key(kind, ns, name, key);
        let env = spec::resolve_env(c, facts, &lookup)
            .unwrap_or_else(|e| panic!("{}/{}: {e}", pod.metadata.name, c.name));
        self.check_hosts(&pod.metadata.name, &env);
        let program = self.images.program(c);
        let argv = images::argv(&program, proxy, c, &env);
        let sc = |f: fn(&spec::SecurityContext) -> Option<u32>| {
            c.security_context
                .as_ref()
                .and_then(f)
                .or_else(|| pod.spec.security_context.as_ref().and_then(f))
        };
        let default_uid = match program {
            Program::SampleApp => 65534,
            _ => 0,
        };
        let uid = sc(|s| s.run_as_user).unwrap_or(default_uid);
        let user = (uid, sc(|s| s.run_as_group).unwrap_or(uid));
        let caps: Vec<String> = c
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .map(|caps| caps.add.clone())
            .unwrap_or_default();
        let binds = volumes.binds(&c.volume_mounts);
        for (_, target, _) in &binds {
            self.mount_point(Path::new(target));
        }
        let cmd = volumes::container_command(&sandbox.netns, &binds, (user, &caps), &env, &argv);
        Daemon::spawn(cmd)
    }

    /// Every cluster name the environment uses is mapped: there is no
    /// cluster DNS to fall back on.
    fn check_hosts(&self, pod: &str, env: &[(String, String)]) {
        for (var, value) in env {
            let names = value
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                .filter(|w| w.trim_end_matches('.').ends_with(".svc.cluster.local"));
            for name in names {
                let name = name.trim_end_matches('.');
                assert!(
                    self.hosts.iter().any(|(h, _)| h == name),
                    "{pod}: {var} names {name}, which the test did not map (Kubelet::map_host)"
                );
            }
        }
    }

    /// Creates `path` if absent, remembering what it created.
    fn mount_point(&mut self, path: &Path) {
        let mut missing: Vec<PathBuf> = path
            .ancestors()
            .take_while(|p| !p.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        std::fs::create_dir_all(path).expect("mount point");
        self.created.extend(missing);
    }

    /// Until `probe` (an HTTP GET from the node, as kubelet probes)
    /// answers 2xx; without one, the container passes while it runs.
    fn wait_probe(&self, pod: &RunningPod, c: &Container, probe: Option<&Probe>, daemon: &Daemon) {
        let Some(get) = probe.and_then(|p| p.http_get.as_ref()) else {
            return;
        };
        let port = match &get.port {
            IntOrString::Int(p) => *p,
            IntOrString::Name(n) => {
                c.ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(n))
                    .unwrap_or_else(|| panic!("no port named {n}"))
                    .container_port
            }
        };
        let addr = format!("{}:{port}", pod.ip);
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        eventually(
            Duration::from_secs(60),
            &format!("{}/{} ready", pod.name, c.name),
            || {
                assert!(
                    !exited(daemon.pid()),
                    "{}/{} exited before it was ready:\n{}",
                    pod.name,
                    c.name,
                    daemon.output()
                );
                let resp = super::http_get(&addr, &path).unwrap_or_default();
                let ok = resp.starts_with("HTTP/1.1 2") || resp.starts_with("HTTP/1.0 2");
                check(ok, (resp.lines().next().map(String::from), daemon.output()))
            },
        );
    }

    /// The status a kubelet writes once every container runs and is
    /// ready: phase, IPs, conditions, and each container's status (init
    /// containers terminated with 0, native sidecars running).
    fn set_ready(&self, pod: &Pod, ip: Ipv4Addr) {
        let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
        let cond = |t: &str| serde_json::json!({"type": t, "status": "True"});
        let now = "1970-01-01T00:00:00Z";
        let running = |c: &spec::Container| {
            serde_json::json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true,
                "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        };
        let init: Vec<serde_json::Value> = pod
            .spec
            .init_containers
            .iter()
            .map(|c| {
                if c.restart_policy.as_deref() == Some("Always") {
                    running(c)
                } else {
                    serde_json::json!({
                        "name": c.name, "image": c.image, "imageID": "", "ready": true,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    })
                }
            })
            .collect();
        let containers: Vec<serde_json::Value> = pod.spec.containers.iter().map(running).collect();
        let status = serde_json::json!({"status": {
            "phase": "Running",
            "hostIP": self.bridge.host_ip.to_string(),
            "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}],
            "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
            "initContainerStatuses": init,
            "containerStatuses": containers,
        }});
        self.kube.run(
            &[
                "patch",
                "pod",
                name,
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
    }
}

/// The process has ended (a zombie not yet reaped, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for pod in self.pods.drain(..) {
            let _ = self.kube.try_run(
                &[
                    "delete",
                    "pod",
                    &pod.name,
                    "-n",
                    &pod.namespace,
                    "--force",
                    "--grace-period=0",
                    "--wait=false",
                ],
                None,
            );
            // Processes first (field order), then the sandbox.
            drop(pod);
        }
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = self
            .kube
            .try_run(&["delete", "node", &self.node, "--wait=false"], None);
    }
}
