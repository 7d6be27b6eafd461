//! The controller's SPIFFE federation flags: the bundle endpoint it
//! serves (`https_web` profile) and where the federated bundles it
//! follows (ClusterFederatedTrustDomain resources in the manifests) are
//! written for the proxies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub(super) struct FederationArgs {
    /// Serve this trust domain's SPIFFE bundle endpoint (https_web profile:
    /// GET answers the anchors of --identity-dir/ca.crt as a SPIFFE bundle,
    /// JWKS) over HTTPS on this address.
    #[arg(long, requires_all = ["bundle_endpoint_cert", "bundle_endpoint_key"])]
    bundle_endpoint_addr: Option<SocketAddr>,
    /// The bundle endpoint's serving certificate chain (PEM, leaf first;
    /// a Web PKI certificate for the name federated domains dial; read
    /// again when it changes).
    #[arg(long, requires = "bundle_endpoint_addr")]
    bundle_endpoint_cert: Option<PathBuf>,
    /// The bundle endpoint's private key (PEM).
    #[arg(long, requires = "bundle_endpoint_addr")]
    bundle_endpoint_key: Option<PathBuf>,
    /// The spiffe_refresh_hint the bundle endpoint serves.
    #[arg(long, default_value = "5m", value_parser = crate::duration)]
    bundle_endpoint_refresh_hint: Duration,
    /// CA roots (PEM) that verify the bundle endpoints of federated trust
    /// domains (the https_web profile) [default: the system's roots].
    #[arg(long)]
    federation_ca: Option<PathBuf>,
    /// Follow the trust domains the manifests' ClusterFederatedTrustDomain
    /// resources (spire.spiffe.io/v1alpha1) name, and write their bundles
    /// here for the proxies (ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE):
    /// {"trust_domain": LOCAL, "trust_domains": {DOMAIN: PEM}}.
    #[arg(long)]
    federated_bundles_file: Option<PathBuf>,
}

impl FederationArgs {
    /// The federation settings, if any flag asks for federation.
    pub(super) fn config(&self) -> Option<ztmesh_controller::FederationConfig> {
        if self.bundle_endpoint_addr.is_none() && self.federated_bundles_file.is_none() {
            return None;
        }
        let bundle_endpoint = match (
            self.bundle_endpoint_addr,
            &self.bundle_endpoint_cert,
            &self.bundle_endpoint_key,
        ) {
            (Some(addr), Some(cert), Some(key)) => Some(ztmesh_controller::BundleEndpointConfig {
                addr,
                cert: cert.clone(),
                key: key.clone(),
                refresh_hint: self.bundle_endpoint_refresh_hint,
            }),
            _ => None,
        };
        Some(ztmesh_controller::FederationConfig {
            bundle_endpoint,
            endpoint_ca: self.federation_ca.clone(),
            bundles_file: self.federated_bundles_file.clone(),
        })
    }
}
