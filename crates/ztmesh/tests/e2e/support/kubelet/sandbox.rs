//! The node's network: a bridge in the host's network namespace holding
//! the node's address on the pod network (where host-side servers such as
//! the controller listen), and per pod a network namespace on a veth to
//! that bridge, with `/etc/netns/<netns>/hosts` (the cluster names the
//! test maps, since there is no cluster DNS) and a `resolv.conf` naming
//! the node's DNS server, which knows no names. Everything is removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        crate::support::describe(&out)
    );
}

/// The bridge `name` holding `host_ip`/24.
pub struct Bridge {
    pub name: String,
    pub host_ip: Ipv4Addr,
}

impl Bridge {
    pub fn new(name: String, host_ip: Ipv4Addr) -> Self {
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        sh(&["ip", "link", "add", &name, "type", "bridge"]);
        let bridge = Self { name, host_ip };
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &bridge.name,
        ]);
        sh(&["ip", "link", "set", &bridge.name, "up"]);
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// A pod's network namespace: `netns`, its `eth0` at `ip`/24 behind
/// `veth` on the bridge, default route via the node.
pub struct Sandbox {
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
}

impl Sandbox {
    /// `hosts` are (name, address) lines of the pod's /etc/hosts; each
    /// name is written also with the trailing dot Linkerd's env uses.
    pub fn new(
        bridge: &Bridge,
        netns: String,
        veth: String,
        ip: Ipv4Addr,
        hosts: &[(String, String)],
    ) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        sh(&["ip", "netns", "add", &netns]);
        let sandbox = Self { netns, veth, ip };
        let ns = &sandbox.netns[..];
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "link",
            "add",
            &sandbox.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        ]);
        sh(&[
            "ip",
            "link",
            "set",
            &sandbox.veth,
            "master",
            &bridge.name,
            "up",
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
        sh(&[
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &bridge.host_ip.to_string(),
        ]);
        let dir = sandbox.etc_dir();
        std::fs::create_dir_all(&dir).expect("/etc/netns/<pod>");
        let mut text = format!("127.0.0.1 localhost\n{ip} {ns}\n");
        for (name, addr) in hosts {
            text.push_str(&format!("{addr} {name} {name}.\n"));
        }
        std::fs::write(dir.join("hosts"), text).expect("hosts");
        // The node's server, which answers every name NXDOMAIN at once.
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {}\n", bridge.host_ip),
        )
        .expect("resolv.conf");
        sandbox
    }

    fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(&self.netns)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The veth goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}
