//! What injection is made from: [`Config`] (the control plane's values,
//! as Linkerd's chart holds them) and [`Settings`], the values in force
//! for one pod once its annotations have overridden the config, as
//! Linkerd's `ApplyAnnotationOverrides` does.

use crate::names;
use std::collections::BTreeMap;

/// The proxy's ports (Linkerd's `proxy.ports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub inbound: u16,
    pub outbound: u16,
    pub admin: u16,
    pub control: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            inbound: 4143,
            outbound: 4140,
            admin: 4191,
            control: 4190,
        }
    }
}

/// The proxy's resource requests and limits (Kubernetes quantities).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
}

/// How proxy-init drives iptables (the chart's `proxyInit.iptablesMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IptablesMode {
    #[default]
    Legacy,
    Nft,
}

/// The control plane's injection values. [`Config::default`] is
/// Linkerd's chart defaults with ztmesh's image and a placeholder trust
/// anchor (for tests); the CLI and the webhook set the real anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The control plane's namespace (`linkerd`): service names, identities.
    pub control_plane_namespace: String,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// The identity trust domain (`cluster.local`).
    pub identity_trust_domain: String,
    /// The trust anchors (PEM) proxies verify peers against.
    pub trust_anchors_pem: String,
    /// The proxy image, without its tag.
    pub proxy_image: String,
    /// The proxy image's tag, also `linkerd.io/proxy-version`.
    pub proxy_version: String,
    /// The image `linkerd-init` runs (with its tag); the proxy's when `None`.
    pub init_image: Option<String>,
    pub image_pull_policy: String,
    /// ztmesh's version, for `linkerd.io/created-by`.
    pub version: String,
    pub ports: Ports,
    pub proxy_uid: i64,
    /// The proxy's gid; none (Linkerd's -1) leaves it to the image.
    pub proxy_gid: Option<i64>,
    pub log_level: String,
    pub log_format: String,
    pub default_inbound_policy: String,
    /// CIDRs of the cluster's networks (profile lookups, cluster-* policies).
    pub cluster_networks: String,
    /// Ports served without protocol detection, unless annotated otherwise.
    pub opaque_ports: String,
    /// Inbound ports proxy-init leaves alone besides the proxy's own.
    pub skip_inbound_ports: String,
    pub skip_outbound_ports: String,
    pub skip_subnets: String,
    pub resources: Resources,
    /// Run the proxy as a native sidecar (an init container with
    /// `restartPolicy: Always`) unless a pod says otherwise.
    pub native_sidecar: bool,
    pub iptables_mode: IptablesMode,
    pub disable_ipv6: bool,
    /// `inject_document` adds the proxy itself (Linkerd's `inject
    /// --manual`); otherwise it only annotates pod templates
    /// `linkerd.io/inject: enabled` for the webhook (Linkerd's default).
    pub manual: bool,
    /// Annotations `inject_document` sets on every pod template and
    /// namespace it injects (Linkerd's CLI flags become these).
    pub overrides: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            control_plane_namespace: "linkerd".into(),
            cluster_domain: "cluster.local".into(),
            identity_trust_domain: "cluster.local".into(),
            trust_anchors_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                .into(),
            proxy_image: "ztmesh".into(),
            proxy_version: env!("CARGO_PKG_VERSION").into(),
            init_image: None,
            image_pull_policy: "IfNotPresent".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ports: Ports::default(),
            proxy_uid: 2102,
            proxy_gid: None,
            log_level: "warn,linkerd=info,hickory=error".into(),
            log_format: "plain".into(),
            default_inbound_policy: "all-unauthenticated".into(),
            cluster_networks: "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
                .into(),
            opaque_ports: "25,587,3306,4444,5432,6379,9300,11211".into(),
            skip_inbound_ports: "4567,4568".into(),
            skip_outbound_ports: "4567,4568".into(),
            skip_subnets: String::new(),
            resources: Resources::default(),
            native_sidecar: false,
            iptables_mode: IptablesMode::Legacy,
            disable_ipv6: true,
            manual: false,
            overrides: BTreeMap::new(),
        }
    }
}

/// The default inbound policies Linkerd accepts.
pub const INBOUND_POLICIES: &[&str] = &[
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
    "audit",
];

/// The values in force for one pod.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) image: String,
    pub(crate) version: String,
    pub(crate) pull_policy: String,
    pub(crate) ports: Ports,
    pub(crate) uid: i64,
    pub(crate) gid: Option<i64>,
    pub(crate) log_level: String,
    pub(crate) log_format: String,
    pub(crate) default_inbound_policy: String,
    pub(crate) opaque_ports: String,
    pub(crate) skip_inbound_ports: String,
    pub(crate) skip_outbound_ports: String,
    pub(crate) skip_subnets: String,
    pub(crate) resources: Resources,
    pub(crate) cores_min: u64,
    pub(crate) cores_max: Option<u64>,
    pub(crate) require_identity_ports: String,
    pub(crate) ingress: bool,
    pub(crate) native_sidecar: bool,
    pub(crate) await_proxy: bool,
    pub(crate) access_log: String,
    pub(crate) shutdown_grace_period: String,
}

impl Settings {
    /// `cfg` overridden by `annotations` (the pod's, with whatever it
    /// inherited); invalid values are ignored with a warning, as Linkerd
    /// does. `named_ports` resolves opaque ports given by name.
    pub(crate) fn new(
        cfg: &Config,
        annotations: &BTreeMap<String, String>,
        named_ports: &BTreeMap<String, u16>,
        warnings: &mut Vec<String>,
    ) -> Settings {
        let get = |k: &str| annotations.get(k).map(|v| v.trim().to_string());
        let mut s = Settings {
            image: cfg.proxy_image.clone(),
            version: cfg.proxy_version.clone(),
            pull_policy: cfg.image_pull_policy.clone(),
            ports: cfg.ports,
            uid: cfg.proxy_uid,
            gid: cfg.proxy_gid,
            log_level: cfg.log_level.clone(),
            log_format: cfg.log_format.clone(),
            default_inbound_policy: cfg.default_inbound_policy.clone(),
            opaque_ports: cfg.opaque_ports.clone(),
            skip_inbound_ports: cfg.skip_inbound_ports.clone(),
            skip_outbound_ports: cfg.skip_outbound_ports.clone(),
            skip_subnets: cfg.skip_subnets.clone(),
            resources: cfg.resources.clone(),
            cores_min: 1,
            cores_max: None,
            require_identity_ports: String::new(),
            ingress: annotations.get(names::INJECT).map(String::as_str) == Some(names::INGRESS),
            native_sidecar: cfg.native_sidecar,
            await_proxy: true,
            access_log: String::new(),
            shutdown_grace_period: String::new(),
        };
        if let Some(cpu) = &s.resources.cpu_request {
            s.cores_min = whole_cores(cpu).unwrap_or(1);
        }
        if let Some(cpu) = &s.resources.cpu_limit {
            s.cores_max = whole_cores(cpu);
        }
        let mut warn = |key: &str, value: &str, why: &str| {
            warnings.push(format!("{key}: {value:?} ignored: {why}"));
        };
        let string_overrides: [(&str, &mut String); 11] = [
            (names::PROXY_IMAGE, &mut s.image),
            (names::PROXY_VERSION_OVERRIDE, &mut s.version),
            (names::IMAGE_PULL_POLICY, &mut s.pull_policy),
            (names::LOG_LEVEL, &mut s.log_level),
            (names::LOG_FORMAT, &mut s.log_format),
            (names::SKIP_INBOUND_PORTS, &mut s.skip_inbound_ports),
            (names::SKIP_OUTBOUND_PORTS, &mut s.skip_outbound_ports),
            (names::SKIP_SUBNETS, &mut s.skip_subnets),
            (names::REQUIRE_IDENTITY_PORTS, &mut s.require_identity_ports),
            (names::ACCESS_LOG, &mut s.access_log),
            (names::SHUTDOWN_GRACE_PERIOD, &mut s.shutdown_grace_period),
        ];
        for (key, field) in string_overrides {
            if let Some(v) = get(key) {
                *field = v;
            }
        }
        for (key, field) in [
            (names::INBOUND_PORT, &mut s.ports.inbound),
            (names::OUTBOUND_PORT, &mut s.ports.outbound),
            (names::ADMIN_PORT, &mut s.ports.admin),
            (names::CONTROL_PORT, &mut s.ports.control),
        ] {
            if let Some(v) = get(key) {
                match v.parse() {
                    Ok(p) => *field = p,
                    Err(_) => warn(key, &v, "not a port"),
                }
            }
        }
        if let Some(v) = get(names::PROXY_UID) {
            match v.parse() {
                Ok(uid) => s.uid = uid,
                Err(_) => warn(names::PROXY_UID, &v, "not a uid"),
            }
        }
        if let Some(v) = get(names::PROXY_GID) {
            match v.parse::<i64>() {
                Ok(gid) => s.gid = (gid >= 0).then_some(gid),
                Err(_) => warn(names::PROXY_GID, &v, "not a gid"),
            }
        }
        // The current spelling wins over the beta one, which wins over alpha.
        let native = [
            names::NATIVE_SIDECAR,
            names::NATIVE_SIDECAR_BETA,
            names::NATIVE_SIDECAR_ALPHA,
        ]
        .into_iter()
        .find_map(|k| get(k).map(|v| (k, v)));
        if let Some((key, v)) = native {
            match parse_bool(&v) {
                Some(b) => s.native_sidecar = b,
                None => warn(key, &v, "not a boolean"),
            }
        }
        if let Some(v) = get(names::PROXY_AWAIT) {
            match v.as_str() {
                names::ENABLED => s.await_proxy = true,
                names::DISABLED => s.await_proxy = false,
                _ => warn(names::PROXY_AWAIT, &v, "neither enabled nor disabled"),
            }
        }
        for (key, field, is_cpu) in [
            (names::CPU_REQUEST, &mut s.resources.cpu_request, true),
            (names::CPU_LIMIT, &mut s.resources.cpu_limit, true),
            (
                names::MEMORY_REQUEST,
                &mut s.resources.memory_request,
                false,
            ),
            (names::MEMORY_LIMIT, &mut s.resources.memory_limit, false),
        ] {
            let Some(v) = get(key) else { continue };
            if !is_quantity(&v) {
                warn(key, &v, "not a Kubernetes quantity");
                continue;
            }
            if is_cpu {
                if key == names::CPU_REQUEST {
                    s.cores_min = whole_cores(&v).unwrap_or(1);
                } else {
                    s.cores_max = whole_cores(&v);
                }
            }
            *field = Some(v);
        }
        if let Some(v) = get(names::DEFAULT_INBOUND_POLICY) {
            if INBOUND_POLICIES.contains(&v.as_str()) {
                s.default_inbound_policy = v;
            } else {
                warn(
                    names::DEFAULT_INBOUND_POLICY,
                    &v,
                    &format!("valid values are {}", INBOUND_POLICIES.join(", ")),
                );
            }
        }
        if let Some(v) = get(names::OPAQUE_PORTS) {
            s.opaque_ports = resolve_ports(&v, named_ports);
        }
        s
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Whether `v` is a Kubernetes resource quantity (`500m`, `1.5`, `64Mi`, `1e3`).
pub(crate) fn is_quantity(v: &str) -> bool {
    let (number, suffix) = split_quantity(v);
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .is_some_and(|exp| exp.trim_start_matches(['+', '-']).parse::<u32>().is_ok());
    suffix_ok && !number.is_empty() && number.parse::<f64>().is_ok_and(|n| n >= 0.0)
}

fn split_quantity(v: &str) -> (&str, &str) {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(v.len());
    v.split_at(end)
}

/// A CPU quantity rounded up to whole cores (Linkerd's `ToWholeCPUCores`).
pub(crate) fn whole_cores(v: &str) -> Option<u64> {
    let (number, suffix) = split_quantity(v);
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "u" => 1e-6,
        "n" => 1e-9,
        "k" => 1e3,
        _ => return None,
    };
    Some((n * scale - 1e-9).ceil().max(0.0) as u64)
}

/// An opaque-ports list with container port names replaced by their
/// numbers; unknown names are dropped, ranges kept (`a-b`).
pub(crate) fn resolve_ports(list: &str, named_ports: &BTreeMap<String, u16>) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            if p.split('-').all(|n| n.parse::<u16>().is_ok()) {
                Some(p.to_string())
            } else {
                named_ports.get(p).map(u16::to_string)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_cores() {
        for (v, quantity, cores) in [
            ("500m", true, Some(1)),
            ("1", true, Some(1)),
            ("1.5", true, Some(2)),
            ("2000m", true, Some(2)),
            ("64Mi", true, None),
            ("1e3", true, None),
            ("lots", false, None),
            ("", false, None),
            ("-1", false, Some(0)),
        ] {
            assert_eq!(is_quantity(v), quantity, "{v}");
            assert_eq!(whole_cores(v), cores, "{v}");
        }
    }

    #[test]
    fn opaque_ports_resolve_names_and_keep_ranges() {
        let named = BTreeMap::from([("mysql".to_string(), 3306)]);
        assert_eq!(
            resolve_ports("mysql, 8080,9000-9010,nope", &named),
            "3306,8080,9000-9010"
        );
    }

    #[test]
    fn annotations_override_the_config_and_bad_values_warn() {
        let cfg = Config::default();
        let ann: BTreeMap<String, String> = [
            (names::LOG_LEVEL, "debug"),
            (names::CPU_REQUEST, "1500m"),
            (names::CPU_LIMIT, "nonsense"),
            (names::NATIVE_SIDECAR_ALPHA, "true"),
            (names::DEFAULT_INBOUND_POLICY, "everyone"),
            (names::INJECT, "ingress"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut warnings = vec![];
        let s = Settings::new(&cfg, &ann, &BTreeMap::new(), &mut warnings);
        assert_eq!(s.log_level, "debug");
        assert_eq!(s.cores_min, 2);
        assert_eq!(s.resources.cpu_request.as_deref(), Some("1500m"));
        assert_eq!(s.resources.cpu_limit, None);
        assert!(s.native_sidecar && s.ingress);
        assert_eq!(s.default_inbound_policy, "all-unauthenticated");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
