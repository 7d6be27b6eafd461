//! Building the outbound stack: [`OutboundBuilder`] takes the discovery
//! ([`Discovery`]: gRPC in production, in memory in tests) and the client
//! side of mesh TLS, and optionally the metrics, tracer, taps and
//! listener settings it shares with the rest of the proxy; [`build`]
//! yields the [`Outbound`] that serves a listener.
//!
//! [`build`]: OutboundBuilder::build

use super::accept::Outbound;
use super::connect::ClientTls;
use super::discovery::Discovery;
use super::forward::Forward;
use super::http::HttpOutbound;
use super::pool::Pool;
use super::route_policy::Router;
use crate::metrics::{HttpMetrics, TcpMetrics};
use crate::route_metrics::RouteMetrics;
use std::sync::Arc;
use std::time::Duration;

/// The detect timeout when none is given (as linkerd2-proxy's default).
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the outbound stack; everything but discovery and TLS has a
/// default (fresh metrics, no tracer, no taps, anyone may connect).
pub struct OutboundBuilder {
    discovery: Arc<dyn Discovery>,
    tls: Arc<ClientTls>,
    tcp_metrics: Arc<TcpMetrics>,
    http_metrics: Arc<HttpMetrics>,
    route_metrics: Arc<RouteMetrics>,
    tracer: Option<Arc<crate::trace::Tracer>>,
    taps: Arc<crate::tap::Taps>,
    detect_timeout: Duration,
    app_uids: Vec<u32>,
}

impl OutboundBuilder {
    pub fn new(discovery: Arc<dyn Discovery>, tls: Arc<ClientTls>) -> Self {
        Self {
            discovery,
            tls,
            tcp_metrics: Arc::default(),
            http_metrics: Arc::default(),
            route_metrics: Arc::default(),
            tracer: None,
            taps: Arc::default(),
            detect_timeout: DEFAULT_DETECT_TIMEOUT,
            app_uids: Vec::new(),
        }
    }

    /// The transport, request and route metrics to count in (shared with
    /// the admin server's `/metrics`).
    pub fn metrics(
        mut self,
        tcp: Arc<TcpMetrics>,
        http: Arc<HttpMetrics>,
        routes: Arc<RouteMetrics>,
    ) -> Self {
        (self.tcp_metrics, self.http_metrics, self.route_metrics) = (tcp, http, routes);
        self
    }

    /// Client spans for traced requests.
    pub fn tracer(mut self, tracer: Option<Arc<crate::trace::Tracer>>) -> Self {
        self.tracer = tracer;
        self
    }

    pub fn taps(mut self, taps: Arc<crate::tap::Taps>) -> Self {
        self.taps = taps;
        self
    }

    /// How long transparent mode waits for a connection's first bytes.
    pub fn detect_timeout(mut self, timeout: Duration) -> Self {
        self.detect_timeout = timeout;
        self
    }

    /// Only these uids' sockets are served (`ZTMESH_PROXY_APP_UID`);
    /// empty: anyone who can reach the listener.
    pub fn app_uids(mut self, uids: Vec<u32>) -> Self {
        self.app_uids = uids;
        self
    }

    pub fn build(self) -> Outbound {
        let forward = Forward {
            balancer: Default::default(),
            pool: Pool::new(self.tls.clone(), self.tcp_metrics.clone()),
            metrics: self.http_metrics,
            accrual: Default::default(),
            taps: self.taps,
        };
        let http = Arc::new(HttpOutbound {
            discovery: self.discovery.clone(),
            router: Router {
                forward,
                discovery: self.discovery,
                route_metrics: self.route_metrics,
            },
            tracer: self.tracer,
        });
        Outbound {
            http,
            tls: self.tls,
            metrics: self.tcp_metrics,
            detect_timeout: self.detect_timeout,
            app_uids: self.app_uids,
        }
    }
}
