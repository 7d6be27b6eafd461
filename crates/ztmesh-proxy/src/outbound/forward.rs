//! Stage (outbound HTTP): one try of a request: an endpoint picked by the
//! [`balance`](super::balance)r among those failure accrual leaves in
//! ([`accrual`](super::accrual)), the request sent on that endpoint's
//! shared connection from the [`pool`](super::pool), counted with the
//! endpoint's verified identity (`server_id`).
//!
//! HTTP/1 requests to an endpoint whose hint says h2 travel as HTTP/2 with
//! `l5d-orig-proto` ([`crate::orig_proto`]); upgrades (WebSocket) get an
//! HTTP/1.1 connection of their own ([`crate::http_upgrade`]). A peer
//! proxy's error headers are removed and logged
//! ([`peer_errors`](super::peer_errors)). A failure is returned, not
//! answered: the edge ([`super::error::rescue`]) answers it.

use super::accrual::Accrual;
use super::balance::Balancer;
use super::connect::tls_label;
use super::discover::{Endpoint, Resolution};
use super::error::Failure;
use super::pool::Pool;
use crate::metrics::{HttpMetrics, StatsCache, StatsKey};
use crate::proxy_http::Body;
use crate::{http_upgrade, orig_proto};
use http_body_util::BodyExt;
use hyper::{Request, Response, Version};
use std::sync::Arc;

/// What sending one try needs; shared by all outbound connections.
pub(crate) struct Forward {
    pub(crate) balancer: Balancer,
    pub(crate) pool: Pool,
    pub(crate) metrics: Arc<HttpMetrics>,
    pub(crate) accrual: Accrual,
    /// Live observers of this proxy's requests.
    pub(crate) taps: Arc<crate::tap::Taps>,
}

impl Forward {
    /// One try: an endpoint picked by the balancer, the request sent on its
    /// shared connection, counted with the endpoint's identity.
    pub(crate) async fn attempt(
        &self,
        resolution: &Resolution,
        mut req: Request<Body>,
        authority: &str,
        cache: &StatsCache,
    ) -> Result<Response<Body>, Failure> {
        let started = tokio::time::Instant::now();
        // Failure accrual: endpoints serving a penalty are left out.
        let available: Vec<Endpoint>;
        let endpoints: &[Endpoint] = match &resolution.accrual {
            None => &resolution.endpoints,
            Some(_) => {
                available = resolution
                    .endpoints
                    .iter()
                    .filter(|e| self.accrual.available(e.addr))
                    .cloned()
                    .collect();
                if available.is_empty() {
                    return Err(Failure::AllEndpointsFailing {
                        authority: authority.into(),
                    });
                }
                &available
            }
        };
        let (endpoint, load) = self
            .balancer
            .pick(endpoints, |e| e.addr, |n| fastrand::usize(..n));
        let endpoint = endpoint.clone();
        let counters = cache.get(
            &self.metrics,
            &StatsKey {
                direction: "outbound",
                authority: resolution.logical.as_deref(),
                target: endpoint.addr,
                policy: &crate::metrics::PolicyLabels::NONE,
                dst: &endpoint.labels,
            },
            &tls_label(&endpoint),
        );
        counters.request();
        let server_id = endpoint
            .tls
            .as_ref()
            .map(|(id, _)| id.as_str())
            .unwrap_or("");
        let source = req
            .extensions()
            .get::<crate::proxy_http::ClientAddr>()
            .map(|c| c.0);
        let tapped = self.taps.request(
            false,
            &req,
            resolution.logical.as_deref(),
            source,
            endpoint.addr,
            ("", server_id),
        );
        let upgrade = http_upgrade::client_side(&mut req);
        let orig_version = req.version();
        let clients = self.pool.clients(&endpoint, resolution.logical.as_ref());
        let client = if upgrade.is_some() {
            &clients.http1
        } else if orig_version == Version::HTTP_2 {
            &clients.http2
        } else if endpoint.http2 {
            orig_proto::upgrade_request(&mut req, false);
            &clients.http2
        } else {
            &clients.http1
        };
        let in_flight = load.start();
        let result = client.request(req).await;
        in_flight.finish();
        let result = match result {
            Ok(mut rsp) => {
                if orig_version != Version::HTTP_2 {
                    orig_proto::restore_response(&mut rsp, orig_version);
                }
                let peer =
                    super::peer_errors::strip(&mut rsp, orig_version, endpoint.tls.is_some());
                if let Some(error) = &peer.error {
                    tracing::info!(endpoint = %endpoint.addr, status = rsp.status().as_u16(), %error, "remote proxy error");
                }
                if peer.close {
                    tracing::debug!(endpoint = %endpoint.addr, "the peer proxy asked to close the connection");
                }
                if let Some(upgrade) = upgrade {
                    http_upgrade::bridge(upgrade, &mut rsp);
                }
                let rsp = rsp.map(|b| b.boxed());
                Ok(crate::grpc_status::count(counters, rsp, started.elapsed()))
            }
            Err(error) => {
                let failure = Failure::Request {
                    addr: endpoint.addr,
                    error,
                };
                counters.response(failure.http_status().as_u16(), started.elapsed());
                Err(failure)
            }
        };
        let status = status_of(&result);
        if let Some(t) = tapped {
            t.response(status);
        }
        if let Some(config) = &resolution.accrual
            && let Some(penalty) =
                self.accrual
                    .record(endpoint.addr, status >= 500, config, fastrand::f64())
        {
            tracing::info!(endpoint = %endpoint.addr, %authority, ?penalty, "endpoint failed {} times in a row: out of the balancer", config.max_failures);
        }
        result
    }
}

/// The HTTP status a result answers with (a failure's, once rescued).
pub(crate) fn status_of(result: &Result<Response<Body>, Failure>) -> u16 {
    match result {
        Ok(rsp) => rsp.status().as_u16(),
        Err(failure) => failure.http_status().as_u16(),
    }
}
