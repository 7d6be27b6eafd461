//! The label sets of the transport and request families, encoded in
//! linkerd2-proxy's order: `direction`, then the peer or authority,
//! `target_addr`/`target_ip`/`target_port`, the TLS labels, then inbound
//! the server's, the route's and the authorization's (each
//! `*_group`/`*_kind`/`*_name`), outbound the endpoint's `dst_*` labels
//! from Destination ([`DstLabels`]).

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// One `key="value"` label.
pub(crate) fn label(
    encoder: &mut LabelSetEncoder,
    key: &str,
    value: impl EncodeLabelValue,
) -> fmt::Result {
    (key, value).encode(encoder.encode_label())
}

/// `target_addr`, `target_ip` and `target_port` of an address, as
/// linkerd2-proxy writes them wherever it writes `target_addr`.
pub(crate) fn target(encoder: &mut LabelSetEncoder, addr: SocketAddr) -> fmt::Result {
    label(encoder, "target_addr", Addr(addr))?;
    label(encoder, "target_ip", IpLabel(addr.ip()))?;
    label(encoder, "target_port", addr.port())
}

/// An IP address as a label value.
struct IpLabel(std::net::IpAddr);

impl EncodeLabelValue for IpLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

/// An endpoint's metric labels from Destination (the set's and the
/// address's, merged), keys already prefixed with `dst_` and sorted, as
/// linkerd2-proxy puts them on outbound series. Shared by the endpoint and
/// every series it is counted in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DstLabels(Arc<[(String, String)]>);

impl DstLabels {
    /// From Destination's labels, unprefixed (`pod`, `namespace`, ...).
    pub fn new<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let mut pairs: Vec<(String, String)> = labels
            .into_iter()
            .map(|(k, v)| (format!("dst_{k}"), v.clone()))
            .collect();
        pairs.sort();
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self(pairs.into())
    }
}

impl EncodeLabelSet for DstLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        for (k, v) in self.0.iter() {
            label(encoder, k, v.as_str())?;
        }
        Ok(())
    }
}

/// A socket address as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Addr(SocketAddr);

impl EncodeLabelValue for Addr {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

/// The peer's TLS status, as a label set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsLabel {
    Identified {
        client_id: String,
    },
    /// Outbound: the verified identity of the server.
    ServerIdentified {
        server_id: String,
    },
    NoIdentity {
        reason: &'static str,
    },
}

impl EncodeLabelSet for TlsLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        match self {
            Self::Identified { client_id } => {
                label(encoder, "tls", "true")?;
                label(encoder, "client_id", client_id.as_str())
            }
            Self::ServerIdentified { server_id } => {
                label(encoder, "tls", "true")?;
                label(encoder, "server_id", server_id.as_str())
            }
            Self::NoIdentity { reason } => {
                label(encoder, "tls", "no_identity")?;
                label(encoder, "no_tls_reason", *reason)
            }
        }
    }
}

/// A policy object's kind and name (`srv_*`, `route_*`, `authz_*`), and
/// its API group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KindName {
    kind: Arc<str>,
    name: Arc<str>,
}

impl KindName {
    fn new((kind, name): (&str, &str)) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// `<prefix>_group`, `<prefix>_kind`, `<prefix>_name`.
    fn encode(&self, encoder: &mut LabelSetEncoder, prefix: Prefix) -> fmt::Result {
        encode_meta(encoder, prefix, (&self.kind, &self.name))
    }
}

/// Which policy object a `*_group`/`*_kind`/`*_name` triple names.
#[derive(Clone, Copy)]
pub(crate) enum Prefix {
    Srv,
    Route,
    Authz,
}

/// `<prefix>_group`, `<prefix>_kind`, `<prefix>_name` of a policy object.
pub(crate) fn encode_meta(
    encoder: &mut LabelSetEncoder,
    prefix: Prefix,
    (kind, name): (&str, &str),
) -> fmt::Result {
    let [group_key, kind_key, name_key] = match prefix {
        Prefix::Srv => ["srv_group", "srv_kind", "srv_name"],
        Prefix::Route => ["route_group", "route_kind", "route_name"],
        Prefix::Authz => ["authz_group", "authz_kind", "authz_name"],
    };
    label(encoder, group_key, policy_group(kind))?;
    label(encoder, kind_key, kind)?;
    label(encoder, name_key, name)
}

/// The API group of a policy object, by its (lowercased) kind: the
/// policy the proxy receives keeps kinds and names only. Linkerd's
/// defaults have none; ztmesh's HTTPRoutes are `policy.linkerd.io`'s (a
/// Gateway API HTTPRoute would be labelled so too).
pub(crate) fn policy_group(kind: &str) -> &'static str {
    match kind {
        "default" | "" => "",
        "grpcroute" => "gateway.networking.k8s.io",
        _ => "policy.linkerd.io",
    }
}

/// The inbound policy labels that follow the TLS labels: the server's,
/// and on request metrics the permit's route and authorization.
/// Outbound series carry none ([`PolicyLabels::default`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyLabels {
    server: Option<(KindName, u16)>,
    route: Option<KindName>,
    authz: Option<KindName>,
}

impl PolicyLabels {
    /// No policy labels (outbound).
    pub const NONE: PolicyLabels = PolicyLabels {
        server: None,
        route: None,
        authz: None,
    };

    /// The permit's route name, if any (for tests of the label cache).
    #[cfg(test)]
    pub(crate) fn route_name(&self) -> Option<&str> {
        self.route.as_ref().map(|r| &*r.name)
    }

    /// The permit's authorization name, if any.
    #[cfg(test)]
    pub(crate) fn authz_name(&self) -> Option<&str> {
        self.authz.as_ref().map(|a| &*a.name)
    }
}

/// An inbound server's labels, for the transport metrics.
pub fn server_labels(kind: &str, name: &str, port: u16) -> PolicyLabels {
    PolicyLabels {
        server: Some((KindName::new((kind, name)), port)),
        ..PolicyLabels::NONE
    }
}

/// A permit's labels for inbound request metrics: the server's, then the
/// route's and the authorization's, as linkerd2-proxy orders them.
pub fn permit_labels(
    server: (&str, &str),
    port: u16,
    route: (&str, &str),
    authz: (&str, &str),
) -> PolicyLabels {
    PolicyLabels {
        server: Some((KindName::new(server), port)),
        route: Some(KindName::new(route)),
        authz: Some(KindName::new(authz)),
    }
}

impl EncodeLabelSet for PolicyLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        if let Some((server, port)) = &self.server {
            server.encode(encoder, Prefix::Srv)?;
            label(encoder, "srv_port", *port)?;
        }
        if let Some(route) = &self.route {
            route.encode(encoder, Prefix::Route)?;
        }
        if let Some(authz) = &self.authz {
            authz.encode(encoder, Prefix::Authz)?;
        }
        Ok(())
    }
}

/// A transport label set: one per connection kind, shared by its families.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct TcpLabels(pub Arc<TcpLabelValues>);

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct TcpLabelValues {
    pub direction: &'static str,
    /// Outbound opaque connections: the logical name they were opened for.
    pub authority: Option<Arc<str>>,
    pub target: SocketAddr,
    pub tls: TlsLabel,
    pub policy: PolicyLabels,
    pub dst: DstLabels,
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        let l = &*self.0;
        let peer = if l.direction == "inbound" {
            "src"
        } else {
            "dst"
        };
        label(encoder, "direction", l.direction)?;
        label(encoder, "peer", peer)?;
        if let Some(authority) = &l.authority {
            label(encoder, "authority", &**authority)?;
        }
        target(encoder, l.target)?;
        l.tls.encode(encoder)?;
        l.policy.encode(encoder)?;
        l.dst.encode(encoder)
    }
}

/// `tcp_close_total`'s labels: the connection's and `errno` ("" for a
/// clean close).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CloseLabels {
    pub conn: TcpLabels,
    pub errno: &'static str,
}

impl EncodeLabelSet for CloseLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.conn.encode(encoder)?;
        label(encoder, "errno", self.errno)
    }
}

/// A request label set, shared by `request_total`, `response_latency_ms`
/// and the connection holding its handles.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct HttpLabels(pub Arc<HttpLabelValues>);

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct HttpLabelValues {
    pub direction: &'static str,
    /// Inbound: the request's; outbound: the logical name the request was
    /// routed by (a Service's), none for a bare address.
    pub authority: Option<Arc<str>>,
    pub target: SocketAddr,
    pub tls: TlsLabel,
    pub policy: PolicyLabels,
    pub dst: DstLabels,
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        let l = &*self.0;
        label(encoder, "direction", l.direction)?;
        if let Some(authority) = &l.authority {
            label(encoder, "authority", &**authority)?;
        }
        target(encoder, l.target)?;
        l.tls.encode(encoder)?;
        l.policy.encode(encoder)?;
        l.dst.encode(encoder)
    }
}

/// `response_latency_ms`'s labels: the request's and the status code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct LatencyLabels {
    pub request: HttpLabels,
    pub status: u16,
}

impl EncodeLabelSet for LatencyLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.request.encode(encoder)?;
        label(encoder, "status_code", self.status)
    }
}

/// `response_total`'s labels: the request's, the status code, the
/// classification, `grpc_status` (empty for plain HTTP) and `error`
/// (always empty: a failure the proxy answers is a response here, with
/// its status), as linkerd2-proxy writes them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ResponseLabels {
    pub request: HttpLabels,
    pub status: u16,
    pub grpc: Option<u32>,
}

impl EncodeLabelSet for ResponseLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.request.encode(encoder)?;
        // gRPC: any status but OK is a failure; HTTP: 5xx.
        let failed = self.status >= 500 || self.grpc.is_some_and(|g| g != 0);
        label(encoder, "status_code", self.status)?;
        label(
            encoder,
            "classification",
            if failed { "failure" } else { "success" },
        )?;
        match self.grpc {
            Some(grpc) => label(encoder, "grpc_status", grpc)?,
            None => label(encoder, "grpc_status", "")?,
        }
        label(encoder, "error", "")
    }
}
