//! [`Builder`]: what the controller serves and where. [`Builder::spawn`]
//! binds every listener first, loads the issuer, starts the manifest
//! scanner and the servers, and returns a [`Running`].

use crate::Error;
use crate::authenticator::{Authenticator, TokenReviewer};
use crate::issuer_reload::{IssuerReloader, keep_current};
use crate::manifests::{Indexes, Scanner};
use crate::own_identity::OwnIdentity;
use crate::running::{Addrs, Running, ShutdownHandle};
use crate::store_feed::{Feeder, StoreFeed};
use crate::supervise::stopped;
use crate::supervise::{ManifestListeners, ManifestServing, Source, supervise};
pub use crate::supervise::{ShutdownSignal, VizContext, VizServer, state_dir_for};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use ztmesh_attestation::{JwtSigner, NodeTokenSigner};

use ztmesh_identity::TrustDomain;
use ztmesh_identity::token::TokenSigner;
use ztmesh_policy::{ClusterInfo, DefaultPolicy};
use ztmesh_resources::bounds::Limits;

/// Lifetime of the JWT-SVIDs the controller signs for `ztmesh agent`.
const JWT_SVID_TTL: Duration = Duration::from_secs(5 * 60);

/// The controller's configuration; see the `ztmesh controller` flags for
/// what each setting means. Defaults are the flags' defaults.
pub struct Builder {
    identity_dir: PathBuf,
    identity_addr: SocketAddr,
    trust_domain: String,
    control_plane_ns: String,
    identity_ttl: Duration,
    token_key: Option<PathBuf>,
    token_reviewer: Option<Arc<dyn TokenReviewer>>,
    workload_attestations: Option<PathBuf>,
    issuer_poll_interval: Duration,
    manifests: Option<PathBuf>,
    store: Option<StoreFeed>,
    state_root: Option<PathBuf>,
    limits: Limits,
    policy_addr: SocketAddr,
    destination_addr: SocketAddr,
    viz: Option<(SocketAddr, VizServer)>,
    cluster_domain: String,
    cluster_networks: Vec<ipnet::IpNet>,
    default_policy: DefaultPolicy,
    admin: Option<(SocketAddr, Arc<prometheus_client::registry::Registry>)>,
    federation: Option<crate::FederationConfig>,
    sources: crate::federation::Sources,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Builder {
    /// A controller issuing from the install in `identity_dir` (ca.crt and
    /// the issuer; token.key unless [`Builder::token_key`] says otherwise).
    pub fn new(identity_dir: impl Into<PathBuf>) -> Self {
        let cluster = ClusterInfo::default();
        Self {
            identity_dir: identity_dir.into(),
            identity_addr: loopback(8080),
            trust_domain: "cluster.local".into(),
            control_plane_ns: "linkerd".into(),
            identity_ttl: Duration::from_secs(24 * 3600),
            token_key: None,
            token_reviewer: None,
            workload_attestations: None,
            issuer_poll_interval: Duration::from_secs(1),
            manifests: None,
            store: None,
            state_root: None,
            limits: Limits::default(),
            policy_addr: loopback(8090),
            destination_addr: loopback(8086),
            viz: None,
            cluster_domain: "cluster.local".into(),
            cluster_networks: cluster.networks,
            default_policy: cluster.default_policy,
            admin: None,
            federation: None,
            sources: crate::federation::Sources::new(),
        }
    }

    pub fn identity_addr(mut self, addr: SocketAddr) -> Self {
        self.identity_addr = addr;
        self
    }

    pub fn trust_domain(mut self, domain: impl Into<String>) -> Self {
        self.trust_domain = domain.into();
        self
    }

    pub fn control_plane_namespace(mut self, ns: impl Into<String>) -> Self {
        self.control_plane_ns = ns.into();
        self
    }

    /// Lifetime of issued certificates (clamped to the issuer's).
    pub fn identity_ttl(mut self, ttl: Duration) -> Self {
        self.identity_ttl = ttl;
        self
    }

    /// Serve `ztmesh.node.v1.NodeIdentity` (SVIDs for `ztmesh agent`) on
    /// the identity listener, authorized by the WorkloadAttestation
    /// resources in this file or directory (read at each request); JWT-SVIDs
    /// are signed with `jwt-svid.key` in the identity directory, made at
    /// the first start.
    pub fn workload_attestations(mut self, path: impl Into<PathBuf>) -> Self {
        self.workload_attestations = Some(path.into());
        self
    }

    pub fn token_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_key = Some(path.into());
        self
    }

    /// Authenticate Certify's tokens with `reviewer` (the Kubernetes
    /// TokenReview API) instead of the local token key, which is then not read.
    pub fn token_reviewer(mut self, reviewer: Arc<dyn TokenReviewer>) -> Self {
        self.token_reviewer = Some(reviewer);
        self
    }

    /// How often the issuer is read where its directory cannot be watched.
    pub fn issuer_poll_interval(mut self, interval: Duration) -> Self {
        self.issuer_poll_interval = interval;
        self
    }

    /// Serve policy and destination from the manifests in `dir`.
    pub fn manifests(mut self, dir: impl Into<PathBuf>) -> Self {
        self.manifests = Some(dir.into());
        self
    }

    /// Serve policy and destination from another store's feed (the
    /// Kubernetes store) instead of a manifests directory; it wins over
    /// [`Builder::manifests`].
    /// Serves `GET /metrics` (`registry`) and `/ready` on `addr`.
    pub fn admin(
        mut self,
        addr: SocketAddr,
        registry: prometheus_client::registry::Registry,
    ) -> Self {
        self.admin = Some((addr, Arc::new(registry)));
        self
    }

    pub fn store(mut self, feed: StoreFeed) -> Self {
        self.store = Some(feed);
        self
    }

    /// Where last good content is recorded: one `manifests-HASH`
    /// subdirectory per manifests directory [default: IDENTITY_DIR/.ztmesh-state].
    pub fn state_dir(mut self, root: impl Into<PathBuf>) -> Self {
        self.state_root = Some(root.into());
        self
    }

    /// Size and nesting limits of manifest files.
    pub fn manifest_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn policy_addr(mut self, addr: SocketAddr) -> Self {
        self.policy_addr = addr;
        self
    }

    pub fn destination_addr(mut self, addr: SocketAddr) -> Self {
        self.destination_addr = addr;
        self
    }

    /// Serve the viz API on `addr` with `server` (with manifests).
    pub fn viz(mut self, addr: SocketAddr, server: VizServer) -> Self {
        self.viz = Some((addr, server));
        self
    }

    pub fn cluster_domain(mut self, domain: impl Into<String>) -> Self {
        self.cluster_domain = domain.into();
        self
    }

    pub fn cluster_networks(mut self, networks: Vec<ipnet::IpNet>) -> Self {
        self.cluster_networks = networks;
        self
    }

    pub fn default_inbound_policy(mut self, policy: DefaultPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// Binds every listener (a port that cannot be bound fails here, naming
    /// it, before anything is served), loads the issuer and the token key
    /// (an invalid one fails here), then serves: identity at once; with
    /// manifests (or a [`Builder::store`]), policy, destination and the viz
    /// API once the first scan (the store's first complete listing) is in
    /// the indexes ([`Running::ready`]).
    /// Serve the SPIFFE bundle endpoint and follow the foreign trust
    /// domains the ClusterFederatedTrustDomains name (see `federation`).
    pub fn federation(mut self, config: crate::FederationConfig) -> Self {
        self.federation = Some(config);
        self
    }

    pub async fn spawn(mut self) -> Result<Running, Error> {
        let identity_listener = bind(self.identity_addr, "identity service").await?;
        let listeners = match self.manifests.is_some() || self.store.is_some() {
            false => None,
            true => Some(ManifestListeners {
                policy: bind(self.policy_addr, "policy service").await?,
                destination: bind(self.destination_addr, "destination service").await?,
                viz: match &self.viz {
                    Some((addr, _)) => Some(bind(*addr, "viz API").await?),
                    None => None,
                },
            }),
        };
        let admin = match self.admin.take() {
            Some((addr, registry)) => Some((bind(addr, "admin server").await?, registry)),
            None => None,
        };
        let anchors = self
            .identity_dir
            .join(ztmesh_identity::install::ANCHORS_FILE);
        let federation = crate::federation::prepare(
            self.federation.as_ref(),
            &self.trust_domain,
            anchors,
            &self.sources,
        )
        .await?;
        let local = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
        let addrs = Addrs {
            identity: local(&identity_listener),
            policy: listeners.as_ref().map(|l| local(&l.policy)),
            destination: listeners.as_ref().map(|l| local(&l.destination)),
            viz: listeners.as_ref().and_then(|l| l.viz.as_ref().map(local)),
            admin: admin.as_ref().map(|(l, _)| local(l)),
            bundle_endpoint: federation.as_ref().and_then(|f| f.endpoint_addr()),
        };

        let trust = TrustDomain::new(&self.control_plane_ns, &self.trust_domain)?;
        let dir = self.identity_dir.clone();
        let (reloader, ca) = IssuerReloader::start(dir.clone(), trust.clone(), self.identity_ttl)
            .map_err(|source| Error::Issuer { dir, source })?;
        let verifier = Arc::new(match self.token_reviewer.clone() {
            Some(reviewer) => Authenticator::Review(reviewer),
            None => {
                let token_key = self.token_key.clone().unwrap_or_else(|| {
                    self.identity_dir
                        .join(ztmesh_identity::install::TOKEN_KEY_FILE)
                });
                let pem = std::fs::read(&token_key).map_err(|source| Error::ReadTokenKey {
                    path: token_key.clone(),
                    source,
                })?;
                Authenticator::Local(
                    TokenSigner::from_pem(&pem, &token_key.display().to_string())?.verifier(),
                )
            }
        });
        // Nodes (ztmesh agent) authenticate with node tokens signed by the
        // same token key.
        let node_identity = match &self.workload_attestations {
            Some(path) => {
                let token_key = self.token_key.clone().unwrap_or_else(|| {
                    self.identity_dir
                        .join(ztmesh_identity::install::TOKEN_KEY_FILE)
                });
                let pem = std::fs::read(&token_key).map_err(|source| Error::ReadTokenKey {
                    path: token_key.clone(),
                    source,
                })?;
                Some(ztmesh_grpc::node_identity::NodeIdentityService::new(
                    ca.clone(),
                    NodeTokenSigner::from_pem(&pem, &token_key.display().to_string())?.verifier(),
                    path.clone(),
                    Arc::new(JwtSigner::load_or_create(
                        &self
                            .identity_dir
                            .join(ztmesh_attestation::jwt_svid::KEY_FILE),
                        JWT_SVID_TTL,
                    )?),
                ))
            }
            None => None,
        };

        let identity_name = trust.identity(&self.control_plane_ns, "linkerd-identity")?;
        // Destination and policy prove linkerd-destination's identity, as in Linkerd.
        let destination_name = trust.identity(&self.control_plane_ns, "linkerd-destination")?;
        let now = SystemTime::now();
        let mut own = OwnIdentity::new(identity_name.clone())?;
        own.refresh(&ca.borrow(), now)?;
        let mut dst_own = OwnIdentity::new(destination_name.clone())?;
        dst_own.refresh(&ca.borrow(), now)?;
        let tls = server_tls(&own)?;
        let dst_tls = server_tls(&dst_own)?;

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(keep_current(
            reloader,
            ca.clone(),
            vec![own, dst_own],
            self.issuer_poll_interval,
            stopped(stop_rx.clone()),
        ));

        let mut servers = JoinSet::new();
        let router = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(30))
            .add_service(ztmesh_grpc::identity::IdentityService::new(ca, verifier).into_server())
            .add_optional_service(node_identity.map(|s| s.into_server()));
        let identity =
            ztmesh_grpc::server::serve(identity_listener, router, tls, stopped(stop_rx.clone()));
        servers.spawn(async move { ("identity service", identity.await) });

        if let Some(federation) = federation {
            federation.spawn(|| stopped(stop_rx.clone()));
        }
        let (ready_tx, ready) = watch::channel(false);
        if let Some((listener, registry)) = admin {
            let stop = stopped(stop_rx.clone());
            tokio::spawn(crate::admin::serve(listener, registry, ready.clone(), stop));
        }
        let store = self.store.take();
        let (manifests, state_dir) = match (self.manifests.clone(), listeners) {
            (_, Some(listeners)) if let Some(feed) = store => {
                let indexes = self.indexes();
                let status = feed.status.clone();
                let serving = ManifestServing {
                    source: Source::Feed(Feeder::start(feed, indexes.clone())),
                    listeners,
                    indexes,
                    status,
                    viz: self.viz.map(|(_, server)| server),
                    tls: dst_tls,
                };
                (Some(serving), None)
            }
            (Some(dir), Some(listeners)) => {
                let state_root = self
                    .state_root
                    .clone()
                    .unwrap_or_else(|| self.identity_dir.join(".ztmesh-state"));
                let state_dir = state_dir_for(&state_root, &dir);
                let indexes = self.indexes();
                let status = Arc::new(Mutex::new(serde_json::Value::Null));
                let scanner = Scanner::start(
                    dir,
                    state_dir.clone(),
                    self.limits,
                    indexes.clone(),
                    status.clone(),
                )
                .map_err(Error::Scanner)?;
                let serving = ManifestServing {
                    source: Source::Dir(scanner),
                    listeners,
                    indexes,
                    status,
                    viz: self.viz.map(|(_, server)| server),
                    tls: dst_tls,
                };
                (Some(serving), Some(state_dir))
            }
            _ => (None, None),
        };
        let task = tokio::spawn(supervise(servers, manifests, stop_rx, ready_tx));
        Ok(Running {
            addrs,
            identity_name,
            destination_name,
            state_dir,
            shutdown: ShutdownHandle(Arc::new(stop_tx)),
            ready,
            task,
        })
    }

    fn indexes(&self) -> Indexes {
        let cluster = ClusterInfo {
            networks: self.cluster_networks.clone(),
            default_policy: self.default_policy,
            control_plane_ns: self.control_plane_ns.clone(),
            trust_domain: self.trust_domain.clone(),
            ..Default::default()
        };
        Indexes {
            policy: Arc::new(Mutex::new(ztmesh_policy::Index::new(cluster))),
            outbound: Arc::new(Mutex::new(ztmesh_policy::outbound::OutboundIndex::new(
                &self.cluster_domain,
            ))),
            destination: Arc::new(Mutex::new(ztmesh_destination::Index::new(
                ztmesh_destination::DestinationCluster {
                    control_plane_ns: self.control_plane_ns.clone(),
                    trust_domain: self.trust_domain.clone(),
                    cluster_domain: self.cluster_domain.clone(),
                },
            ))),
            federation: self.sources.clone(),
        }
    }
}

fn server_tls(own: &OwnIdentity) -> Result<Arc<rustls::ServerConfig>, Error> {
    Ok(ztmesh_tls::server_config(
        own.store(),
        ztmesh_tls::TlsVersions::Tls13Only,
        &[b"h2"],
    )?)
}

/// Binds `addr` for `what`; the error names both.
async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}
