//! Building the inbound stack: what it must be given (its identity and
//! mesh TLS, where connections go, the policy source) and what it may be
//! given (the detect timeout, opaque ports, the pod's addresses and the
//! proxy's own ports, shared metrics, a tracer, the taps), with Linkerd's
//! defaults for the rest. `run` builds it from the proxy's configuration;
//! tests build it on loopback.

use super::accept::{Inbound, InboundTarget};
use super::policy::Policies;
use super::transport::Targets;
use crate::authz_metrics::AuthzMetrics;
use crate::metrics::{HttpMetrics, TcpMetrics};
use crate::tap::Taps;
use crate::trace::Tracer;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// linkerd2-proxy's default protocol detection timeout.
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The inbound stack's parameters; [`InboundBuilder::build`] makes the stack.
pub struct InboundBuilder {
    local_name: String,
    tls: TlsAcceptor,
    target: InboundTarget,
    policies: Arc<Policies>,
    detect_timeout: Duration,
    opaque_ports: BTreeSet<u16>,
    targets: Targets,
    tcp_metrics: Arc<TcpMetrics>,
    http_metrics: Arc<HttpMetrics>,
    authz_metrics: Arc<AuthzMetrics>,
    tracer: Option<Arc<Tracer>>,
    taps: Arc<Taps>,
    authority_labels: bool,
    trust: Option<Arc<ztmesh_tls::Trust>>,
}

impl InboundBuilder {
    /// A stack serving mesh TLS as `local_name` (with `tls`, whose
    /// certificate names it), sending connections to `target`, and
    /// deciding each against `policies`.
    pub fn new(
        local_name: impl Into<String>,
        tls: TlsAcceptor,
        target: InboundTarget,
        policies: Arc<Policies>,
    ) -> Self {
        Self {
            local_name: local_name.into(),
            tls,
            target,
            policies,
            detect_timeout: DEFAULT_DETECT_TIMEOUT,
            opaque_ports: BTreeSet::new(),
            targets: Targets::default(),
            tcp_metrics: Arc::default(),
            http_metrics: Arc::default(),
            authz_metrics: Arc::default(),
            tracer: None,
            taps: Arc::default(),
            authority_labels: false,
            trust: None,
        }
    }

    /// How long the first bytes, the protocol and a request head may take.
    pub fn detect_timeout(mut self, timeout: Duration) -> Self {
        self.detect_timeout = timeout;
        self
    }

    /// Ports forwarded as opaque TCP without protocol detection.
    pub fn opaque_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.opaque_ports = ports.into_iter().collect();
        self
    }

    /// The pod's addresses and the proxy's own ports.
    pub fn targets(mut self, targets: Targets) -> Self {
        self.targets = targets;
        self
    }

    /// Where transport and request metrics are counted.
    pub fn metrics(mut self, tcp: Arc<TcpMetrics>, http: Arc<HttpMetrics>) -> Self {
        self.tcp_metrics = tcp;
        self.http_metrics = http;
        self
    }

    /// Where authorization decisions are counted.
    pub(crate) fn authz_metrics(mut self, authz: Arc<AuthzMetrics>) -> Self {
        self.authz_metrics = authz;
        self
    }

    /// Server spans for traced requests.
    pub fn tracer(mut self, tracer: Option<Arc<Tracer>>) -> Self {
        self.tracer = tracer;
        self
    }

    /// Live observers of the stack's requests.
    pub fn taps(mut self, taps: Arc<Taps>) -> Self {
        self.taps = taps;
        self
    }

    /// Request series carry the request's logical `authority` (as
    /// linkerd2-proxy with `LINKERD2_PROXY_INBOUND_METRICS_AUTHORITY_LABELS=unsafe`:
    /// clients choose it, so the series are theirs to multiply); off by default.
    pub fn authority_labels(mut self, on: bool) -> Self {
        self.authority_labels = on;
        self
    }

    /// The trust the acceptor verifies clients with: a client verified
    /// under a federated trust domain's bundle is known by its SPIFFE ID
    /// (without it, by its certificate's first DNS SAN, else its SPIFFE ID).
    pub fn trust(mut self, trust: Arc<ztmesh_tls::Trust>) -> Self {
        self.trust = Some(trust);
        self
    }

    pub fn build(self) -> Arc<Inbound> {
        Arc::new(Inbound {
            local_name: self.local_name,
            target: self.target,
            detect_timeout: self.detect_timeout,
            tls: self.tls,
            policies: self.policies,
            authz_metrics: self.authz_metrics,
            tracer: self.tracer,
            taps: self.taps,
            authority_labels: self.authority_labels,
            trust: self.trust,
            opaque_ports: self.opaque_ports,
            metrics: self.tcp_metrics,
            http_metrics: self.http_metrics,
            targets: self.targets,
            clients: Default::default(),
        })
    }
}
