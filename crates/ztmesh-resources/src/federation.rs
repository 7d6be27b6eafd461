//! `spire.spiffe.io` ClusterFederatedTrustDomain (v1alpha1), shaped as
//! SPIRE's controller manager defines it: a foreign trust domain, where
//! its bundle endpoint is and which profile it speaks, and optionally its
//! bundle to start from (`trustDomainBundle`, the SPIFFE bundle JSON).
//! Cluster scoped. ztmesh reads the `https_web` profile only; a resource
//! naming `https_spiffe` is refused (see `validate`), never half applied.

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterFederatedTrustDomainSpec {
    /// The foreign trust domain's name (`other.example`).
    pub trust_domain: String,
    /// Where its bundle is served (`https://host[:port]/path`).
    #[serde(rename = "bundleEndpointURL")]
    pub bundle_endpoint_url: String,
    pub bundle_endpoint_profile: BundleEndpointProfile,
    /// The bundle to use until the endpoint answers (SPIFFE bundle JSON).
    #[serde(default)]
    pub trust_domain_bundle: Option<String>,
    /// SPIRE's class name, for which SPIRE installation the resource is
    /// meant; read and ignored.
    #[serde(default)]
    pub class_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEndpointProfile {
    #[serde(rename = "type")]
    pub profile: ProfileType,
    /// The endpoint's SPIFFE ID (the `https_spiffe` profile's).
    #[serde(default, rename = "endpointSPIFFEID")]
    pub endpoint_spiffe_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ProfileType {
    /// The endpoint's server certificate is a Web PKI one.
    #[serde(rename = "https_web")]
    HttpsWeb,
    /// The endpoint authenticates with an X.509-SVID of the foreign domain.
    #[serde(rename = "https_spiffe")]
    HttpsSpiffe,
}
