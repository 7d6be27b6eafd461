//! The containers and volumes injection adds, as Linkerd's chart renders
//! them (`_proxy.tpl`, `_proxy-init.tpl`, `_volumes.tpl`): the
//! `linkerd-proxy` container with its environment, the `linkerd-init`
//! container running `ztmesh proxy-init` with the chart's arguments, and
//! the identity, token and xtables volumes. The images' entrypoint is
//! `ztmesh`, so the containers' `args` name the subcommand.

use crate::config::{Config, IptablesMode, Resources, Settings};
use crate::names;
use serde_json::{Map, Value, json};

/// What the pod being injected lends the proxy: the first container's
/// capabilities and its service-account token mount (Linkerd copies both).
#[derive(Default)]
pub(crate) struct PodContext {
    pub(crate) capabilities: Option<Value>,
    pub(crate) sa_mount: Option<Value>,
    /// `LINKERD2_PROXY_INBOUND_PORTS`.
    pub(crate) inbound_ports: String,
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

fn env(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

fn any_addr(cfg: &Config) -> &'static str {
    if cfg.disable_ipv6 { "0.0.0.0" } else { "[::]" }
}

/// The proxy's environment, in the chart's order.
fn proxy_env(cfg: &Config, s: &Settings, pod: &PodContext) -> Vec<Value> {
    let ns = &cfg.control_plane_namespace;
    let cd = &cfg.cluster_domain;
    let td = &cfg.identity_trust_domain;
    let any = any_addr(cfg);
    let p = s.ports;
    let mut e = vec![
        field_env("_pod_name", "metadata.name"),
        field_env("_pod_ns", "metadata.namespace"),
        field_env("_pod_uid", "metadata.uid"),
        field_env("_pod_ip", "status.podIP"),
        field_env("_pod_nodeName", "spec.nodeName"),
        env("_pod_containerName", names::PROXY_CONTAINER),
        env("LINKERD2_PROXY_CORES", s.cores_min.to_string()),
        env("LINKERD2_PROXY_CORES_MIN", s.cores_min.to_string()),
    ];
    if let Some(max) = s.cores_max {
        e.push(env("LINKERD2_PROXY_CORES_MAX", max.to_string()));
    }
    if !s.require_identity_ports.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY",
            &s.require_identity_ports,
        ));
    }
    let mut outbound_addrs = format!("127.0.0.1:{}", p.outbound);
    if !cfg.disable_ipv6 {
        outbound_addrs.push_str(&format!(",[::1]:{}", p.outbound));
    }
    e.extend([
        env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "false"),
        env(
            "LINKERD2_PROXY_LOG",
            format!("{},[{{headers}}]=off,[{{request}}]=off", s.log_level),
        ),
        env("LINKERD2_PROXY_LOG_FORMAT", &s.log_format),
        env(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            format!("linkerd-dst-headless.{ns}.svc.{cd}.:8086"),
        ),
        env(
            "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
            &cfg.cluster_networks,
        ),
        env(
            "LINKERD2_PROXY_POLICY_SVC_ADDR",
            format!("linkerd-policy.{ns}.svc.{cd}.:8090"),
        ),
        env(
            "LINKERD2_PROXY_POLICY_WORKLOAD",
            "{\"ns\":\"$(_pod_ns)\", \"pod\":\"$(_pod_name)\"}\n",
        ),
        env(
            "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
            &s.default_inbound_policy,
        ),
        env(
            "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS",
            &cfg.cluster_networks,
        ),
        env("LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "3s"),
        env("LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT", "5m"),
        env("LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "1h"),
        env("LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", "100ms"),
        env("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "1000ms"),
        env("LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT", "5s"),
        env("LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT", "90s"),
        env(
            "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
            format!("{any}:{}", p.control),
        ),
        env(
            "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
            format!("{any}:{}", p.admin),
        ),
        env(
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
            format!("127.0.0.1:{}", p.outbound),
        ),
        env("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", outbound_addrs),
        env(
            "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
            format!("{any}:{}", p.inbound),
        ),
        field_env("LINKERD2_PROXY_INBOUND_IPS", "status.podIPs"),
        env("LINKERD2_PROXY_INBOUND_PORTS", &pod.inbound_ports),
    ]);
    if s.ingress {
        e.push(env("LINKERD2_PROXY_INGRESS_MODE", "true"));
    }
    e.extend([
        env(
            "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
            format!("svc.{cd}."),
        ),
        env("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10000ms"),
        env("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10000ms"),
        env("LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT", "30s"),
        env("LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT", "30s"),
        env("LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS", "false"),
        env(
            "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL",
            "10s",
        ),
        env(
            "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT",
            "3s",
        ),
        env(
            "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL",
            "10s",
        ),
        env(
            "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT",
            "3s",
        ),
    ]);
    if !s.opaque_ports.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            &s.opaque_ports,
        ));
    }
    let identity = |sa: &str| format!("{sa}.{ns}.serviceaccount.identity.{ns}.{td}");
    e.extend([
        env(
            "LINKERD2_PROXY_DESTINATION_CONTEXT",
            "{\"ns\":\"$(_pod_ns)\", \"nodeName\":\"$(_pod_nodeName)\", \"pod\":\"$(_pod_name)\"}\n",
        ),
        field_env("_pod_sa", "spec.serviceAccountName"),
        env("_l5d_ns", ns),
        env("_l5d_trustdomain", td),
        env("LINKERD2_PROXY_IDENTITY_DIR", names::IDENTITY_DIR),
        env(
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            format!("{}\n", cfg.trust_anchors_pem.trim()),
        ),
        // ztmesh's proxy follows the copied bundle (linkerd2-proxy ignores
        // it and keeps the anchors above).
        env(
            "ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE",
            format!("{}/{}", names::TRUST_ROOTS_DIR, names::TRUST_ROOTS_KEY),
        ),
        env(
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            format!("{}/{}", names::TOKEN_DIR, names::TOKEN_VOLUME),
        ),
        env(
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            format!("linkerd-identity-headless.{ns}.svc.{cd}.:8080"),
        ),
        env(
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            format!("$(_pod_sa).$(_pod_ns).serviceaccount.identity.{ns}.{td}"),
        ),
        env("LINKERD2_PROXY_IDENTITY_SVC_NAME", identity("linkerd-identity")),
        env(
            "LINKERD2_PROXY_DESTINATION_SVC_NAME",
            identity("linkerd-destination"),
        ),
        env("LINKERD2_PROXY_POLICY_SVC_NAME", identity("linkerd-destination")),
    ]);
    if !s.access_log.is_empty() {
        e.push(env("LINKERD2_PROXY_ACCESS_LOG", &s.access_log));
    }
    if !s.shutdown_grace_period.is_empty() {
        e.push(env(
            "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD",
            &s.shutdown_grace_period,
        ));
    }
    e
}

/// `resources` as the chart's `partials.resources` renders it.
fn resources(r: &Resources) -> Value {
    let mut out = Map::new();
    for (section, cpu, memory) in [
        ("limits", &r.cpu_limit, &r.memory_limit),
        ("requests", &r.cpu_request, &r.memory_request),
    ] {
        let mut m = Map::new();
        if let Some(cpu) = cpu {
            m.insert("cpu".into(), cpu.as_str().into());
        }
        if let Some(memory) = memory {
            m.insert("memory".into(), memory.as_str().into());
        }
        if !m.is_empty() {
            out.insert(section.into(), Value::Object(m));
        }
    }
    Value::Object(out)
}

fn http_probe(path: &str, port: u16) -> Value {
    json!({"httpGet": {"path": path, "port": port}})
}

/// The `linkerd-proxy` container.
pub(crate) fn proxy(cfg: &Config, s: &Settings, pod: &PodContext) -> Value {
    let admin = s.ports.admin;
    let mut security = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": s.uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if let Some(gid) = s.gid {
        security["runAsGroup"] = gid.into();
    }
    if let Some(caps) = &pod.capabilities {
        security["capabilities"] = caps.clone();
    }
    let mut mounts = vec![
        json!({"mountPath": names::IDENTITY_DIR, "name": names::IDENTITY_VOLUME}),
        json!({"mountPath": names::TOKEN_DIR, "name": names::TOKEN_VOLUME}),
        json!({"mountPath": names::TRUST_ROOTS_DIR, "name": names::TRUST_ROOTS_VOLUME, "readOnly": true}),
    ];
    mounts.extend(pod.sa_mount.clone());
    let mut liveness = http_probe("/live", admin);
    liveness["initialDelaySeconds"] = 10.into();
    liveness["timeoutSeconds"] = 1.into();
    let mut readiness = http_probe("/ready", admin);
    readiness["initialDelaySeconds"] = 2.into();
    readiness["timeoutSeconds"] = 1.into();
    let mut c = json!({
        "name": names::PROXY_CONTAINER,
        "image": format!("{}:{}", s.image, s.version),
        "imagePullPolicy": s.pull_policy,
        "args": ["proxy"],
        "env": proxy_env(cfg, s, pod),
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "ports": [
            {"containerPort": s.ports.inbound, "name": "linkerd-proxy"},
            {"containerPort": admin, "name": "linkerd-admin"},
        ],
        "resources": resources(&s.resources),
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    });
    if s.native_sidecar {
        c["restartPolicy"] = "Always".into();
        if s.await_proxy {
            let mut startup = http_probe("/ready", admin);
            startup["initialDelaySeconds"] = 0.into();
            startup["periodSeconds"] = 1.into();
            startup["failureThreshold"] = 120.into();
            c["startupProbe"] = startup;
        }
    }
    c
}

/// The `linkerd-init` container: `ztmesh proxy-init` with the chart's arguments.
pub(crate) fn proxy_init(cfg: &Config, s: &Settings, pod: &PodContext) -> Value {
    let mut args: Vec<String> = vec!["proxy-init".into()];
    if cfg.iptables_mode == IptablesMode::Nft {
        args.extend(
            [
                "--firewall-bin-path",
                "iptables-nft",
                "--firewall-save-bin-path",
                "iptables-nft-save",
            ]
            .map(String::from),
        );
    }
    if cfg.disable_ipv6 {
        args.push("--ipv6=false".into());
    }
    let p = s.ports;
    for (flag, value) in [
        ("--incoming-proxy-port", p.inbound.to_string()),
        ("--outgoing-proxy-port", p.outbound.to_string()),
        ("--proxy-uid", s.uid.to_string()),
    ] {
        args.extend([flag.to_string(), value]);
    }
    if let Some(gid) = s.gid {
        args.extend(["--proxy-gid".to_string(), gid.to_string()]);
    }
    let mut inbound_skip = format!("{},{}", p.control, p.admin);
    if !s.skip_inbound_ports.is_empty() {
        inbound_skip.push(',');
        inbound_skip.push_str(&s.skip_inbound_ports);
    }
    args.extend(["--inbound-ports-to-ignore".to_string(), inbound_skip]);
    if !s.skip_outbound_ports.is_empty() {
        args.extend([
            "--outbound-ports-to-ignore".to_string(),
            s.skip_outbound_ports.clone(),
        ]);
    }
    if !s.skip_subnets.is_empty() {
        args.extend(["--subnets-to-ignore".to_string(), s.skip_subnets.clone()]);
    }
    let image = cfg
        .init_image
        .clone()
        .unwrap_or_else(|| format!("{}:{}", s.image, s.version));
    let mut add = vec![json!("NET_ADMIN"), json!("NET_RAW")];
    let mut capabilities = Map::new();
    if let Some(caps) = &pod.capabilities {
        add.extend(caps["add"].as_array().cloned().unwrap_or_default());
        let drop: Vec<Value> = caps["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| !matches!(d.as_str(), Some("NET_ADMIN" | "NET_RAW")))
            .cloned()
            .collect();
        if !drop.is_empty() {
            capabilities.insert("drop".into(), drop.into());
        }
    }
    capabilities.insert("add".into(), add.into());
    let mut mounts = vec![json!({"mountPath": "/run", "name": names::XTABLES_VOLUME})];
    mounts.extend(pod.sa_mount.clone());
    json!({
        "name": names::INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": s.pull_policy,
        "args": args,
        "resources": resources(&s.resources),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": capabilities,
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": 65534,
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    })
}

pub(crate) fn xtables_volume() -> Value {
    json!({"emptyDir": {}, "name": names::XTABLES_VOLUME})
}

pub(crate) fn identity_volume() -> Value {
    json!({"emptyDir": {"medium": "Memory"}, "name": names::IDENTITY_VOLUME})
}

/// The trust anchors the controller copies into the namespace; optional,
/// so a pod starts (on the anchors in its env) before the first copy.
pub(crate) fn trust_roots_volume() -> Value {
    json!({
        "name": names::TRUST_ROOTS_VOLUME,
        "configMap": {"name": names::TRUST_ROOTS_CONFIG_MAP, "optional": true},
    })
}

/// The projected service-account token the proxy presents to identity.
pub(crate) fn token_volume() -> Value {
    json!({
        "name": names::TOKEN_VOLUME,
        "projected": {"sources": [{"serviceAccountToken": {
            "audience": names::TOKEN_AUDIENCE,
            "expirationSeconds": 86400,
            "path": names::TOKEN_VOLUME,
        }}]},
    })
}
