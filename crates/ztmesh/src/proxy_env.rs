//! The environment `ztmesh proxy` reads, as its `--help` lists it: the
//! linkerd2-proxy variables it supports (the same names an injected pod
//! already sets) and ztmesh's own. The test checks the list against the
//! names the proxy's configuration sources actually read.

/// `ztmesh proxy --help`'s list of variables (after the description).
pub(crate) const HELP: &str = "\
Environment (linkerd2-proxy's names; other LINKERD2_PROXY_* are warned about and ignored):

Identity:
  LINKERD2_PROXY_IDENTITY_DIR            Directory for the workload's key and certificate
  LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS  PEM trust anchors (the roots peers are checked against)
  ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE  PEM bundle file, followed live (wins over the variable)
  ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE  Federated trust domains' bundles (JSON, from the controller), followed live
  LINKERD2_PROXY_IDENTITY_TOKEN_FILE     Service-account token presented to the identity service
  LINKERD2_PROXY_IDENTITY_SVC_ADDR       Identity service address (host:port)
  LINKERD2_PROXY_IDENTITY_SVC_NAME       Identity service's TLS identity
  LINKERD2_PROXY_IDENTITY_LOCAL_NAME     This workload's identity (older injectors)
  LINKERD2_PROXY_IDENTITY_SERVER_ID      This workload's identity as a URI (the spiffe:// ID with SPIRE)
  LINKERD2_PROXY_IDENTITY_SERVER_NAME    This workload's identity (DNS name; wins over LOCAL_NAME)
  LINKERD2_PROXY_IDENTITY_MIN_REFRESH    Shortest wait before renewing the certificate
  LINKERD2_PROXY_IDENTITY_MAX_REFRESH    Longest wait before renewing the certificate
  LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS  SPIFFE Workload API socket (unix:///path): SVIDs instead of Certify
  LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET   Deprecated name of the above

Listeners and mode (in explicit mode listeners default to the app's IP):
  ZTMESH_PROXY_MODE                      transparent (iptables, the default) or explicit
  ZTMESH_PROXY_APP_ADDR                  Explicit mode: the application's IP:PORT
  ZTMESH_PROXY_APP_UID                   Only this uid may use the outbound listener
  LINKERD2_PROXY_INBOUND_LISTEN_ADDR     Inbound listener (default 0.0.0.0:4143)
  LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR    Outbound listener (default 127.0.0.1:4140)
  LINKERD2_PROXY_ADMIN_LISTEN_ADDR       Admin listener: /ready, /live, /metrics (default :4191)
  LINKERD2_PROXY_CONTROL_LISTEN_ADDR     Tap listener (default :4190)
  LINKERD2_PROXY_INBOUND_IPS             The pod's addresses; inbound refuses others
  LINKERD2_PROXY_INBOUND_PORTS           The workload's container ports
  LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION  Opaque inbound ports (no detection)
  LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT  How long inbound waits to detect the protocol
  LINKERD2_PROXY_INBOUND_METRICS_AUTHORITY_LABELS  unsafe: inbound request series carry the request's authority
  LINKERD2_PROXY_CORES                   Worker threads (default: every core)

Policy and discovery:
  LINKERD2_PROXY_INBOUND_DEFAULT_POLICY  all-unauthenticated, all-authenticated, cluster-*, deny, audit
  LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS Cluster networks (CIDRs) for the cluster-* policies
  LINKERD2_PROXY_POLICY_SVC_ADDR         Policy service address (host:port)
  LINKERD2_PROXY_POLICY_SVC_NAME         Policy service's TLS identity
  LINKERD2_PROXY_POLICY_WORKLOAD         This workload, as the policy service knows it
  LINKERD2_PROXY_DESTINATION_SVC_ADDR    Destination service address (host:port); outbound needs it
  LINKERD2_PROXY_DESTINATION_SVC_NAME    Destination service's TLS identity
  LINKERD2_PROXY_DESTINATION_CONTEXT     Context sent with destination lookups
  LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS  Addresses whose profiles are looked up

Tracing, tap, logs, shutdown:
  LINKERD2_PROXY_TRACE_COLLECTOR_SVC_ADDR  OpenTelemetry collector address (host:port)
  LINKERD2_PROXY_TRACE_COLLECTOR_SVC_NAME  Collector's TLS identity
  ZTMESH_PROXY_TRACE_SAMPLE_RATE         Share of new traces sampled, 0 to 1
  LINKERD2_PROXY_TAP_SVC_NAME            Identity allowed to use the tap API
  LINKERD2_PROXY_LOG                     Log filter (default info)
  LINKERD2_PROXY_LOG_FORMAT              plain (default) or json
  LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED  Serve POST /shutdown on the admin port
  LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD   How long a stopping proxy waits for open connections";

#[cfg(test)]
mod tests {
    use super::HELP;
    use std::collections::BTreeSet;

    /// The proxy's configuration sources, up to their tests (which name
    /// unsupported variables on purpose).
    const SOURCES: &[(&str, &str)] = &[
        (
            "proxy_config.rs",
            include_str!("../../ztmesh-proxy/src/proxy_config.rs"),
        ),
        (
            "identity/config.rs",
            include_str!("../../ztmesh-proxy/src/identity/config.rs"),
        ),
        ("run.rs", include_str!("../../ztmesh-proxy/src/run.rs")),
        (
            "identity/federated.rs",
            include_str!("../../ztmesh-proxy/src/identity/federated.rs"),
        ),
    ];

    fn names_read() -> BTreeSet<(&'static str, String)> {
        let name = regex::Regex::new(r#""((LINKERD2|ZTMESH)_PROXY_[A-Z0-9_]+)""#).unwrap();
        SOURCES
            .iter()
            .flat_map(|(file, text)| {
                let code = text.split("#[cfg(test)]").next().unwrap_or(text);
                name.captures_iter(code)
                    .map(|c| (*file, c[1].to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn help_lists_every_variable_the_proxy_reads() {
        let names = names_read();
        assert!(names.len() > 30, "the scan found too few names: {names:?}");
        let missing: Vec<_> = names
            .iter()
            .filter(|(_, n)| !HELP.split_whitespace().any(|w| w == n))
            .collect();
        assert!(
            missing.is_empty(),
            "not in `ztmesh proxy --help`: {missing:?}"
        );
    }

    #[test]
    fn help_lists_nothing_the_proxy_does_not_read() {
        let read: BTreeSet<String> = names_read().into_iter().map(|(_, n)| n).collect();
        let extra: Vec<&str> = HELP
            .split_whitespace()
            .filter(|w| w.starts_with("LINKERD2_PROXY_") || w.starts_with("ZTMESH_PROXY_"))
            .filter(|w| w.trim_end_matches(['*', ';', ',']) != "LINKERD2_PROXY_")
            .filter(|w| !read.contains(*w))
            .collect();
        assert!(extra.is_empty(), "listed but never read: {extra:?}");
    }
}
