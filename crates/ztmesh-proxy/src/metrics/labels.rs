//! The label sets of the transport and request families, encoded in
//! linkerd2-proxy's order: `direction`, then the peer or authority,
//! `target_addr`, the TLS labels, then (inbound) the server's, the
//! route's and the authorization's.

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

/// A socket address as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Addr(pub SocketAddr);

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

/// A kind and a name (`srv_kind`/`srv_name`, `route_kind`/`route_name`,
/// `authz_kind`/`authz_name`).
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
}

/// The inbound policy labels that follow the TLS labels: the server's
/// (linkerd2-proxy's `srv_group` is left out: policies here carry kind and
/// name), and on request metrics the permit's route and authorization.
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
            label(encoder, "srv_kind", &*server.kind)?;
            label(encoder, "srv_name", &*server.name)?;
            label(encoder, "srv_port", *port)?;
        }
        if let Some(route) = &self.route {
            label(encoder, "route_kind", &*route.kind)?;
            label(encoder, "route_name", &*route.name)?;
        }
        if let Some(authz) = &self.authz {
            label(encoder, "authz_kind", &*authz.kind)?;
            label(encoder, "authz_name", &*authz.name)?;
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
    pub target: Addr,
    pub tls: TlsLabel,
    pub policy: PolicyLabels,
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
        label(encoder, "target_addr", l.target)?;
        l.tls.encode(encoder)?;
        l.policy.encode(encoder)
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
    pub authority: String,
    pub target: Addr,
    pub tls: TlsLabel,
    pub policy: PolicyLabels,
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        let l = &*self.0;
        label(encoder, "direction", l.direction)?;
        label(encoder, "authority", l.authority.as_str())?;
        label(encoder, "target_addr", l.target)?;
        l.tls.encode(encoder)?;
        l.policy.encode(encoder)
    }
}

/// `response_total`'s labels: the request's, the status code, the
/// classification and, for gRPC, `grpc_status`.
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
        if let Some(grpc) = self.grpc {
            label(encoder, "grpc_status", grpc)?;
        }
        Ok(())
    }
}
