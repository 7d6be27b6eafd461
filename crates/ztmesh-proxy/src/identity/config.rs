//! Identity settings, with linkerd2-proxy's variable names and defaults.

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

/// linkerd2-proxy's defaults.
pub(crate) const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// PEM, one or more anchors.
    pub trust_anchors_pem: String,
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
        let trust_anchors_pem = s.required(TRUST_ANCHORS);
        if let Some(pem) = &trust_anchors_pem
            && let Err(e) = ztmesh_tls::roots_from_pem(pem.as_bytes())
        {
            s.invalid(TRUST_ANCHORS, e.to_string());
        }
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
