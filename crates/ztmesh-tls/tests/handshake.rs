//! Real rustls handshakes in memory with the configs this crate builds.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use ztmesh_test_support::{TestPki, csr_for};
use ztmesh_tls::*;

const API: &str = "api.payments.serviceaccount.identity.linkerd.cluster.local";

fn creds(pki: &TestPki, identity: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let id = ztmesh_identity::IdentityName::parse_dns(identity).unwrap();
    let (key, csr) = csr_for(identity);
    let csr = ztmesh_identity::csr::validate(&csr, &id).unwrap();
    let issued = pki
        .ca(Duration::from_secs(3600))
        .issue(&id, csr.public_key(), std::time::SystemTime::now())
        .unwrap();
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    (chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

/// Runs a handshake to completion or failure.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: &str,
) -> Result<(rustls::ClientConnection, rustls::ServerConnection), rustls::Error> {
    let mut c = rustls::ClientConnection::new(client, server_name(name).unwrap())?;
    let mut s = rustls::ServerConnection::new(server)?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

fn setup() -> (TestPki, Arc<CredentialsStore>, Arc<rustls::RootCertStore>) {
    let pki = TestPki::new();
    let store = CredentialsStore::new();
    let (chain, key) = creds(&pki, API);
    store.set(chain, key).unwrap();
    let roots = roots_from_pem(&pki.anchors_pem()).unwrap();
    (pki, store, roots)
}

#[test]
fn tls13_with_the_hybrid_key_exchange_by_default() {
    let (_pki, store, roots) = setup();
    let server = server_config(store, TlsVersions::Tls13Only, &[b"h2"]).unwrap();
    let client = client_config(roots, None, TlsVersions::Tls13Only, &[b"h2"]).unwrap();
    let (c, _s) = handshake(client, server, API).unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(
        c.negotiated_key_exchange_group().unwrap().name(),
        rustls::NamedGroup::X25519MLKEM768
    );
    assert_eq!(c.alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn the_server_must_be_exactly_the_expected_identity() {
    let (_pki, store, roots) = setup();
    let server = server_config(store, TlsVersions::Tls13Only, &[]).unwrap();
    let client = client_config(roots, None, TlsVersions::Tls13Only, &[]).unwrap();
    let err = handshake(
        client,
        server,
        "web.payments.serviceaccount.identity.linkerd.cluster.local",
    )
    .expect_err("another identity is refused");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn other_anchors_are_refused() {
    let (_pki, store, _roots) = setup();
    let other = roots_from_pem(&TestPki::new().anchors_pem()).unwrap();
    let server = server_config(store, TlsVersions::Tls13Only, &[]).unwrap();
    let client = client_config(other, None, TlsVersions::Tls13Only, &[]).unwrap();
    let err = handshake(client, server, API).expect_err("refused");
    // Same anchor name, other key: found by name, refused by signature.
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
            )
        ),
        "{err:?}"
    );
}

#[test]
fn tls12_only_when_allowed() {
    let (_pki, store, roots) = setup();
    let legacy_client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
    );
    let strict = server_config(store.clone(), TlsVersions::Tls13Only, &[]).unwrap();
    let err = handshake(legacy_client.clone(), strict, API).expect_err("refused");
    assert!(
        matches!(
            err,
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOfferedOrEnabled)
        ),
        "{err:?}"
    );

    let lenient = server_config(store, TlsVersions::AllowTls12, &[]).unwrap();
    let (c, _) = handshake(legacy_client, lenient, API).unwrap();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
}

#[test]
fn new_credentials_apply_to_the_next_handshake() {
    let (pki, store, roots) = setup();
    let server = server_config(store.clone(), TlsVersions::Tls13Only, &[]).unwrap();
    // Without resumption: a resumed session reports the original certificate.
    let mut client = (*client_config(roots, None, TlsVersions::Tls13Only, &[]).unwrap()).clone();
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);
    let (c1, _) = handshake(client.clone(), server.clone(), API).unwrap();
    let (chain, key) = creds(&pki, API);
    let renewed = chain[0].clone();
    store.set(chain, key).unwrap();
    let (c2, _) = handshake(client, server, API).unwrap();
    assert_ne!(
        c1.peer_certificates().unwrap()[0],
        c2.peer_certificates().unwrap()[0]
    );
    assert_eq!(c2.peer_certificates().unwrap()[0], renewed);
}

#[test]
fn mismatched_key_is_refused_and_the_old_credentials_stay() {
    let (pki, store, _roots) = setup();
    let before = store.get().unwrap().cert[0].clone();
    let (chain, _) = creds(&pki, API);
    let (_, other_key) = creds(&pki, API);
    let err = store.set(chain, other_key).unwrap_err();
    assert!(matches!(err, TlsError::Mismatch(_)), "{err:?}");
    assert_eq!(store.get().unwrap().cert[0], before);
    assert!(roots_from_pem(b"no anchors here").is_err());
}

#[test]
fn mutual_tls_client_presents_its_identity() {
    let (pki, server_store, roots) = setup();
    let client_store = CredentialsStore::new();
    let web = "web.payments.serviceaccount.identity.linkerd.cluster.local";
    let (chain, key) = creds(&pki, web);
    client_store.set(chain.clone(), key).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .unwrap();
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(server_store),
    );
    let client = client_config(roots, Some(client_store), TlsVersions::Tls13Only, &[]).unwrap();
    let (_, s) = handshake(client, server, API).unwrap();
    assert_eq!(s.peer_certificates().unwrap()[0], chain[0]);
}
