//! Who is calling: the kernel's peer credentials of the Unix-socket
//! connection (uid, gid, pid: SO_PEERCRED, read by tokio when the
//! connection is accepted), and what `/proc/PID` says of that process.
//!
//! A pid can be reused once its process exits; the agent reads /proc at
//! each call, while the caller holds the connection open, so the window is
//! the caller's own exit.

use std::path::Path;
use tonic::transport::server::UdsConnectInfo;
use ztmesh_attestation::Caller;
use ztmesh_attestation::selector::parse_proc_cgroup;

/// The caller of a request on the Unix socket, or `None` if the kernel
/// gave no credentials.
pub fn caller<T>(req: &tonic::Request<T>, proc_root: &Path) -> Option<Caller> {
    let cred = req.extensions().get::<UdsConnectInfo>()?.peer_cred?;
    let pid = cred.pid();
    let (exe, cgroups) = match pid {
        Some(pid) if pid > 0 => {
            let dir = proc_root.join(pid.to_string());
            (
                std::fs::read_link(dir.join("exe")).ok(),
                std::fs::read_to_string(dir.join("cgroup"))
                    .map(|t| parse_proc_cgroup(&t))
                    .unwrap_or_default(),
            )
        }
        _ => (None, Vec::new()),
    };
    Some(Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        pid,
        exe,
        cgroups,
    })
}

/// The caller as a refusal names it.
pub fn describe(c: &Caller) -> String {
    format!(
        "uid={} gid={} pid={} exe={} cgroups={:?}",
        c.uid,
        c.gid,
        c.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        c.exe
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "?".into()),
        c.cgroups
    )
}
