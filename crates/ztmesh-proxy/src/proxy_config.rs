//! The whole proxy's configuration, from linkerd2-proxy's variables (so it
//! can take linkerd2-proxy's place in an injected pod) plus ztmesh's
//! explicit mode. Every missing or invalid setting is reported at once;
//! Linkerd settings that are set but not (yet) supported get one warning each.

use crate::config::{ConfigError, Env, Settings};
use crate::identity::config as identity_config;
use crate::identity::config::IdentityMode;
use crate::inbound::authorize::DefaultPolicy;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub(crate) const MODE: &str = "ZTMESH_PROXY_MODE";
pub(crate) const APP_ADDR: &str = "ZTMESH_PROXY_APP_ADDR";
pub(crate) const APP_UID: &str = "ZTMESH_PROXY_APP_UID";
pub(crate) const INBOUND_LISTEN: &str = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR";
pub(crate) const OUTBOUND_LISTEN: &str = "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR";
pub(crate) const ADMIN_LISTEN: &str = "LINKERD2_PROXY_ADMIN_LISTEN_ADDR";
pub(crate) const CONTROL_LISTEN: &str = "LINKERD2_PROXY_CONTROL_LISTEN_ADDR";
pub(crate) const DEFAULT_POLICY: &str = "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY";
pub(crate) const CLUSTER_NETWORKS: &str = "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS";
pub(crate) const DETECT_TIMEOUT: &str = "LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT";
pub(crate) const SHUTDOWN_ENDPOINT: &str = "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED";
pub(crate) const SHUTDOWN_GRACE: &str = "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD";
pub(crate) const DESTINATION_ADDR: &str = "LINKERD2_PROXY_DESTINATION_SVC_ADDR";
pub(crate) const DESTINATION_NAME: &str = "LINKERD2_PROXY_DESTINATION_SVC_NAME";
pub(crate) const DESTINATION_CONTEXT: &str = "LINKERD2_PROXY_DESTINATION_CONTEXT";
pub(crate) const CORES: &str = "LINKERD2_PROXY_CORES";
pub(crate) const INBOUND_PORTS: &str = "LINKERD2_PROXY_INBOUND_PORTS";
pub(crate) const OPAQUE_PORTS: &str = "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION";
pub(crate) const PROFILE_NETWORKS: &str = "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS";
pub(crate) const POLICY_ADDR: &str = "LINKERD2_PROXY_POLICY_SVC_ADDR";
pub(crate) const POLICY_NAME: &str = "LINKERD2_PROXY_POLICY_SVC_NAME";
pub(crate) const POLICY_WORKLOAD: &str = "LINKERD2_PROXY_POLICY_WORKLOAD";
pub(crate) const TRACE_ADDR: &str = "LINKERD2_PROXY_TRACE_COLLECTOR_SVC_ADDR";
pub(crate) const TRACE_NAME: &str = "LINKERD2_PROXY_TRACE_COLLECTOR_SVC_NAME";
pub(crate) const TRACE_SAMPLE_RATE: &str = "ZTMESH_PROXY_TRACE_SAMPLE_RATE";
pub(crate) const TAP_NAME: &str = "LINKERD2_PROXY_TAP_SVC_NAME";
pub(crate) const INBOUND_IPS: &str = "LINKERD2_PROXY_INBOUND_IPS";
/// `unsafe`: inbound request series carry the request's logical authority.
pub(crate) const INBOUND_AUTHORITY_LABELS: &str = "LINKERD2_PROXY_INBOUND_METRICS_AUTHORITY_LABELS";
/// Read by the binary before anything else (logging starts first).
pub(crate) const LOG_FORMAT: &str = "LINKERD2_PROXY_LOG_FORMAT";

/// Settings this proxy reads (the rest of `LINKERD2_PROXY_*` is warned about).
const KNOWN: &[&str] = &[
    LOG_FORMAT,
    INBOUND_AUTHORITY_LABELS,
    identity_config::TRUST_ANCHORS,
    identity_config::DIR,
    identity_config::TOKEN_FILE,
    identity_config::SVC_ADDR,
    identity_config::SVC_NAME,
    identity_config::LOCAL_NAME,
    identity_config::SERVER_ID,
    identity_config::SERVER_NAME,
    identity_config::MIN_REFRESH,
    identity_config::MAX_REFRESH,
    identity_config::SPIRE_WORKLOAD_API_ADDRESS,
    identity_config::SPIRE_SOCKET,
    INBOUND_LISTEN,
    OUTBOUND_LISTEN,
    ADMIN_LISTEN,
    CONTROL_LISTEN,
    DEFAULT_POLICY,
    CLUSTER_NETWORKS,
    DETECT_TIMEOUT,
    SHUTDOWN_ENDPOINT,
    SHUTDOWN_GRACE,
    DESTINATION_ADDR,
    DESTINATION_NAME,
    DESTINATION_CONTEXT,
    CORES,
    INBOUND_PORTS,
    OPAQUE_PORTS,
    PROFILE_NETWORKS,
    POLICY_ADDR,
    POLICY_NAME,
    POLICY_WORKLOAD,
    TRACE_ADDR,
    TRACE_NAME,
    TAP_NAME,
    INBOUND_IPS,
    "LINKERD2_PROXY_LOG",
];

/// Linkerd's default cluster networks.
const DEFAULT_CLUSTER_NETWORKS: &str =
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// iptables sends traffic here; targets come from SO_ORIGINAL_DST.
    Transparent,
    /// No iptables: inbound forwards to the application's address.
    Explicit { app: SocketAddr },
}

#[derive(Clone, Debug)]
pub(crate) struct ProxyConfig {
    pub(crate) identity: IdentityMode,
    pub(crate) mode: Mode,
    pub(crate) inbound_addr: SocketAddr,
    pub(crate) outbound_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) control_addr: SocketAddr,
    pub(crate) detect_timeout: Duration,
    /// `LINKERD2_PROXY_INBOUND_METRICS_AUTHORITY_LABELS=unsafe`.
    pub(crate) inbound_authority_labels: bool,
    pub(crate) default_policy: DefaultPolicy,
    pub(crate) cluster_networks: Vec<IpNet>,
    pub(crate) shutdown_endpoint: bool,
    /// How long a stopping proxy waits for open connections to finish.
    pub(crate) shutdown_grace: Duration,
    /// Destination service (host:port, identity); outbound needs it.
    pub(crate) destination: Option<(String, String)>,
    pub(crate) destination_context: String,
    /// Worker threads (`LINKERD2_PROXY_CORES`; default: every core).
    pub(crate) cores: Option<usize>,
    /// The workload's container ports (`LINKERD2_PROXY_INBOUND_PORTS`).
    pub(crate) inbound_ports: BTreeSet<u16>,
    /// Inbound ports that skip protocol detection and are forwarded as
    /// opaque TCP (`LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION`).
    pub(crate) opaque_ports: BTreeSet<u16>,
    /// Addresses whose profiles are looked up; others are reached directly
    /// (`LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS`, default the cluster networks).
    pub(crate) profile_networks: Vec<IpNet>,
    /// The policy service (host:port, identity) and this workload's name
    /// for it (`{"ns":"…","pod":"…"}` or `ns:pod`).
    pub(crate) policy: Option<PolicyService>,
    /// The OTLP trace collector (host:port, identity) and the share of
    /// untraced requests that start a trace.
    pub(crate) trace: Option<(String, String, f64)>,
    /// The only identity the Tap API on the control port serves.
    pub(crate) tap_identity: Option<String>,
    /// The pod's addresses (`LINKERD2_PROXY_INBOUND_IPS`): inbound
    /// connections to any other address are refused. Empty: not checked.
    pub(crate) inbound_ips: Vec<IpAddr>,
    /// The application's uids (`ZTMESH_PROXY_APP_UID`): connections to the
    /// outbound proxy from sockets other users own are refused. Empty: not
    /// checked.
    pub(crate) app_uids: Vec<u32>,
    /// The federated trust domains' bundles, followed live
    /// (`ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE`).
    pub(crate) federated_bundles_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyService {
    pub(crate) addr: String,
    pub(crate) name: String,
    pub(crate) workload: String,
}

impl ProxyConfig {
    /// The configuration and the warnings to log.
    pub(crate) fn from_env(env: &dyn Env) -> Result<(Self, Vec<String>), ConfigError> {
        let mut s = Settings::new(env);
        let identity = IdentityMode::read(&mut s);
        let mode = match s.optional(MODE).as_deref() {
            None | Some("transparent") => Mode::Transparent,
            Some("explicit") => match s.required(APP_ADDR).map(|a| a.parse::<SocketAddr>()) {
                Some(Ok(app)) => Mode::Explicit { app },
                Some(Err(_)) => {
                    s.invalid(APP_ADDR, "not an IP:PORT (e.g. 127.0.1.1:8080)");
                    Mode::Transparent
                }
                None => Mode::Transparent,
            },
            Some(other) => {
                s.invalid(MODE, format!("{other:?} is not transparent or explicit"));
                Mode::Transparent
            }
        };
        // In explicit mode every listener defaults to the app's IP on Linkerd's port.
        let host = |default: &str| -> IpAddr {
            match mode {
                Mode::Explicit { app } => app.ip(),
                Mode::Transparent => default.parse().expect("valid default"),
            }
        };
        let inbound_addr = addr(
            &mut s,
            INBOUND_LISTEN,
            SocketAddr::new(host("0.0.0.0"), 4143),
        );
        // Explicit mode's outbound proxy relays with the workload's identity:
        // it listens on loopback only (the app's address when that is
        // loopback), never where other hosts reach it.
        let outbound_host = match mode {
            Mode::Explicit { app } if app.ip().is_loopback() => app.ip(),
            _ => "127.0.0.1".parse().expect("valid default"),
        };
        let outbound_addr = addr(
            &mut s,
            OUTBOUND_LISTEN,
            SocketAddr::new(outbound_host, 4140),
        );
        if matches!(mode, Mode::Explicit { .. }) && !outbound_addr.ip().is_loopback() {
            s.invalid(
                OUTBOUND_LISTEN,
                format!(
                    "{outbound_addr} is not a loopback address: in explicit mode the outbound proxy sends requests with this workload's identity, so it listens on loopback only"
                ),
            );
        }
        let mut app_uids = Vec::new();
        for uid in s
            .optional(APP_UID)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            match uid.parse::<u32>() {
                Ok(uid) => app_uids.push(uid),
                Err(_) => s.invalid(APP_UID, format!("{uid:?} is not a numeric uid")),
            }
        }
        let admin_addr = addr(
            &mut s,
            ADMIN_LISTEN,
            SocketAddr::new(host("127.0.0.1"), 4191),
        );
        let control_addr = addr(
            &mut s,
            CONTROL_LISTEN,
            SocketAddr::new(host("0.0.0.0"), 4190),
        );
        let detect_timeout = s.duration(DETECT_TIMEOUT, Duration::from_secs(10));
        let inbound_authority_labels = s
            .optional(INBOUND_AUTHORITY_LABELS)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("unsafe"));
        let default_policy = match s
            .optional(DEFAULT_POLICY)
            .unwrap_or_else(|| "all-unauthenticated".into())
            .parse::<DefaultPolicy>()
        {
            Ok(p) => p,
            Err(e) => {
                s.invalid(DEFAULT_POLICY, e.to_string());
                DefaultPolicy::Deny
            }
        };
        let cluster_networks = networks(&mut s, CLUSTER_NETWORKS, DEFAULT_CLUSTER_NETWORKS);
        let profile_networks = networks(&mut s, PROFILE_NETWORKS, DEFAULT_CLUSTER_NETWORKS);
        let inbound_ports = ports(&mut s, INBOUND_PORTS);
        let opaque_ports = ports(&mut s, OPAQUE_PORTS);
        let shutdown_grace = s.duration(SHUTDOWN_GRACE, Duration::from_secs(30));
        let shutdown_endpoint = s
            .optional(SHUTDOWN_ENDPOINT)
            .is_some_and(|v| v == "true" || v == "1");
        let destination = match (s.optional(DESTINATION_ADDR), s.optional(DESTINATION_NAME)) {
            (Some(addr), Some(name)) => Some((addr, name)),
            (None, None) => None,
            (Some(_), None) => {
                s.required(DESTINATION_NAME);
                None
            }
            (None, Some(_)) => {
                s.required(DESTINATION_ADDR);
                None
            }
        };
        let destination_context = s.optional(DESTINATION_CONTEXT).unwrap_or_default();
        let trace = match (s.optional(TRACE_ADDR), s.optional(TRACE_NAME)) {
            (Some(addr), Some(name)) => {
                let rate = match s
                    .optional(TRACE_SAMPLE_RATE)
                    .map(|r| r.trim().parse::<f64>())
                {
                    None => 0.0,
                    Some(Ok(r)) if (0.0..=1.0).contains(&r) => r,
                    Some(_) => {
                        s.invalid(TRACE_SAMPLE_RATE, "not a fraction between 0 and 1");
                        0.0
                    }
                };
                Some((addr, name, rate))
            }
            (None, None) => None,
            (Some(_), None) => {
                s.required(TRACE_NAME);
                None
            }
            (None, Some(_)) => {
                s.required(TRACE_ADDR);
                None
            }
        };
        let tap_identity = s.optional(TAP_NAME);
        let mut inbound_ips = Vec::new();
        for ip in s
            .optional(INBOUND_IPS)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            match ip.parse::<IpAddr>() {
                Ok(ip) => inbound_ips.push(ip),
                Err(_) => s.invalid(INBOUND_IPS, format!("{ip:?} is not an IP address")),
            }
        }
        let policy = match s.optional(POLICY_ADDR) {
            None => None,
            Some(addr) => match (s.required(POLICY_NAME), s.required(POLICY_WORKLOAD)) {
                (Some(name), Some(workload)) => Some(PolicyService {
                    addr,
                    name,
                    workload,
                }),
                _ => None,
            },
        };
        let cores = match s.optional(CORES).map(|c| c.trim().parse::<usize>()) {
            None => None,
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => {
                s.invalid(CORES, "not a positive number of cores");
                None
            }
        };
        let mut warnings: Vec<String> = env
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("LINKERD2_PROXY_") && !KNOWN.contains(&k.as_str()))
            .map(|k| format!("{k} is set but not supported by ztmesh-proxy yet; ignored"))
            .collect();
        warnings.sort();
        let federated_bundles_file = s
            .optional(crate::identity::federated::FEDERATED_BUNDLES_FILE)
            .map(Into::into);
        s.finish()?;
        Ok((
            Self {
                identity: identity.expect("identity settings are complete"),
                mode,
                inbound_addr,
                outbound_addr,
                admin_addr,
                control_addr,
                detect_timeout,
                inbound_authority_labels,
                default_policy,
                cluster_networks,
                shutdown_endpoint,
                shutdown_grace,
                destination,
                destination_context,
                cores,
                inbound_ports,
                opaque_ports,
                profile_networks,
                policy,
                trace,
                tap_identity,
                inbound_ips,
                app_uids,
                federated_bundles_file,
            },
            warnings,
        ))
    }
}

/// A comma-separated list of CIDRs.
fn networks(s: &mut Settings<'_>, key: &'static str, default: &str) -> Vec<IpNet> {
    let value = s.optional(key).unwrap_or_else(|| default.into());
    let mut out = Vec::new();
    for n in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match n.parse::<IpNet>() {
            Ok(net) => out.push(net),
            Err(_) => s.invalid(key, format!("{n:?} is not a CIDR")),
        }
    }
    out
}

/// A comma-separated list of ports and ranges (`25,587,3306,4444,5432,6000-6010`).
fn ports(s: &mut Settings<'_>, key: &'static str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let value = s.optional(key).unwrap_or_default();
    for item in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match item.split_once('-') {
            Some((a, b)) => a
                .trim()
                .parse::<u16>()
                .ok()
                .zip(b.trim().parse::<u16>().ok()),
            None => item.parse::<u16>().ok().map(|p| (p, p)),
        };
        match range {
            Some((a, b)) if a <= b && a > 0 => out.extend(a..=b),
            _ => s.invalid(key, format!("{item:?} is not a port or a range of ports")),
        }
    }
    out
}

fn addr(s: &mut Settings<'_>, key: &'static str, default: SocketAddr) -> SocketAddr {
    match s.optional(key).map(|v| v.parse::<SocketAddr>()) {
        None => default,
        Some(Ok(a)) => a,
        Some(Err(_)) => {
            s.invalid(key, "not an IP:PORT");
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let anchors = String::from_utf8(ztmesh_test_support::TestPki::new().anchors_pem()).unwrap();
        let mut env: HashMap<String, String> = [
            ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", anchors.as_str()),
            ("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "127.0.0.1:8080"),
            (
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
            ),
            (
                "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
                "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    #[test]
    fn defaults_are_linkerds() {
        let (c, warnings) = ProxyConfig::from_env(&env(&[])).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.mode, Mode::Transparent);
        assert_eq!(c.inbound_addr.to_string(), "0.0.0.0:4143");
        assert_eq!(c.outbound_addr.to_string(), "127.0.0.1:4140");
        assert_eq!(c.admin_addr.to_string(), "127.0.0.1:4191");
        assert_eq!(c.control_addr.to_string(), "0.0.0.0:4190");
        assert_eq!(c.detect_timeout, Duration::from_secs(10));
        assert_eq!(c.cluster_networks.len(), 5);
        assert_eq!(c.profile_networks, c.cluster_networks);
        assert!(c.inbound_ports.is_empty() && c.opaque_ports.is_empty());
    }

    #[test]
    fn explicit_mode_listens_on_the_apps_ip() {
        let (c, _) =
            ProxyConfig::from_env(&env(&[(MODE, "explicit"), (APP_ADDR, "127.0.1.2:7000")]))
                .unwrap();
        assert_eq!(
            c.mode,
            Mode::Explicit {
                app: "127.0.1.2:7000".parse().unwrap()
            }
        );
        assert_eq!(c.inbound_addr.to_string(), "127.0.1.2:4143");
        assert_eq!(c.outbound_addr.to_string(), "127.0.1.2:4140");
        assert_eq!(c.admin_addr.to_string(), "127.0.1.2:4191");
    }

    #[test]
    fn explicit_outbound_listens_on_loopback_only() {
        // An app on a routable address: its outbound proxy stays on loopback.
        let (c, _) = ProxyConfig::from_env(&env(&[
            (MODE, "explicit"),
            (APP_ADDR, "10.233.0.2:7000"),
            (APP_UID, "1000, 1001"),
            (INBOUND_IPS, "10.233.0.2"),
        ]))
        .unwrap();
        assert_eq!(c.inbound_addr.to_string(), "10.233.0.2:4143");
        assert_eq!(c.outbound_addr.to_string(), "127.0.0.1:4140");
        assert_eq!(c.app_uids, vec![1000, 1001]);
        assert_eq!(c.inbound_ips, vec!["10.233.0.2".parse::<IpAddr>().unwrap()]);
        // Asked to listen elsewhere: refused, named.
        let err = ProxyConfig::from_env(&env(&[
            (MODE, "explicit"),
            (APP_ADDR, "10.233.0.2:7000"),
            (OUTBOUND_LISTEN, "0.0.0.0:4140"),
            (APP_UID, "www"),
            (INBOUND_IPS, "10.233.0.2,pod"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("0.0.0.0:4140 is not a loopback address"),
            "{text}"
        );
        assert!(text.contains("\"www\" is not a numeric uid"), "{text}");
        assert!(text.contains("\"pod\" is not an IP address"), "{text}");
        // Transparent mode keeps Linkerd's default, and may be told otherwise.
        let (c, _) = ProxyConfig::from_env(&env(&[(OUTBOUND_LISTEN, "0.0.0.0:4140")])).unwrap();
        assert_eq!(c.outbound_addr.to_string(), "0.0.0.0:4140");
    }

    #[test]
    fn ports_and_networks() {
        let (c, _) = ProxyConfig::from_env(&env(&[
            (INBOUND_PORTS, "8080, 9090"),
            (OPAQUE_PORTS, "25,587,3306,4444,5432,6000-6002,11211"),
            (PROFILE_NETWORKS, "10.0.0.0/8"),
        ]))
        .unwrap();
        assert_eq!(
            c.inbound_ports.into_iter().collect::<Vec<_>>(),
            [8080, 9090]
        );
        assert_eq!(
            c.opaque_ports.into_iter().collect::<Vec<_>>(),
            [25, 587, 3306, 4444, 5432, 6000, 6001, 6002, 11211]
        );
        assert_eq!(
            c.profile_networks,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut e = env(&[
            (OPAQUE_PORTS, "25,smtp,10-5,0"),
            (PROFILE_NETWORKS, "10.0.0.0/33"),
            (DETECT_TIMEOUT, "soon"),
            (MODE, "explicit"),
        ]);
        e.remove("LINKERD2_PROXY_IDENTITY_SVC_ADDR");
        let err = ProxyConfig::from_env(&e).unwrap_err();
        assert_eq!(
            err.missing,
            vec!["LINKERD2_PROXY_IDENTITY_SVC_ADDR", APP_ADDR]
        );
        let keys: Vec<_> = err.invalid.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            vec![
                DETECT_TIMEOUT,
                PROFILE_NETWORKS,
                OPAQUE_PORTS,
                OPAQUE_PORTS,
                OPAQUE_PORTS
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("\"smtp\" is not a port or a range of ports"),
            "{text}"
        );
        assert!(text.contains("\"10-5\" is not a port"), "{text}");
    }

    #[test]
    fn unsupported_linkerd_settings_warn_once_each() {
        let (_, warnings) = ProxyConfig::from_env(&env(&[
            ("LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH", "/x"),
            ("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10s"),
        ]))
        .unwrap();
        assert_eq!(
            warnings,
            vec![
                "LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE is set but not supported by ztmesh-proxy yet; ignored",
                "LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH is set but not supported by ztmesh-proxy yet; ignored",
            ]
        );
    }
}
