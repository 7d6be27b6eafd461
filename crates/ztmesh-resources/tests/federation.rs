//! ClusterFederatedTrustDomain as SPIRE's controller manager writes it:
//! loaded cluster scoped, and every field ztmesh cannot honour refused
//! with its reason.

use ztmesh_resources::federation::ProfileType;
use ztmesh_resources::{Resource, load_str};

fn doc(trust_domain: &str, url: &str, profile: &str) -> String {
    format!(
        "apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterFederatedTrustDomain
metadata:
  name: other
spec:
  trustDomain: {trust_domain}
  bundleEndpointURL: {url}
  bundleEndpointProfile:
    type: {profile}
  trustDomainBundle: '{{\"keys\": []}}'
"
    )
}

#[test]
fn cluster_federated_trust_domains_load_or_are_refused_table() {
    let ok = "https://127.0.24.1:8443/bundle";
    let cases: &[(&str, String, Option<&str>)] = &[
        ("https_web", doc("other.example", ok, "https_web"), None),
        (
            "https_spiffe refused",
            doc("other.example", ok, "https_spiffe"),
            Some("https_spiffe profile is not supported"),
        ),
        (
            "plain http refused",
            doc("other.example", "http://127.0.24.1/bundle", "https_web"),
            Some("is not an https:// URL"),
        ),
        (
            "a trust domain with upper case refused",
            doc("Other.example", ok, "https_web"),
            Some("is not a trust domain name"),
        ),
        (
            "an unknown profile refused",
            doc("other.example", ok, "http_web"),
            Some("unknown variant"),
        ),
    ];
    for (what, text, want) in cases {
        let loaded = load_str(text, "f.yaml");
        let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
        match want {
            None => {
                assert!(errors.is_empty(), "{what}: {errors:?}");
                let [Resource::ClusterFederatedTrustDomain(o)] = &loaded.resources[..] else {
                    panic!("{what}: {:?}", loaded.resources);
                };
                assert_eq!(o.spec.trust_domain, "other.example");
                assert_eq!(
                    o.spec.bundle_endpoint_profile.profile,
                    ProfileType::HttpsWeb
                );
                assert_eq!(
                    o.spec.trust_domain_bundle.as_deref(),
                    Some("{\"keys\": []}")
                );
                let key = loaded.resources[0].key();
                assert_eq!(key.namespace, "", "cluster scoped");
                assert_eq!(key.to_string(), "ClusterFederatedTrustDomain other");
            }
            Some(reason) => {
                assert!(loaded.resources.is_empty(), "{what}");
                assert!(
                    errors.iter().any(|e| e.contains(reason)),
                    "{what}: {errors:?}"
                );
            }
        }
    }
}
