//! The names Linkerd's injector uses: annotations, labels, containers,
//! volumes and mount paths. Everything else in the crate refers to these.

/// Prefix of the annotations and labels `uninject` removes.
pub(crate) const PREFIX: &str = "linkerd.io/";

pub(crate) const INJECT: &str = "linkerd.io/inject";
pub(crate) const ENABLED: &str = "enabled";
pub(crate) const DISABLED: &str = "disabled";
pub(crate) const INGRESS: &str = "ingress";

pub(crate) const CREATED_BY: &str = "linkerd.io/created-by";
pub(crate) const PROXY_VERSION: &str = "linkerd.io/proxy-version";
pub(crate) const TRUST_ROOT_SHA: &str = "linkerd.io/trust-root-sha256";

pub(crate) const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
pub(crate) const WORKLOAD_NS_LABEL: &str = "linkerd.io/workload-ns";
pub(crate) const CONTROL_PLANE_COMPONENT_LABEL: &str = "linkerd.io/control-plane-component";

// config.linkerd.io annotations this crate reads.
pub(crate) const PROXY_IMAGE: &str = "config.linkerd.io/proxy-image";
pub(crate) const PROXY_VERSION_OVERRIDE: &str = "config.linkerd.io/proxy-version";
pub(crate) const IMAGE_PULL_POLICY: &str = "config.linkerd.io/image-pull-policy";
pub(crate) const SKIP_INBOUND_PORTS: &str = "config.linkerd.io/skip-inbound-ports";
pub(crate) const SKIP_OUTBOUND_PORTS: &str = "config.linkerd.io/skip-outbound-ports";
pub(crate) const SKIP_SUBNETS: &str = "config.linkerd.io/skip-subnets";
pub(crate) const OPAQUE_PORTS: &str = "config.linkerd.io/opaque-ports";
pub(crate) const DEFAULT_INBOUND_POLICY: &str = "config.linkerd.io/default-inbound-policy";
pub(crate) const CPU_REQUEST: &str = "config.linkerd.io/proxy-cpu-request";
pub(crate) const CPU_LIMIT: &str = "config.linkerd.io/proxy-cpu-limit";
pub(crate) const MEMORY_REQUEST: &str = "config.linkerd.io/proxy-memory-request";
pub(crate) const MEMORY_LIMIT: &str = "config.linkerd.io/proxy-memory-limit";
pub(crate) const LOG_LEVEL: &str = "config.linkerd.io/proxy-log-level";
pub(crate) const LOG_FORMAT: &str = "config.linkerd.io/proxy-log-format";
pub(crate) const PROXY_UID: &str = "config.linkerd.io/proxy-uid";
pub(crate) const PROXY_GID: &str = "config.linkerd.io/proxy-gid";
pub(crate) const INBOUND_PORT: &str = "config.linkerd.io/inbound-port";
pub(crate) const OUTBOUND_PORT: &str = "config.linkerd.io/outbound-port";
pub(crate) const ADMIN_PORT: &str = "config.linkerd.io/admin-port";
pub(crate) const CONTROL_PORT: &str = "config.linkerd.io/control-port";
pub(crate) const REQUIRE_IDENTITY_PORTS: &str =
    "config.linkerd.io/proxy-require-identity-inbound-ports";
pub(crate) const PROXY_AWAIT: &str = "config.linkerd.io/proxy-await";
pub(crate) const ACCESS_LOG: &str = "config.linkerd.io/access-log";
pub(crate) const SHUTDOWN_GRACE_PERIOD: &str = "config.linkerd.io/shutdown-grace-period";
pub(crate) const NATIVE_SIDECAR: &str = "config.linkerd.io/proxy-enable-native-sidecar";
pub(crate) const NATIVE_SIDECAR_BETA: &str = "config.beta.linkerd.io/proxy-enable-native-sidecar";
pub(crate) const NATIVE_SIDECAR_ALPHA: &str = "config.alpha.linkerd.io/proxy-enable-native-sidecar";

/// The proxy configuration annotations a pod inherits from its namespace
/// when it has none of its own (the webhook), Linkerd's list.
pub(crate) const INHERITED: &[&str] = &[
    ADMIN_PORT,
    CONTROL_PORT,
    "config.linkerd.io/enable-debug-sidecar",
    "config.linkerd.io/enable-external-profiles",
    IMAGE_PULL_POLICY,
    INBOUND_PORT,
    OUTBOUND_PORT,
    "config.linkerd.io/pod-inbound-ports",
    CPU_LIMIT,
    CPU_REQUEST,
    PROXY_IMAGE,
    "config.linkerd.io/proxy-admin-shutdown",
    LOG_FORMAT,
    LOG_LEVEL,
    "config.linkerd.io/proxy-log-http-headers",
    MEMORY_LIMIT,
    MEMORY_REQUEST,
    "config.linkerd.io/proxy-ephemeral-storage-limit",
    "config.linkerd.io/proxy-ephemeral-storage-request",
    PROXY_UID,
    PROXY_GID,
    PROXY_VERSION_OVERRIDE,
    REQUIRE_IDENTITY_PORTS,
    SKIP_INBOUND_PORTS,
    OPAQUE_PORTS,
    SKIP_OUTBOUND_PORTS,
    "config.linkerd.io/proxy-metrics-hostname-labels",
    "config.linkerd.io/proxy-outbound-connect-timeout",
    "config.linkerd.io/proxy-inbound-connect-timeout",
    PROXY_AWAIT,
    DEFAULT_INBOUND_POLICY,
    SKIP_SUBNETS,
    ACCESS_LOG,
    SHUTDOWN_GRACE_PERIOD,
    "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout",
    "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout",
    "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout",
    "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout",
    NATIVE_SIDECAR,
    "config.linkerd.io/proxy-additional-env",
    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds",
    NATIVE_SIDECAR_ALPHA,
    INJECT,
];

pub(crate) const PROXY_CONTAINER: &str = "linkerd-proxy";
pub(crate) const INIT_CONTAINER: &str = "linkerd-init";
pub(crate) const IDENTITY_VOLUME: &str = "linkerd-identity-end-entity";
pub(crate) const TOKEN_VOLUME: &str = "linkerd-identity-token";
/// The trust anchors as the controller copies them into each namespace
/// (ConfigMap [`TRUST_ROOTS_CONFIG_MAP`]), mounted whole (no `subPath`)
/// so that a rotated bundle reaches the running proxy.
pub(crate) const TRUST_ROOTS_VOLUME: &str = "ztmesh-identity-trust-roots";
/// The ConfigMap the controller keeps in each namespace.
pub const TRUST_ROOTS_CONFIG_MAP: &str = "ztmesh-identity-trust-roots";
pub(crate) const TRUST_ROOTS_DIR: &str = "/var/run/ztmesh/identity/trust-roots";
/// The bundle's key in that ConfigMap (Linkerd's trust roots' key).
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";
pub(crate) const XTABLES_VOLUME: &str = "linkerd-proxy-init-xtables-lock";
pub(crate) const IDENTITY_DIR: &str = "/var/run/linkerd/identity/end-entity";
pub(crate) const TOKEN_DIR: &str = "/var/run/secrets/tokens";
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The audience of the projected token the proxy presents to identity.
pub const TOKEN_AUDIENCE: &str = "identity.l5d.io";
