//! Identity settings, with linkerd2-proxy's variable names and defaults.
//!
//! Two sources of the proxy's certificate ([`IdentityMode`]): Certify
//! against the identity service ([`IdentityConfig`]), or, when
//! `LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS` (or its deprecated
//! alias `..._SPIRE_SOCKET`) is set, a SPIFFE Workload API
//! ([`SpireConfig`]): the TLS identity (`..._SERVER_ID`, or the legacy
//! `..._LOCAL_NAME`) is then a `spiffe://` ID, and `..._SERVER_NAME` the DNS
//! name clients send as SNI. In both, the trust anchors come from
//! `LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS` or from a bundle file
//! (`ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`) whose changes the proxy
//! follows (see `identity::anchors`).

use crate::config::{ConfigError, Env, Settings};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const TRUST_ANCHORS: &str = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS";
pub(crate) const DIR: &str = "LINKERD2_PROXY_IDENTITY_DIR";
pub(crate) const TOKEN_FILE: &str = "LINKERD2_PROXY_IDENTITY_TOKEN_FILE";
pub(crate) const SVC_ADDR: &str = "LINKERD2_PROXY_IDENTITY_SVC_ADDR";
pub(crate) const SVC_NAME: &str = "LINKERD2_PROXY_IDENTITY_SVC_NAME";
pub(crate) const LOCAL_NAME: &str = "LINKERD2_PROXY_IDENTITY_LOCAL_NAME";
pub(crate) const SERVER_ID: &str = "LINKERD2_PROXY_IDENTITY_SERVER_ID";
pub(crate) const SERVER_NAME: &str = "LINKERD2_PROXY_IDENTITY_SERVER_NAME";
pub(crate) const MIN_REFRESH: &str = "LINKERD2_PROXY_IDENTITY_MIN_REFRESH";
pub(crate) const MAX_REFRESH: &str = "LINKERD2_PROXY_IDENTITY_MAX_REFRESH";
pub(crate) const SPIRE_WORKLOAD_API_ADDRESS: &str =
    "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS";
/// The deprecated name of [`SPIRE_WORKLOAD_API_ADDRESS`].
pub(crate) const SPIRE_SOCKET: &str = "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET";
/// ztmesh's own: a PEM bundle file, followed while the proxy runs.
pub(crate) const TRUST_ANCHORS_FILE: &str = "ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE";

/// linkerd2-proxy's defaults.
pub(crate) const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// PEM, one or more anchors (the file's content at start when
    /// `trust_anchors_file` is set).
    pub trust_anchors_pem: String,
    /// The bundle file the proxy follows, if any.
    pub trust_anchors_file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub token_file: PathBuf,
    pub svc_addr: String,
    pub svc_name: String,
    /// This workload's identity, in DNS form.
    pub local_name: String,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
}

impl IdentityConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut s = Settings::new(env);
        let config = Self::read(&mut s);
        s.finish()?;
        Ok(config.expect("every required setting was present"))
    }

    /// Reads into `s`, which collects problems; `None` when any is missing.
    pub(crate) fn read(s: &mut Settings<'_>) -> Option<Self> {
        let (trust_anchors_pem, trust_anchors_file) = read_trust(s);
        let token_file = s.required(TOKEN_FILE);
        let svc_addr = s.required(SVC_ADDR);
        let svc_name = s.required(SVC_NAME);
        // Newer injectors set SERVER_NAME (DNS) with SERVER_ID; older ones LOCAL_NAME.
        let local_name = match (s.optional(SERVER_NAME), s.optional(LOCAL_NAME)) {
            (Some(name), _) | (None, Some(name)) => Some(name),
            (None, None) => {
                s.required(LOCAL_NAME);
                None
            }
        };
        if let Some(name) = &local_name
            && let Err(e) = ztmesh_identity::IdentityName::parse_dns(name)
        {
            s.invalid(LOCAL_NAME, e.to_string());
        }
        let min_refresh = s.duration(MIN_REFRESH, DEFAULT_MIN_REFRESH);
        let max_refresh = s.duration(MAX_REFRESH, DEFAULT_MAX_REFRESH);
        if min_refresh > max_refresh {
            s.invalid(
                MIN_REFRESH,
                format!("{min_refresh:?} is longer than {MAX_REFRESH} ({max_refresh:?})"),
            );
        }
        Some(Self {
            trust_anchors_pem: trust_anchors_pem?,
            trust_anchors_file,
            dir: s.optional(DIR).map(PathBuf::from),
            token_file: token_file?.into(),
            svc_addr: svc_addr?,
            svc_name: svc_name?,
            local_name: local_name?,
            min_refresh,
            max_refresh,
        })
    }
}

/// The trust anchors: the bundle file when set (its content now, checked),
/// else the PEM in the environment.
fn read_trust(s: &mut Settings<'_>) -> (Option<String>, Option<PathBuf>) {
    let (pem, key) = match s.optional(TRUST_ANCHORS_FILE) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(pem) => (Some(pem), TRUST_ANCHORS_FILE),
            // Not there yet (on Kubernetes, the namespace's copy of the
            // bundle before the controller's first write): the anchors
            // in the environment until it appears, then the file.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && s.optional(TRUST_ANCHORS).is_some() =>
            {
                (s.required(TRUST_ANCHORS), TRUST_ANCHORS)
            }
            Err(e) => {
                s.invalid(TRUST_ANCHORS_FILE, format!("reading {path}: {e}"));
                return (None, Some(path.into()));
            }
        },
        None => (s.required(TRUST_ANCHORS), TRUST_ANCHORS),
    };
    if let Some(pem) = &pem
        && let Err(e) = ztmesh_tls::roots_from_pem(pem.as_bytes())
    {
        s.invalid(key, e.to_string());
    }
    (pem, s.optional(TRUST_ANCHORS_FILE).map(PathBuf::from))
}

/// Where the proxy's certificate comes from.
#[derive(Clone, Debug)]
pub enum IdentityMode {
    /// Certify against the identity service.
    Certify(IdentityConfig),
    /// X.509-SVIDs from a SPIFFE Workload API.
    WorkloadApi(SpireConfig),
}

impl IdentityMode {
    /// Reads into `s`; `None` when a setting is missing.
    pub(crate) fn read(s: &mut Settings<'_>) -> Option<Self> {
        let address = match s.optional(SPIRE_WORKLOAD_API_ADDRESS) {
            Some(a) => Some((SPIRE_WORKLOAD_API_ADDRESS, a)),
            None => s.optional(SPIRE_SOCKET).map(|a| (SPIRE_SOCKET, a)),
        };
        match address {
            Some((key, address)) => SpireConfig::read(s, key, &address).map(Self::WorkloadApi),
            None => IdentityConfig::read(s).map(Self::Certify),
        }
    }

    /// The name inbound TLS is served as (the SNI clients send).
    pub fn local_name(&self) -> &str {
        match self {
            Self::Certify(c) => &c.local_name,
            Self::WorkloadApi(c) => &c.server_name,
        }
    }

    /// The identity this proxy proves: its DNS name, or its SPIFFE ID.
    pub fn identity(&self) -> &str {
        match self {
            Self::Certify(c) => &c.local_name,
            Self::WorkloadApi(c) => &c.spiffe_id,
        }
    }

    pub fn trust_anchors_pem(&self) -> &str {
        match self {
            Self::Certify(c) => &c.trust_anchors_pem,
            Self::WorkloadApi(c) => &c.trust_anchors_pem,
        }
    }

    pub fn trust_anchors_file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Certify(c) => c.trust_anchors_file.as_deref(),
            Self::WorkloadApi(c) => c.trust_anchors_file.as_deref(),
        }
    }
}

/// The SPIFFE Workload API as the identity source.
#[derive(Clone, Debug)]
pub struct SpireConfig {
    /// The anchors until the Workload API sends its bundle, and for the
    /// control plane's TLS.
    pub trust_anchors_pem: String,
    pub trust_anchors_file: Option<PathBuf>,
    pub workload_api: WorkloadApiAddr,
    /// The SVID this proxy takes: `spiffe://...`.
    pub spiffe_id: String,
    /// The DNS name clients send as SNI.
    pub server_name: String,
}

impl SpireConfig {
    fn read(s: &mut Settings<'_>, key: &'static str, address: &str) -> Option<Self> {
        let workload_api = match WorkloadApiAddr::parse(address) {
            Ok(a) => Some(a),
            Err(e) => {
                s.invalid(key, e.to_string());
                None
            }
        };
        let (trust_anchors_pem, trust_anchors_file) = read_trust(s);
        let (id_key, spiffe_id) = match (s.optional(SERVER_ID), s.optional(LOCAL_NAME)) {
            (Some(id), _) => (SERVER_ID, Some(id)),
            (None, Some(id)) => (LOCAL_NAME, Some(id)),
            (None, None) => (SERVER_ID, s.required(SERVER_ID)),
        };
        if let Some(id) = &spiffe_id
            && !is_spiffe_id(id)
        {
            s.invalid(
                id_key,
                format!(
                    "{id:?} is not a SPIFFE ID (spiffe://TRUST_DOMAIN/PATH), which {key} requires"
                ),
            );
        }
        let server_name = s.required(SERVER_NAME);
        if let Some(name) = &server_name
            && ztmesh_tls::server_name(name).is_err()
        {
            s.invalid(SERVER_NAME, format!("{name:?} is not a DNS name"));
        }
        Some(Self {
            trust_anchors_pem: trust_anchors_pem?,
            trust_anchors_file,
            workload_api: workload_api?,
            spiffe_id: spiffe_id.filter(|id| is_spiffe_id(id))?,
            server_name: server_name?,
        })
    }
}

/// `spiffe://` with a trust domain and a path.
fn is_spiffe_id(id: &str) -> bool {
    id.strip_prefix(ztmesh_tls::SPIFFE_SCHEME)
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(domain, path)| {
            !domain.is_empty()
                && !path.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        })
}

/// The Workload API's Unix socket, from `unix:///path`, `unix:/path` or a
/// plain path (linkerd2-proxy strips a `unix:` prefix and takes the rest as
/// the socket's path; so does this, keeping one leading `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadApiAddr(pub PathBuf);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadApiAddrError {
    #[error("{0:?}: only Unix sockets are supported (unix:///path or a path)")]
    Scheme(String),
    #[error("no socket path")]
    Empty,
}

impl WorkloadApiAddr {
    pub fn parse(s: &str) -> Result<Self, WorkloadApiAddrError> {
        let s = s.trim();
        let path = match s.strip_prefix("unix:") {
            Some(rest) => match rest.strip_prefix("//") {
                // unix:///path: an empty authority, then the path.
                Some(p) if p.starts_with('/') => p,
                Some(_) => return Err(WorkloadApiAddrError::Scheme(s.into())),
                None => rest,
            },
            None if s.contains("://") => return Err(WorkloadApiAddrError::Scheme(s.into())),
            None => s,
        };
        if path.is_empty() {
            return Err(WorkloadApiAddrError::Empty);
        }
        Ok(Self(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn workload_api_address_table() {
        let ok = |p: &str| Ok(WorkloadApiAddr(PathBuf::from(p)));
        let cases = [
            ("unix:///run/spire/agent.sock", ok("/run/spire/agent.sock")),
            ("unix:/run/spire/agent.sock", ok("/run/spire/agent.sock")),
            ("/run/spire/agent.sock", ok("/run/spire/agent.sock")),
            ("agent.sock", ok("agent.sock")),
            (
                "unix://host/agent.sock",
                Err(WorkloadApiAddrError::Scheme(
                    "unix://host/agent.sock".into(),
                )),
            ),
            (
                "tcp://127.0.0.1:8081",
                Err(WorkloadApiAddrError::Scheme("tcp://127.0.0.1:8081".into())),
            ),
            ("unix:", Err(WorkloadApiAddrError::Empty)),
        ];
        for (input, want) in cases {
            assert_eq!(WorkloadApiAddr::parse(input), want, "{input}");
        }
    }

    #[test]
    fn spiffe_id_table() {
        let cases = [
            ("spiffe://cluster.local/ns/a/sa/b", true),
            ("spiffe://example.org/web", true),
            ("spiffe://cluster.local", false),
            ("spiffe://cluster.local/", false),
            ("spiffe:///ns/a", false),
            ("spiffe://Cluster.local/ns/a", false),
            (
                "web.ns.serviceaccount.identity.linkerd.cluster.local",
                false,
            ),
        ];
        for (id, want) in cases {
            assert_eq!(is_spiffe_id(id), want, "{id}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let anchors = String::from_utf8(ztmesh_test_support::TestPki::new().anchors_pem()).unwrap();
        let mut env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry(TRUST_ANCHORS.into()).or_insert(anchors);
        env
    }

    fn read(env: &HashMap<String, String>) -> Result<IdentityMode, crate::config::ConfigError> {
        let mut s = Settings::new(env);
        let mode = IdentityMode::read(&mut s);
        s.finish()?;
        Ok(mode.expect("complete"))
    }

    const ID: &str = "spiffe://cluster.local/ns/booksapp/sa/books";
    const DNS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

    #[test]
    fn the_workload_api_replaces_certify() {
        // Either name of the address; SERVER_ID or LOCAL_NAME as the ID.
        for (addr_key, id_key) in [
            (SPIRE_WORKLOAD_API_ADDRESS, SERVER_ID),
            (SPIRE_SOCKET, SERVER_ID),
            (SPIRE_WORKLOAD_API_ADDRESS, LOCAL_NAME),
        ] {
            let e = env(&[
                (addr_key, "unix:///run/spire.sock"),
                (id_key, ID),
                (SERVER_NAME, DNS),
            ]);
            match read(&e).unwrap() {
                IdentityMode::WorkloadApi(c) => {
                    assert_eq!(c.workload_api.0, PathBuf::from("/run/spire.sock"));
                    assert_eq!(c.spiffe_id, ID);
                    assert_eq!(c.server_name, DNS);
                }
                other => panic!("{addr_key}/{id_key}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_workload_api_needs_a_spiffe_id() {
        let e = env(&[
            (SPIRE_WORKLOAD_API_ADDRESS, "/run/spire.sock"),
            (SERVER_ID, DNS),
            (SERVER_NAME, DNS),
        ]);
        let err = read(&e).unwrap_err();
        assert_eq!(err.invalid.len(), 1, "{err}");
        assert_eq!(err.invalid[0].0, SERVER_ID);
        let e = env(&[
            (SPIRE_WORKLOAD_API_ADDRESS, "/run/spire.sock"),
            (SERVER_ID, ID),
        ]);
        assert_eq!(read(&e).unwrap_err().missing, vec![SERVER_NAME]);
    }

    #[test]
    fn a_trust_anchors_file_stands_for_the_variable() {
        let pki = ztmesh_test_support::TestPki::new();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), pki.anchors_pem()).unwrap();
        let path = file.path().display().to_string();
        let mut e: HashMap<String, String> = [
            (SPIRE_WORKLOAD_API_ADDRESS, "/run/spire.sock"),
            (SERVER_ID, ID),
            (SERVER_NAME, DNS),
            (TRUST_ANCHORS_FILE, path.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mode = read(&e).unwrap();
        assert_eq!(mode.trust_anchors_file(), Some(file.path()));
        assert_eq!(mode.trust_anchors_pem().as_bytes(), pki.anchors_pem());
        // An unreadable or invalid file is reported under its variable.
        std::fs::write(file.path(), "not PEM").unwrap();
        assert_eq!(read(&e).unwrap_err().invalid[0].0, TRUST_ANCHORS_FILE);
        e.insert(TRUST_ANCHORS_FILE.into(), "/nonexistent/bundle.pem".into());
        assert_eq!(read(&e).unwrap_err().invalid[0].0, TRUST_ANCHORS_FILE);
        // A file not there yet, with anchors in the environment: those,
        // and the file followed (a namespace's copy not written yet).
        let anchors = String::from_utf8(pki.anchors_pem().to_vec()).unwrap();
        e.insert(TRUST_ANCHORS.into(), anchors.clone());
        let mode = read(&e).unwrap();
        assert_eq!(mode.trust_anchors_pem(), anchors);
        assert_eq!(
            mode.trust_anchors_file(),
            Some(std::path::Path::new("/nonexistent/bundle.pem"))
        );
        // A file that is there but bad is still refused.
        e.insert(TRUST_ANCHORS_FILE.into(), path.clone());
        assert_eq!(read(&e).unwrap_err().invalid[0].0, TRUST_ANCHORS_FILE);
    }
}
