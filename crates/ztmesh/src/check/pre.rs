//! `check --pre`: what must hold before the mesh starts. The addresses the
//! control plane will bind are free (a bind, released at once); the
//! identity material is present and valid (the issuer loads as the
//! controller loads it, the token key is there); iptables is available
//! for transparent mode (the binary runs, and this process may change
//! the netfilter tables: CAP_NET_ADMIN); the clock is sane (after the
//! build's floor, and inside the anchors' and issuer's validity).
//! [`observe`] gathers; [`checks`] judges.

use super::mesh::{Target, TrustFiles};
use super::result::{CheckResult, Group};
use super::trust;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// No sane clock reads earlier than this (2026-01-01T00:00:00Z).
const CLOCK_FLOOR: Duration = Duration::from_secs(1_767_225_600);

/// What `--pre` saw.
#[derive(Debug)]
pub(crate) struct PreObserved {
    /// Each address and whether binding it failed (why).
    pub(crate) binds: Vec<(SocketAddr, Option<std::io::ErrorKind>)>,
    pub(crate) trust: TrustFiles,
    pub(crate) token_key: Option<PathBuf>,
    /// `iptables --version`'s first line, if it ran.
    pub(crate) iptables: Option<String>,
    /// CAP_NET_ADMIN in this process's effective set.
    pub(crate) net_admin: bool,
}

/// Bit 12 of /proc/self/status' CapEff.
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

pub(crate) async fn observe(target: &Target, listen: &[SocketAddr]) -> PreObserved {
    let mut binds = Vec::new();
    for addr in listen {
        let got = tokio::net::TcpListener::bind(addr).await;
        binds.push((*addr, got.err().map(|e| e.kind())));
    }
    let iptables = tokio::task::spawn_blocking(|| {
        std::process::Command::new("iptables")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
    })
    .await
    .ok()
    .flatten();
    let dir = target.identity_dir.as_deref();
    PreObserved {
        binds,
        trust: TrustFiles::read(dir),
        token_key: dir
            .map(|d| d.join(ztmesh_identity::install::TOKEN_KEY_FILE))
            .filter(|p| p.is_file()),
        iptables,
        net_admin: has_net_admin(),
    }
}

pub(crate) fn checks(o: &PreObserved, now: SystemTime) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let taken: Vec<String> = o
        .binds
        .iter()
        .filter_map(|(a, e)| e.map(|e| format!("{a}: {e}")))
        .collect();
    let evidence = o.binds.iter().map(|(a, _)| a.to_string());
    out.push(
        if taken.is_empty() {
            CheckResult::pass(
                Group::Pre,
                "ports-free",
                "control-plane ports free",
                format!("{} address(es) bindable", o.binds.len()),
            )
        } else {
            CheckResult::fail(
                Group::Pre,
                "ports-free",
                "control-plane ports free",
                format!("{} address(es) cannot be bound", taken.len()),
                "stop what holds them (ss -ltnp), or give the controller other --*-addr flags",
            )
            .offenders(taken)
        }
        .evidence(evidence),
    );

    // Identity material: the same judgement as `check`'s identity group,
    // plus the token key local workloads need.
    for mut c in trust::checks(&o.trust, now) {
        c.group = Group::Pre;
        out.push(c);
    }
    out.push(match (&o.trust.dir, &o.token_key) {
        (Some(_), Some(key)) => CheckResult::pass(
            Group::Pre,
            "token-key",
            "token key present",
            format!("{}", key.display()),
        ),
        (Some(d), None) => CheckResult::fail(
            Group::Pre,
            "token-key",
            "token key present",
            format!("no token.key in {}", d.display()),
            format!("ztmesh install --dir {} --force", d.display()),
        ),
        (None, _) => CheckResult::warn(
            Group::Pre,
            "token-key",
            "token key present",
            "not checked: the identity directory is unknown",
            "pass --identity-dir DIR",
        ),
    });

    out.push(match (&o.iptables, o.net_admin) {
        (Some(v), true) => CheckResult::pass(
            Group::Pre,
            "iptables",
            "iptables available (transparent mode)",
            format!("{v}, with CAP_NET_ADMIN"),
        ),
        (Some(v), false) => CheckResult::warn(
            Group::Pre,
            "iptables",
            "iptables available (transparent mode)",
            format!("{v}, but this process lacks CAP_NET_ADMIN"),
            "run proxy-init as root (or with CAP_NET_ADMIN), or use explicit mode (ZTMESH_PROXY_MODE=explicit)",
        ),
        (None, _) => CheckResult::warn(
            Group::Pre,
            "iptables",
            "iptables available (transparent mode)",
            "iptables not found: only explicit mode is possible",
            "install iptables (apt-get install iptables), or use explicit mode",
        ),
    });

    out.push(clock(&o.trust, now));
    out
}

fn clock(trust: &TrustFiles, now: SystemTime) -> CheckResult {
    let (id, title) = ("clock", "clock sane");
    let at = ztmesh_identity::rfc3339(now);
    if now < SystemTime::UNIX_EPOCH + CLOCK_FLOOR {
        return CheckResult::fail(
            Group::Pre,
            id,
            title,
            format!("the clock reads {at}, before this build existed"),
            "set the clock (timedatectl set-ntp true)",
        );
    }
    let not_yet: Vec<String> = trust
        .anchors
        .iter()
        .chain(&trust.issuer)
        .filter_map(|c| super::chain::Summary::of(c).ok())
        .filter(|s| s.not_before > now)
        .map(|s| {
            format!(
                "{} is valid only from {}",
                s.subject,
                ztmesh_identity::rfc3339(s.not_before)
            )
        })
        .collect();
    if !not_yet.is_empty() {
        return CheckResult::fail(
            Group::Pre,
            id,
            title,
            format!("the clock reads {at}, before the identity material's validity"),
            "set the clock (timedatectl set-ntp true)",
        )
        .offenders(not_yet);
    }
    CheckResult::pass(Group::Pre, id, title, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn observed(
        binds: Vec<(SocketAddr, Option<std::io::ErrorKind>)>,
        iptables: bool,
        caps: bool,
    ) -> PreObserved {
        PreObserved {
            binds,
            trust: TrustFiles::default(),
            token_key: None,
            iptables: iptables.then(|| "iptables v1.8.9 (nf_tables)".to_string()),
            net_admin: caps,
        }
    }

    fn status(checks: &[CheckResult], id: &str) -> Status {
        checks.iter().find(|c| c.id == id).unwrap().status
    }

    #[test]
    fn ports_iptables_and_clock() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let now = SystemTime::now();
        let cases = [
            (
                vec![(a, None)],
                true,
                true,
                now,
                [Status::Pass, Status::Pass, Status::Pass],
            ),
            (
                vec![(a, Some(std::io::ErrorKind::AddrInUse))],
                true,
                false,
                now,
                [Status::Fail, Status::Warn, Status::Pass],
            ),
            (
                vec![],
                false,
                true,
                SystemTime::UNIX_EPOCH + Duration::from_secs(86400),
                [Status::Pass, Status::Warn, Status::Fail],
            ),
        ];
        for (binds, iptables, caps, at, want) in cases {
            let got = checks(&observed(binds, iptables, caps), at);
            let statuses = [
                status(&got, "ports-free"),
                status(&got, "iptables"),
                status(&got, "clock"),
            ];
            assert_eq!(statuses, want, "{got:#?}");
        }
    }

    #[test]
    fn identity_material_is_judged_and_the_token_key_required() {
        let pki = ztmesh_test_support::TestPki::new();
        let mut o = observed(vec![], true, true);
        o.trust = TrustFiles::read(Some(pki.dir()));
        let got = checks(&o, SystemTime::now());
        assert_eq!(status(&got, "issuer"), Status::Pass);
        assert_eq!(status(&got, "token-key"), Status::Fail);
        assert!(got.iter().all(|c| c.group == Group::Pre));
        o.token_key = Some(pki.dir().join("token.key"));
        assert_eq!(
            status(&checks(&o, SystemTime::now()), "token-key"),
            Status::Pass
        );
    }
}
