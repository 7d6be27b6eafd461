//! Selectors: one fact about a calling process, written `TYPE:KEY:VALUE`.
//!
//! - `unix:uid:N`, `unix:gid:N`: the caller's user and group id (the
//!   kernel's peer credentials, SO_PEERCRED);
//! - `unix:path:/abs/path`: the caller's executable (`/proc/PID/exe`);
//! - `cgroup:PATH`: one of the caller's cgroups (`/proc/PID/cgroup`, the
//!   path after the hierarchy), exactly, or every cgroup under a prefix
//!   when PATH ends in `/*`.
//!
//! A resource's selectors must all match for it to apply.

use std::fmt;
use std::path::PathBuf;

/// What the agent knows of a caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// `/proc/PID/exe`, if it could be read.
    pub exe: Option<PathBuf>,
    /// The cgroup paths of `/proc/PID/cgroup`.
    pub cgroups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Uid(u32),
    Gid(u32),
    Path(PathBuf),
    Cgroup(String),
    CgroupPrefix(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "selector {0:?} is not one of unix:uid:N, unix:gid:N, unix:path:/ABSOLUTE, cgroup:/PATH"
    )]
    Unknown(String),
    #[error("selector {0:?}: {1:?} is not a number")]
    NotANumber(String, String),
    #[error("selector {0:?}: the path must be absolute")]
    NotAbsolute(String),
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| SelectorError::NotANumber(s.into(), v.into()))
        };
        let absolute = |v: &str| {
            if v.starts_with('/') {
                Ok(v.to_string())
            } else {
                Err(SelectorError::NotAbsolute(s.into()))
            }
        };
        if let Some(v) = s.strip_prefix("unix:uid:") {
            return Ok(Self::Uid(number(v)?));
        }
        if let Some(v) = s.strip_prefix("unix:gid:") {
            return Ok(Self::Gid(number(v)?));
        }
        if let Some(v) = s.strip_prefix("unix:path:") {
            return Ok(Self::Path(absolute(v)?.into()));
        }
        if let Some(v) = s.strip_prefix("cgroup:") {
            let v = absolute(v)?;
            return Ok(match v.strip_suffix("/*") {
                Some(prefix) => Self::CgroupPrefix(format!("{prefix}/")),
                None => Self::Cgroup(v),
            });
        }
        Err(SelectorError::Unknown(s.into()))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uid(n) => write!(f, "unix:uid:{n}"),
            Self::Gid(n) => write!(f, "unix:gid:{n}"),
            Self::Path(p) => write!(f, "unix:path:{}", p.display()),
            Self::Cgroup(c) => write!(f, "cgroup:{c}"),
            Self::CgroupPrefix(c) => write!(f, "cgroup:{c}*"),
        }
    }
}

impl Selector {
    pub fn matches(&self, caller: &Caller) -> bool {
        match self {
            Self::Uid(n) => caller.uid == *n,
            Self::Gid(n) => caller.gid == *n,
            Self::Path(p) => caller.exe.as_ref() == Some(p),
            Self::Cgroup(c) => caller.cgroups.iter().any(|g| g == c),
            Self::CgroupPrefix(prefix) => caller.cgroups.iter().any(|g| g.starts_with(prefix)),
        }
    }
}

/// The cgroup paths in the text of `/proc/PID/cgroup`
/// (`HIERARCHY:CONTROLLERS:PATH` lines; v1 and v2 alike).
pub fn parse_proc_cgroup(text: &str) -> Vec<String> {
    let mut paths: Vec<String> = text
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            uid: 1000,
            gid: 100,
            pid: Some(42),
            exe: Some("/usr/bin/app".into()),
            cgroups: vec!["/system.slice/app.service".into()],
        }
    }

    #[test]
    fn parse_and_match() {
        // (selector, parses to, matches caller())
        let table: &[(&str, Result<Selector, SelectorError>, bool)] = &[
            ("unix:uid:1000", Ok(Selector::Uid(1000)), true),
            ("unix:uid:0", Ok(Selector::Uid(0)), false),
            ("unix:gid:100", Ok(Selector::Gid(100)), true),
            ("unix:gid:101", Ok(Selector::Gid(101)), false),
            (
                "unix:path:/usr/bin/app",
                Ok(Selector::Path("/usr/bin/app".into())),
                true,
            ),
            (
                "unix:path:/usr/bin/ap",
                Ok(Selector::Path("/usr/bin/ap".into())),
                false,
            ),
            (
                "cgroup:/system.slice/app.service",
                Ok(Selector::Cgroup("/system.slice/app.service".into())),
                true,
            ),
            (
                "cgroup:/system.slice",
                Ok(Selector::Cgroup("/system.slice".into())),
                false,
            ),
            (
                "cgroup:/system.slice/*",
                Ok(Selector::CgroupPrefix("/system.slice/".into())),
                true,
            ),
            (
                "cgroup:/system/*",
                Ok(Selector::CgroupPrefix("/system/".into())),
                false,
            ),
            (
                "unix:uid:x",
                Err(SelectorError::NotANumber("unix:uid:x".into(), "x".into())),
                false,
            ),
            (
                "unix:uid:-1",
                Err(SelectorError::NotANumber("unix:uid:-1".into(), "-1".into())),
                false,
            ),
            (
                "unix:path:app",
                Err(SelectorError::NotAbsolute("unix:path:app".into())),
                false,
            ),
            (
                "k8s:ns:default",
                Err(SelectorError::Unknown("k8s:ns:default".into())),
                false,
            ),
            ("", Err(SelectorError::Unknown("".into())), false),
        ];
        for (text, want, matches) in table {
            let got = text.parse::<Selector>();
            assert_eq!(&got, want, "{text}");
            if let Ok(sel) = got {
                assert_eq!(sel.matches(&caller()), *matches, "{text}");
                assert_eq!(sel.to_string(), *text, "round trip");
            }
        }
    }

    #[test]
    fn no_exe_matches_no_path() {
        let c = Caller {
            exe: None,
            ..caller()
        };
        assert!(!Selector::Path("/usr/bin/app".into()).matches(&c));
    }

    #[test]
    fn proc_cgroup() {
        let table: &[(&str, &[&str])] = &[
            (
                "0::/user.slice/session-1.scope\n",
                &["/user.slice/session-1.scope"],
            ),
            (
                "12:pids:/docker/abc\n11:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
                &["/docker/abc"],
            ),
            ("", &[]),
            ("garbage\n", &[]),
        ];
        for (text, want) in table {
            assert_eq!(parse_proc_cgroup(text), *want, "{text:?}");
        }
    }
}
