//! Issued leaves: their shape, and that a standard verifier (webpki, as
//! rustls uses it) accepts them for exactly their identity.

use std::time::{Duration, SystemTime};
use x509_parser::prelude::*;
use ztmesh_identity::ca::CaError;
use ztmesh_identity::csr::validate;
use ztmesh_test_support::{TestPki, csr_for};

const DAY: Duration = Duration::from_secs(86400);

#[test]
fn leaf_profile() {
    let pki = TestPki::new();
    let ca = pki.ca(DAY);
    let id = pki.identity("payments", "api");
    let (_key, der) = csr_for(&id.to_string());
    let csr = validate(&der, &id).unwrap();
    let now = SystemTime::now();
    let issued = ca.issue(&id, csr.public_key(), now).unwrap();

    let (_, leaf) = X509Certificate::from_der(&issued.leaf).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![
            GeneralName::DNSName("api.payments.serviceaccount.identity.linkerd.cluster.local"),
            GeneralName::URI("spiffe://cluster.local/ns/payments/sa/api"),
        ],
        "identity first, SPIFFE ID second"
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(!leaf.is_ca());
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now_s - 11..=now_s - 9).contains(&nb),
        "notBefore 10s in the past"
    );
    assert_eq!(na - now_s, 86400);
    assert_eq!(
        issued
            .valid_until
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        na
    );
    assert_eq!(issued.intermediates, pki.issuer().chain().to_vec());

    // Serials are random and positive.
    let again = ca.issue(&id, csr.public_key(), now).unwrap();
    let (_, leaf2) = X509Certificate::from_der(&again.leaf).unwrap();
    assert_ne!(leaf.raw_serial(), leaf2.raw_serial());
    assert!(leaf.raw_serial()[0] < 0x80 && leaf.raw_serial().len() == 16);

    // webpki accepts it for its own identity, and for no other.
    let anchors = pki.anchors_pem();
    let anchor_der = ztmesh_identity::pem::certificates(&anchors, "ca.crt").unwrap();
    let anchors = vec![
        webpki::anchor_from_trusted_cert(&anchor_der[0])
            .unwrap()
            .to_owned(),
    ];
    let ee = webpki::EndEntityCert::try_from(&issued.leaf).unwrap();
    let verify = |name: &str| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &issued.intermediates,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        ee.verify_is_valid_for_subject_name(&rustls_pki_types::ServerName::try_from(name).unwrap())
    };
    verify("api.payments.serviceaccount.identity.linkerd.cluster.local").unwrap();
    assert!(verify("web.payments.serviceaccount.identity.linkerd.cluster.local").is_err());
}

/// An X.509-SVID (what `ztmesh agent` serves) names the workload by its
/// SPIFFE ID alone, with the same signature profile as a mesh leaf.
#[test]
fn svid_profile() {
    let pki = TestPki::new();
    let ca = pki.ca(DAY);
    let id = pki.identity("payments", "api");
    let (_key, der) = csr_for(&id.to_string());
    let csr = validate(&der, &id).unwrap();
    let issued = ca
        .issue_svid(&id, csr.public_key(), SystemTime::now())
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&issued.leaf).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/payments/sa/api"
        )],
    );
    assert_eq!(leaf.subject().iter_common_name().count(), 0, "no CN");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!leaf.is_ca());
    assert!(
        leaf.basic_constraints().unwrap().is_some(),
        "cA=false stated"
    );
}

#[test]
fn lifetime_is_clamped_to_the_issuer() {
    let pki = TestPki::new();
    let ca = pki.ca(Duration::from_secs(10 * 365 * 86400));
    let id = pki.identity("a", "b");
    let (_key, der) = csr_for(&id.to_string());
    let csr = validate(&der, &id).unwrap();
    let issued = ca.issue(&id, csr.public_key(), SystemTime::now()).unwrap();
    let slack = Duration::from_secs(1);
    assert!(
        issued.valid_until <= ca.issuer().not_after()
            && issued.valid_until + slack >= ca.issuer().not_after()
    );

    // Once the issuer has expired, nothing is signed.
    let later = ca.issuer().not_after() + Duration::from_secs(1);
    let err = ca.issue(&id, csr.public_key(), later).unwrap_err();
    assert!(matches!(err, CaError::IssuerExpired(_)), "{err}");
}
