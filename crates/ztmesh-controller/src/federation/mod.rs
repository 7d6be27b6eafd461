//! SPIFFE federation: the controller's bundle endpoint and the foreign
//! trust domains' bundles it follows.
//!
//! Layout, leaf first:
//! - `bundle`: the SPIFFE bundle document (JWKS), parsed strictly and
//!   encoded from the local anchors.
//! - `fetch`: one `GET` of a foreign `https_web` bundle endpoint.
//! - `endpoint`: the local bundle endpoint (HTTPS, `https_web` profile).
//! - `domains`: one task per ClusterFederatedTrustDomain, and the bundle
//!   set file the proxies follow (`ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE`).
//!
//! The resources arrive through [`Sources`], which the manifests scans and
//! the store feed update as they do the indexes.

mod bundle;
mod domains;
mod endpoint;
mod fetch;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use ztmesh_resources::Resource;
use ztmesh_resources::load::ResourceKey;

pub(crate) use domains::SourceSet;

/// The federation settings (`Builder::federation`).
#[derive(Clone, Debug, Default)]
pub struct FederationConfig {
    /// Serve the local bundle here (HTTPS) with this certificate chain and
    /// key (PEM files, read again when they change).
    pub bundle_endpoint: Option<BundleEndpointConfig>,
    /// CA roots (PEM) that verify foreign bundle endpoints; the system's
    /// roots when None.
    pub endpoint_ca: Option<PathBuf>,
    /// Where the federated bundles are written for the proxies.
    pub bundles_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct BundleEndpointConfig {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The `spiffe_refresh_hint` served.
    pub refresh_hint: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("the bundle endpoint's certificate: {0}")]
    ServingCert(String),
    #[error("binding the bundle endpoint to {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the bundle endpoints' CA roots {}: {reason}", path.display())]
    EndpointCa { path: PathBuf, reason: String },
}

/// The ClusterFederatedTrustDomains, as the resource stores apply them.
#[derive(Clone)]
pub(crate) struct Sources(Arc<watch::Sender<SourceSet>>);

impl Sources {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::channel(SourceSet::new()).0))
    }

    pub(crate) fn apply(&self, resource: &Resource) {
        if let Resource::ClusterFederatedTrustDomain(o) = resource {
            let (name, spec) = (o.name().to_string(), o.spec.clone());
            self.0
                .send_if_modified(|set| set.insert(name, spec.clone()) != Some(spec));
        }
    }

    pub(crate) fn delete(&self, key: &ResourceKey) {
        if key.kind == "ClusterFederatedTrustDomain" {
            self.0
                .send_if_modified(|set| set.remove(&key.name).is_some());
        }
    }
}

/// What [`prepare`] checked and bound, ready to run.
pub(crate) struct Prepared {
    endpoint: Option<endpoint::Endpoint>,
    domains: domains::Domains,
}

impl Prepared {
    pub(crate) fn endpoint_addr(&self) -> Option<SocketAddr> {
        self.endpoint
            .as_ref()
            .map(|e| e.listener.local_addr().expect("a bound listener"))
    }

    pub(crate) fn spawn<F>(self, stopped: impl Fn() -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(endpoint) = self.endpoint {
            tokio::spawn(endpoint::serve(endpoint, stopped()));
        }
        tokio::spawn(self.domains.run(stopped()));
    }
}

/// Loads the certificates and binds the bundle endpoint, when the
/// builder asks for federation.
pub(crate) async fn prepare(
    config: Option<&FederationConfig>,
    local: &str,
    anchors: PathBuf,
    sources: &Sources,
) -> Result<Option<Prepared>, FederationError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let endpoint = match &config.bundle_endpoint {
        Some(e) => {
            let (creds, tls) =
                endpoint::server_tls(&e.cert, &e.key).map_err(FederationError::ServingCert)?;
            Some(endpoint::Endpoint {
                tls,
                creds,
                cert: e.cert.clone(),
                key: e.key.clone(),
                listener: TcpListener::bind(e.addr).await.map_err(|source| {
                    FederationError::Bind {
                        addr: e.addr,
                        source,
                    }
                })?,
                anchors,
                refresh_hint: e.refresh_hint,
            })
        }
        None => None,
    };
    let roots = match &config.endpoint_ca {
        Some(path) => std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| ztmesh_tls::roots_from_pem(&pem).map_err(|e| e.to_string()))
            .map_err(|reason| FederationError::EndpointCa {
                path: path.clone(),
                reason,
            })?,
        None => fetch::system_roots(),
    };
    Ok(Some(Prepared {
        endpoint,
        domains: domains::Domains {
            local: local.to_string(),
            sources: sources.0.subscribe(),
            tls: fetch::client_tls(roots),
            file: config.bundles_file.clone(),
        },
    }))
}
