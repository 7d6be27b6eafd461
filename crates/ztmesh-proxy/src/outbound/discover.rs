//! Stage: where is the target, and how is it reached?
//!
//! A name (`svc.ns.svc.cluster.local:port`) is resolved with Destination.Get
//! (the endpoint set, kept current from the stream); an address inside the
//! profile networks (`LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS`) with
//! GetProfile, whose `endpoint` tells whether the address is a meshed
//! workload and whose `opaque_protocol` whether to skip protocol detection;
//! other addresses are reached as they are, outside the mesh. Opening a
//! stream is bounded in time.

use linkerd2_proxy_api::destination::{self as proto, destination_client::DestinationClient};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One reachable endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity the endpoint must prove and the SNI to send; None: plaintext.
    pub tls: Option<(String, String)>,
    /// Dial this port and send a transport header naming `addr`'s port.
    pub opaque_transport: Option<u16>,
    /// The endpoint's proxy takes HTTP/2 (so HTTP/1 may be upgraded to it).
    pub http2: bool,
}

impl Endpoint {
    /// An address outside the mesh, reached as it is.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            opaque_transport: None,
            http2: false,
        }
    }
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
    #[error("resolving {0}: {1}")]
    Dns(String, std::io::Error),
}

/// Discovery with one long-lived Destination stream per target: the first
/// lookup opens it and waits (bounded) for the first answer; later lookups
/// read the current set, which a background task keeps up to date as
/// endpoints join and leave. A stream that ends drops its cache entry, so
/// the next lookup asks again.
#[derive(Clone)]
pub struct Discover {
    client: DestinationClient<Channel>,
    context_token: String,
    profile_networks: Arc<Vec<ipnet::IpNet>>,
    cache: Arc<Mutex<HashMap<String, watch::Receiver<Arc<Resolution>>>>>,
}

/// What discovery says about a target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    pub endpoints: Vec<Endpoint>,
    /// The target's port is opaque: no protocol detection, bytes as they come.
    pub opaque_protocol: bool,
}

impl Discover {
    pub fn new(
        channel: Channel,
        context_token: String,
        profile_networks: Vec<ipnet::IpNet>,
    ) -> Self {
        Self {
            client: DestinationClient::new(channel),
            context_token,
            profile_networks: Arc::new(profile_networks),
            cache: Arc::default(),
        }
    }

    /// Endpoints for an authority, never empty; a name the control plane
    /// does not know is resolved with DNS and reached outside the mesh.
    pub async fn endpoints(&self, authority: &str) -> Result<Arc<Resolution>, DiscoverError> {
        if let Ok(addr) = authority.parse::<SocketAddr>()
            && !self.profile_networks.iter().any(|n| n.contains(&addr.ip()))
        {
            return Ok(Arc::new(Resolution {
                endpoints: vec![Endpoint::plain(addr)],
                opaque_protocol: false,
            }));
        }
        let resolution = match self.resolve(authority).await {
            Ok(r) => r,
            Err(DiscoverError::Unknown(_)) => {
                let addr = tokio::net::lookup_host(authority)
                    .await
                    .map_err(|e| DiscoverError::Dns(authority.into(), e))?
                    .next()
                    .ok_or_else(|| {
                        DiscoverError::Dns(authority.into(), std::io::ErrorKind::NotFound.into())
                    })?;
                Arc::new(Resolution {
                    endpoints: vec![Endpoint::plain(addr)],
                    opaque_protocol: false,
                })
            }
            Err(e) => return Err(e),
        };
        if resolution.endpoints.is_empty() {
            return Err(DiscoverError::NoEndpoints(authority.into()));
        }
        Ok(resolution)
    }

    /// Endpoints for an authority; for an address the control plane does
    /// not know, that address itself (connected to as it is).
    pub async fn resolve(&self, authority: &str) -> Result<Arc<Resolution>, DiscoverError> {
        if let Some(rx) = self.cache.lock().expect("discovery cache").get(authority) {
            return Ok(rx.borrow().clone());
        }
        let rx = self.watch(authority).await?;
        let current = rx.borrow().clone();
        self.cache
            .lock()
            .expect("discovery cache")
            .insert(authority.to_string(), rx);
        Ok(current)
    }

    async fn watch(
        &self,
        authority: &str,
    ) -> Result<watch::Receiver<Arc<Resolution>>, DiscoverError> {
        let req = proto::GetDestination {
            scheme: "k8s".into(),
            path: authority.into(),
            context_token: self.context_token.clone(),
        };
        let rpc = |s: tonic::Status| DiscoverError::Rpc(s.code(), s.message().into());
        let mut client = self.client.clone();
        let (tx, rx) = watch::channel(Arc::new(Resolution::default()));
        let cache = self.cache.clone();
        let key = authority.to_string();
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            let mut stream = tokio::time::timeout(DISCOVERY_TIMEOUT, client.get_profile(req))
                .await
                .map_err(|_| DiscoverError::Timeout)?
                .map_err(rpc)?
                .into_inner();
            let to_set = move |p: Option<proto::DestinationProfile>| -> Arc<Resolution> {
                let opaque_protocol = p.as_ref().is_some_and(|p| p.opaque_protocol);
                let endpoints = match p.and_then(|p| p.endpoint).as_ref().and_then(endpoint) {
                    Some(e) => vec![e],
                    None => vec![Endpoint::plain(addr)],
                };
                Arc::new(Resolution {
                    endpoints,
                    opaque_protocol,
                })
            };
            let first = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
                .await
                .map_err(|_| DiscoverError::Timeout)?
                .map_err(rpc)?;
            tx.send_replace(to_set(first));
            tokio::spawn(async move {
                while let Ok(Some(p)) = stream.message().await {
                    tx.send_replace(to_set(Some(p)));
                }
                cache.lock().expect("discovery cache").remove(&key);
            });
            return Ok(rx);
        }
        let mut stream = tokio::time::timeout(DISCOVERY_TIMEOUT, client.get(req))
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(rpc)?
            .into_inner();
        let mut set = BTreeMap::new();
        let first = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(rpc)?;
        match first.and_then(|u| u.update) {
            Some(update) => {
                if !apply(&mut set, update) {
                    return Err(DiscoverError::Unknown(authority.into()));
                }
            }
            None => return Err(DiscoverError::Unknown(authority.into())),
        }
        if set.is_empty() {
            return Err(DiscoverError::NoEndpoints(authority.into()));
        }
        let resolution = |set: &BTreeMap<SocketAddr, Endpoint>| {
            Arc::new(Resolution {
                endpoints: set.values().cloned().collect(),
                opaque_protocol: false,
            })
        };
        tx.send_replace(resolution(&set));
        tokio::spawn(async move {
            while let Ok(Some(update)) = stream.message().await {
                if let Some(update) = update.update {
                    apply(&mut set, update);
                    tx.send_replace(resolution(&set));
                }
            }
            cache.lock().expect("discovery cache").remove(&key);
        });
        Ok(rx)
    }
}

/// Applies one Destination update to an endpoint set, per destination.proto;
/// false when the service does not exist (`no_endpoints{exists: false}`).
pub fn apply(set: &mut BTreeMap<SocketAddr, Endpoint>, update: proto::update::Update) -> bool {
    use proto::update::Update;
    match update {
        Update::Add(add) => {
            for e in add.addrs.iter().filter_map(endpoint) {
                set.insert(e.addr, e);
            }
            true
        }
        Update::Remove(remove) => {
            for addr in remove.addrs {
                if let Ok(a) = SocketAddr::try_from(addr) {
                    set.remove(&a);
                }
            }
            true
        }
        Update::NoEndpoints(n) => {
            set.clear();
            n.exists
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
    let http2 = matches!(
        w.protocol_hint.as_ref().and_then(|h| h.protocol.as_ref()),
        Some(proto::protocol_hint::Protocol::H2(_))
    );
    Some(Endpoint {
        addr,
        tls,
        opaque_transport,
        http2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::update::Update;

    fn addr(a: &str) -> proto::WeightedAddr {
        proto::WeightedAddr {
            addr: Some(a.parse::<SocketAddr>().unwrap().into()),
            ..Default::default()
        }
    }

    #[test]
    fn updates_table() {
        let mut set = BTreeMap::new();
        let keys = |s: &BTreeMap<SocketAddr, Endpoint>| {
            s.keys().map(|k| k.to_string()).collect::<Vec<_>>()
        };
        assert!(apply(
            &mut set,
            Update::Add(proto::WeightedAddrSet {
                addrs: vec![addr("10.0.0.1:80"), addr("10.0.0.2:80")],
                ..Default::default()
            })
        ));
        assert_eq!(keys(&set), vec!["10.0.0.1:80", "10.0.0.2:80"]);
        assert!(apply(
            &mut set,
            Update::Remove(proto::AddrSet {
                addrs: vec!["10.0.0.1:80".parse::<SocketAddr>().unwrap().into()]
            })
        ));
        assert_eq!(keys(&set), vec!["10.0.0.2:80"]);
        assert!(apply(
            &mut set,
            Update::Add(proto::WeightedAddrSet {
                addrs: vec![addr("10.0.0.3:80")],
                ..Default::default()
            })
        ));
        assert_eq!(keys(&set), vec!["10.0.0.2:80", "10.0.0.3:80"]);
        assert!(apply(
            &mut set,
            Update::NoEndpoints(proto::NoEndpoints { exists: true })
        ));
        assert!(set.is_empty());
        assert!(!apply(
            &mut set,
            Update::NoEndpoints(proto::NoEndpoints { exists: false })
        ));
    }
}
