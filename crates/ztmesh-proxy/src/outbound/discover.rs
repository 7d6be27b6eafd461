//! Stage: where is the target, and how is it reached?
//!
//! A name (`svc.ns.svc.cluster.local:port`) is resolved with Destination.Get
//! (the endpoint set, kept current from the stream) and GetProfile (its
//! ServiceProfile routes); an address inside the profile networks
//! (`LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS`) with GetProfile, whose
//! `endpoint` tells whether the address is a meshed workload, whose
//! `fully_qualified_name` names the Service a cluster IP belongs to (its
//! endpoints then come from Get), and whose `opaque_protocol` whether to
//! skip protocol detection; other addresses are reached as they are,
//! outside the mesh. Opening a stream is bounded in time.

use super::cache::{IDLE_TIMEOUT, IdleCache, Negative};
use super::profile::Profile;
use crate::metrics::DstLabels;
use linkerd2_proxy_api::destination::{self as proto, destination_client::DestinationClient};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

pub(crate) const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One reachable endpoint.
/// Hashed without its labels (equal endpoints hash alike all the same):
/// the pool looks endpoints up per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) addr: SocketAddr,
    /// The identity the endpoint must prove and the SNI to send; None: plaintext.
    pub(crate) tls: Option<(String, String)>,
    /// Dial this port and send a transport header naming `addr`'s port.
    pub(crate) opaque_transport: Option<u16>,
    /// The endpoint's proxy takes HTTP/2 (so HTTP/1 may be upgraded to it).
    pub(crate) http2: bool,
    /// Destination's metric labels (the set's and the address's), as
    /// `dst_*` labels of the series counting it.
    pub(crate) labels: DstLabels,
}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.tls.hash(state);
        self.opaque_transport.hash(state);
        self.http2.hash(state);
    }
}

impl Endpoint {
    /// An address outside the mesh, reached as it is.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            opaque_transport: None,
            http2: false,
            labels: DstLabels::default(),
        }
    }

    /// A meshed endpoint that must prove `identity` (DNS or `spiffe://`),
    /// reached with `server_name` as SNI.
    pub fn meshed(addr: SocketAddr, identity: &str, server_name: &str) -> Self {
        Self {
            tls: Some((identity.into(), server_name.into())),
            ..Self::plain(addr)
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

/// Discovery with long-lived Destination streams, one per target and kind
/// (Get for a name's endpoints, GetProfile for an address's or a name's
/// profile): the first lookup opens the stream and waits (bounded) for the
/// first answer; later lookups read the current state, which a background
/// task keeps up to date. A stream that ends or fails keeps its last
/// answer in force while the task reopens it with a backoff, as
/// linkerd2-proxy does: a controller outage fails no request to a known
/// target. Only the controller saying the target no longer exists drops
/// the entry, and so does a target nobody has looked up for
/// [`IDLE_TIMEOUT`] ([`IdleCache`]). A name the controller has no profile
/// for is remembered for [`NEGATIVE_TTL`].
#[derive(Clone)]
pub(crate) struct Discover {
    client: DestinationClient<Channel>,
    context_token: String,
    profile_networks: Arc<Vec<ipnet::IpNet>>,
    names: IdleCache<Arc<Vec<Endpoint>>>,
    profiles: IdleCache<Arc<ProfileState>>,
    no_profile: Arc<Negative>,
}

/// How long a failed profile lookup for a name is remembered.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// What GetProfile says about a target.
#[derive(Debug, Default)]
pub(crate) struct ProfileState {
    /// The ServiceProfile's routes and retry budget.
    pub profile: Option<Arc<Profile>>,
    /// The address is one meshed workload.
    pub(crate) endpoint: Option<Endpoint>,
    /// The address is a Service: its name, for Destination.Get.
    pub(crate) fqn: String,
    /// `fqn:port` (the port asked about), made once per answer: the
    /// target's logical name in every request's [`Resolution`].
    pub(crate) logical: Option<Arc<str>>,
    pub opaque_protocol: bool,
}

/// What discovery says about a target.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    pub endpoints: Arc<Vec<Endpoint>>,
    /// The target's port is opaque: no protocol detection, bytes as they come.
    pub opaque_protocol: bool,
    pub profile: Option<Arc<Profile>>,
    /// Failure accrual for these endpoints (from the OutboundPolicy).
    pub accrual: Option<super::accrual::AccrualConfig>,
    /// The control plane does not know the target: it is reached as it is
    /// (an address outside the profile networks, a name found by DNS).
    pub outside_mesh: bool,
    /// The logical name the target was resolved as (`name:port`: a
    /// Service's fully qualified name for its cluster IP, or the name
    /// asked for); None for a bare address (a pod's, one outside the
    /// mesh). Metrics' `authority`, tap's, and `l5d-dst-canonical`.
    pub logical: Option<Arc<str>>,
}

impl Resolution {
    /// A loopback address the mesh does not know: explicit mode's proxy
    /// refuses to relay to it (the workload's own local services, the
    /// controller's ports on a shared host).
    pub(crate) fn loopback_outside_mesh(&self) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|e| self.outside_mesh && e.addr.ip().is_loopback())
            .map(|e| e.addr)
    }
}

impl Discover {
    pub(crate) fn new(
        channel: Channel,
        context_token: String,
        profile_networks: Vec<ipnet::IpNet>,
    ) -> Self {
        Self {
            client: DestinationClient::new(channel),
            context_token,
            profile_networks: Arc::new(profile_networks),
            names: IdleCache::new(IDLE_TIMEOUT),
            profiles: IdleCache::new(IDLE_TIMEOUT),
            no_profile: Arc::default(),
        }
    }

    /// Everything known about an authority; endpoints never empty. An
    /// address is looked up with GetProfile (a Service's cluster IP yields
    /// the Service's endpoints); a name with Get (and GetProfile for its
    /// routes); a name the control plane does not know is resolved with
    /// DNS and reached outside the mesh.
    pub(crate) async fn endpoints(&self, authority: &str) -> Result<Resolution, DiscoverError> {
        let plain = |addr| Arc::new(vec![Endpoint::plain(addr)]);
        let resolution = if let Ok(addr) = authority.parse::<SocketAddr>() {
            if !self.profile_networks.iter().any(|n| n.contains(&addr.ip())) {
                return Ok(Resolution {
                    endpoints: plain(addr),
                    outside_mesh: true,
                    ..Default::default()
                });
            }
            let state = self.profile_state(authority).await?;
            let (endpoints, outside_mesh, logical) = if let Some(e) = &state.endpoint {
                (Arc::new(vec![e.clone()]), false, None)
            } else if !state.fqn.is_empty() {
                let name = format!("{}:{}", state.fqn, addr.port());
                match self.name_endpoints(&name).await {
                    Ok(e) => (e, false, state.logical.clone()),
                    Err(DiscoverError::Unknown(_)) => (plain(addr), true, None),
                    Err(e) => return Err(e),
                }
            } else {
                (plain(addr), true, None)
            };
            Resolution {
                endpoints,
                opaque_protocol: state.opaque_protocol,
                profile: state.profile.clone(),
                accrual: None,
                outside_mesh,
                logical,
            }
        } else {
            let endpoints = match self.name_endpoints(authority).await {
                Ok(e) => e,
                Err(DiscoverError::Unknown(_)) => {
                    let addr = tokio::net::lookup_host(authority)
                        .await
                        .map_err(|e| DiscoverError::Dns(authority.into(), e))?
                        .next()
                        .ok_or_else(|| {
                            DiscoverError::Dns(
                                authority.into(),
                                std::io::ErrorKind::NotFound.into(),
                            )
                        })?;
                    return Ok(Resolution {
                        endpoints: plain(addr),
                        outside_mesh: true,
                        logical: Some(authority.into()),
                        ..Default::default()
                    });
                }
                Err(e) => return Err(e),
            };
            let state = self.name_profile(authority).await;
            // The Service's fully qualified name for a short one.
            let logical = state
                .as_ref()
                .and_then(|s| s.logical.clone())
                .unwrap_or_else(|| authority.into());
            Resolution {
                endpoints,
                opaque_protocol: state.as_ref().is_some_and(|s| s.opaque_protocol),
                profile: state.and_then(|s| s.profile.clone()),
                accrual: None,
                outside_mesh: false,
                logical: Some(logical),
            }
        };
        if resolution.endpoints.is_empty() {
            return Err(DiscoverError::NoEndpoints(authority.into()));
        }
        Ok(resolution)
    }

    /// A name's profile, if the controller has one (failures are
    /// remembered for a while, so they do not cost every request a lookup).
    async fn name_profile(&self, authority: &str) -> Option<Arc<ProfileState>> {
        if self.no_profile.contains(authority) {
            return None;
        }
        match self.profile_state(authority).await {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::debug!(%authority, %error, "no profile");
                self.no_profile.insert(authority, NEGATIVE_TTL);
                None
            }
        }
    }

    fn request(&self, authority: &str) -> proto::GetDestination {
        proto::GetDestination {
            scheme: "k8s".into(),
            path: authority.into(),
            context_token: self.context_token.clone(),
        }
    }

    async fn profile_state(&self, authority: &str) -> Result<Arc<ProfileState>, DiscoverError> {
        if let Some(state) = self.profiles.get(authority) {
            return Ok(state);
        }
        let rpc = |s: tonic::Status| DiscoverError::Rpc(s.code(), s.message().into());
        let mut client = self.client.clone();
        let mut stream = tokio::time::timeout(
            DISCOVERY_TIMEOUT,
            client.get_profile(self.request(authority)),
        )
        .await
        .map_err(|_| DiscoverError::Timeout)?
        .map_err(rpc)?
        .into_inner();
        let first = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(rpc)?
            .ok_or_else(|| DiscoverError::Unknown(authority.into()))?;
        let (tx, rx) = watch::channel(Arc::new(profile_state(&first, authority)));
        let state = rx.borrow().clone();
        let this = self.clone();
        self.profiles.insert(authority, rx, |_| {
            this.follow_profile(authority.to_string(), stream, tx)
        });
        Ok(state)
    }

    /// Keeps a profile current; reopens the stream when it ends.
    async fn follow_profile(
        self,
        authority: String,
        mut stream: tonic::Streaming<proto::DestinationProfile>,
        tx: watch::Sender<Arc<ProfileState>>,
    ) {
        let mut backoff = crate::backoff::Backoff::control_plane();
        loop {
            while let Some(p) = next_message(&mut stream, &authority, "profile").await {
                backoff.reset();
                tx.send_replace(Arc::new(profile_state(&p, &authority)));
            }
            let reopened = self
                .reopen(&authority, &mut backoff, |mut client, req| async move {
                    client.get_profile(req).await
                })
                .await;
            // The target is gone: the cache drops it as this ends.
            let Some(reopened) = reopened else {
                return;
            };
            stream = reopened;
        }
    }

    /// Keeps a name's endpoints current; reopens the stream when it ends,
    /// and the reopened stream's first answer replaces the whole set.
    async fn follow_endpoints(
        self,
        authority: String,
        mut stream: tonic::Streaming<proto::Update>,
        mut set: BTreeMap<SocketAddr, Endpoint>,
        tx: watch::Sender<Arc<Vec<Endpoint>>>,
    ) {
        let mut backoff = crate::backoff::Backoff::control_plane();
        let mut fresh = false;
        loop {
            while let Some(update) = next_message(&mut stream, &authority, "endpoints").await {
                backoff.reset();
                if let Some(update) = update.update {
                    if std::mem::take(&mut fresh) {
                        set.clear();
                    }
                    apply(&mut set, update);
                    tx.send_replace(endpoint_list(&set));
                }
            }
            let reopened = self
                .reopen(&authority, &mut backoff, |mut client, req| async move {
                    client.get(req).await
                })
                .await;
            let Some(reopened) = reopened else {
                return;
            };
            stream = reopened;
            fresh = true;
        }
    }

    /// Reopens a stream, pacing the attempts with `backoff`, until it
    /// opens, or None once the controller says the target is gone.
    async fn reopen<M, F, Fut>(
        &self,
        authority: &str,
        backoff: &mut crate::backoff::Backoff,
        open: F,
    ) -> Option<tonic::Streaming<M>>
    where
        F: Fn(DestinationClient<Channel>, proto::GetDestination) -> Fut,
        Fut: std::future::Future<
                Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>,
            >,
    {
        loop {
            backoff.wait().await;
            let opened = open(self.client.clone(), self.request(authority));
            match tokio::time::timeout(DISCOVERY_TIMEOUT, opened).await {
                Ok(Ok(s)) => {
                    tracing::info!(%authority, "discovery stream reopened");
                    return Some(s.into_inner());
                }
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        tonic::Code::NotFound | tonic::Code::InvalidArgument
                    ) =>
                {
                    tracing::info!(%authority, code = ?status.code(), "the controller no longer knows the target");
                    return None;
                }
                Ok(Err(status)) => {
                    tracing::debug!(%authority, code = ?status.code(), message = status.message(), "reopening discovery failed; retrying");
                }
                Err(_) => {}
            }
        }
    }

    async fn name_endpoints(&self, authority: &str) -> Result<Arc<Vec<Endpoint>>, DiscoverError> {
        if let Some(endpoints) = self.names.get(authority) {
            return Ok(endpoints);
        }
        let rpc = |s: tonic::Status| DiscoverError::Rpc(s.code(), s.message().into());
        let mut client = self.client.clone();
        let mut stream =
            tokio::time::timeout(DISCOVERY_TIMEOUT, client.get(self.request(authority)))
                .await
                .map_err(|_| DiscoverError::Timeout)?
                .map_err(rpc)?
                .into_inner();
        let mut set = BTreeMap::new();
        let first = tokio::time::timeout(DISCOVERY_TIMEOUT, stream.message())
            .await
            .map_err(|_| DiscoverError::Timeout)?
            .map_err(rpc)?;
        let known = match first.and_then(|u| u.update) {
            Some(update) => apply(&mut set, update),
            None => false,
        };
        if !known {
            return Err(DiscoverError::Unknown(authority.into()));
        }
        let (tx, rx) = watch::channel(endpoint_list(&set));
        let endpoints = rx.borrow().clone();
        let this = self.clone();
        self.names.insert(authority, rx, |_| {
            this.follow_endpoints(authority.to_string(), stream, set, tx)
        });
        Ok(endpoints)
    }
}

/// The stream's next message; None when it ended or failed (logged: the
/// last answer stays in force).
async fn next_message<M>(
    stream: &mut tonic::Streaming<M>,
    authority: &str,
    what: &str,
) -> Option<M> {
    match stream.message().await {
        Ok(Some(m)) => Some(m),
        Ok(None) => {
            tracing::info!(%authority, what, "the discovery stream ended; keeping the last answer while reconnecting");
            None
        }
        Err(status) => {
            tracing::warn!(%authority, what, code = ?status.code(), message = status.message(), "the discovery stream failed; keeping the last answer while reconnecting");
            None
        }
    }
}

fn endpoint_list(set: &BTreeMap<SocketAddr, Endpoint>) -> Arc<Vec<Endpoint>> {
    Arc::new(set.values().cloned().collect())
}

fn profile_state(p: &proto::DestinationProfile, authority: &str) -> ProfileState {
    let has_profile = !p.routes.is_empty() || p.retry_budget.is_some();
    let fqn = &p.fully_qualified_name;
    let logical = match authority.rsplit_once(':') {
        Some((_, port)) if !fqn.is_empty() => Some(format!("{fqn}:{port}").into()),
        _ => None,
    };
    ProfileState {
        profile: has_profile.then(|| Arc::new(Profile::from_proto(p))),
        endpoint: p.endpoint.as_ref().and_then(endpoint),
        fqn: fqn.clone(),
        logical,
        opaque_protocol: p.opaque_protocol,
    }
}

/// Applies one Destination update to an endpoint set, per destination.proto;
/// false when the service does not exist (`no_endpoints{exists: false}`).
pub(crate) fn apply(
    set: &mut BTreeMap<SocketAddr, Endpoint>,
    update: proto::update::Update,
) -> bool {
    use proto::update::Update;
    match update {
        Update::Add(add) => {
            for w in &add.addrs {
                if let Some(e) = endpoint_in(w, &add.metric_labels) {
                    set.insert(e.addr, e);
                }
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
pub(crate) fn endpoint(w: &proto::WeightedAddr) -> Option<Endpoint> {
    endpoint_in(w, &Default::default())
}

/// [`endpoint`], in a set whose metric labels (`set_labels`) it shares;
/// its own labels win over the set's.
fn endpoint_in(
    w: &proto::WeightedAddr,
    set_labels: &std::collections::HashMap<String, String>,
) -> Option<Endpoint> {
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
    let mut labels: BTreeMap<&String, &String> = set_labels.iter().collect();
    labels.extend(&w.metric_labels);
    Some(Endpoint {
        addr,
        tls,
        opaque_transport,
        http2,
        labels: DstLabels::new(labels),
    })
}

#[cfg(test)]
mod tests;
