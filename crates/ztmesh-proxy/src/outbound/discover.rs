//! Stage: where is the target, and how is it reached?
//!
//! A name (`svc.ns.svc.cluster.local:port`) is resolved with Destination.Get
//! (the first snapshot of the endpoint set); an address with GetProfile,
//! whose `endpoint` tells whether the address is a meshed workload. Each
//! call is bounded in time.

use linkerd2_proxy_api::destination::{self as proto, destination_client::DestinationClient};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;

pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One reachable endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity the endpoint must prove and the SNI to send; None: plaintext.
    pub tls: Option<(String, String)>,
    /// Dial this port and send a transport header naming `addr`'s port.
    pub opaque_transport: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("the destination service did not answer within {DISCOVERY_TIMEOUT:?}")]
    Timeout,
    #[error("the destination service refused: {0:?}: {1}")]
    Rpc(tonic::Code, String),
    #[error("{0} has no endpoints")]
    NoEndpoints(String),
    #[error("{0} is not a service the control plane knows")]
    Unknown(String),
}

#[derive(Clone)]
pub struct Discover {
    client: DestinationClient<Channel>,
    context_token: String,
}

impl Discover {
    pub fn new(channel: Channel, context_token: String) -> Self {
        Self {
            client: DestinationClient::new(channel),
            context_token,
        }
    }

    /// Endpoints for an authority; `Ok(vec![])` only for an address the
    /// control plane does not know (connect to it as it is).
    pub async fn resolve(&self, authority: &str) -> Result<Vec<Endpoint>, DiscoverError> {
        let req = proto::GetDestination {
            scheme: "k8s".into(),
            path: authority.into(),
            context_token: self.context_token.clone(),
        };
        let mut client = self.client.clone();
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            let mut stream = tokio::time::timeout(DISCOVERY_TIMEOUT, client.get_profile(req))
                .await
                .map_err(|_| DiscoverError::Timeout)?
                .map_err(|s| DiscoverError::Rpc(s.code(), s.message().into()))?
                .into_inner();
            let profile = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
                .await
                .map_err(|_| DiscoverError::Timeout)?
                .map_err(|s| DiscoverError::Rpc(s.code(), s.message().into()))?;
            return Ok(match profile.and_then(|p| p.endpoint) {
                Some(w) => endpoint(&w).into_iter().collect(),
                None => vec![Endpoint {
                    addr,
                    tls: None,
                    opaque_transport: None,
                }],
            });
        }
        let mut stream = tokio::time::timeout(DISCOVERY_TIMEOUT, client.get(req))
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(|s| DiscoverError::Rpc(s.code(), s.message().into()))?
            .into_inner();
        let update = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(|s| DiscoverError::Rpc(s.code(), s.message().into()))?;
        match update.and_then(|u| u.update) {
            Some(proto::update::Update::Add(set)) => {
                Ok(set.addrs.iter().filter_map(endpoint).collect())
            }
            Some(proto::update::Update::NoEndpoints(n)) if n.exists => {
                Err(DiscoverError::NoEndpoints(authority.into()))
            }
            _ => Err(DiscoverError::Unknown(authority.into())),
        }
    }
}

/// A proto endpoint in the proxy's terms; SNI falls back to the DNS
/// identity when the controller gives no server name, as linkerd2-proxy does.
pub fn endpoint(w: &proto::WeightedAddr) -> Option<Endpoint> {
    use proto::tls_identity::Strategy;
    let addr = SocketAddr::try_from(w.addr?).ok()?;
    let tls = w.tls_identity.as_ref().and_then(|t| {
        let identity = match t.strategy.as_ref()? {
            Strategy::DnsLikeIdentity(d) => d.name.clone(),
            Strategy::UriLikeIdentity(u) => u.uri.clone(),
        };
        let server_name = t
            .server_name
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| identity.clone());
        Some((identity, server_name))
    });
    let opaque_transport = w
        .protocol_hint
        .as_ref()
        .and_then(|h| h.opaque_transport.as_ref())
        .and_then(|o| u16::try_from(o.inbound_port).ok());
    Some(Endpoint {
        addr,
        tls,
        opaque_transport,
    })
}
