//! Trust anchors changed while connections run, with real rustls
//! handshakes in memory: an established connection keeps working, a new
//! handshake under a removed anchor fails and under an added one succeeds,
//! on both sides (the server checking clients, the client checking the
//! server). Also SPIFFE-only certificates (a URI SAN and no DNS name, as a
//! Workload API's X.509-SVID): matched exactly by their ID.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use ztmesh_test_support::{TestPki, csr_for};
use ztmesh_tls::*;

const API: &str = "api.payments.serviceaccount.identity.linkerd.cluster.local";
const WEB: &str = "web.payments.serviceaccount.identity.linkerd.cluster.local";
const SPIFFE_API: &str = "spiffe://cluster.local/ns/payments/sa/api";

type Creds = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn creds(pki: &TestPki, identity: &str) -> Creds {
    let id = ztmesh_identity::IdentityName::parse_dns(identity).unwrap();
    let (key, csr) = csr_for(identity);
    let csr = ztmesh_identity::csr::validate(&csr, &id).unwrap();
    let issued = pki
        .ca(Duration::from_secs(3600))
        .issue(&id, csr.public_key(), SystemTime::now())
        .unwrap();
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    (chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

/// An X.509-SVID as SPIRE issues it: the SPIFFE ID as the only SAN.
fn svid(pki: &TestPki, spiffe_id: &str) -> Creds {
    let issuer_der = pki.issuer().chain()[0].clone();
    let issuer_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.dir().join("issuer.key")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der, issuer_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe_id.try_into().unwrap())];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(pki.issuer().chain().iter().cloned());
    (chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

fn store(c: Creds) -> Arc<CredentialsStore> {
    let s = CredentialsStore::new();
    s.set(c.0, c.1).unwrap();
    s
}

fn roots(pkis: &[&TestPki]) -> Arc<rustls::RootCertStore> {
    let pem: Vec<u8> = pkis.iter().flat_map(|p| p.anchors_pem()).collect();
    roots_from_pem(&pem).unwrap()
}

/// Moves what `from` has to send into `to`.
macro_rules! pump {
    ($from:expr, $to:expr) => {{
        let mut buf = Vec::new();
        while $from.wants_write() {
            $from.write_tls(&mut buf).unwrap();
        }
        if buf.is_empty() {
            Ok(())
        } else {
            $to.read_tls(&mut &buf[..]).unwrap();
            $to.process_new_packets().map(|_| ())
        }
    }};
}

/// Runs a handshake to completion or failure; `Err` tells which side failed.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<(rustls::ClientConnection, rustls::ServerConnection), rustls::Error> {
    let mut c = rustls::ClientConnection::new(client, server_name("peer.example").unwrap())?;
    let mut s = rustls::ServerConnection::new(server)?;
    for _ in 0..10 {
        pump!(c, s)?;
        pump!(s, c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // The server's verdict on the client's certificate arrives last.
            pump!(c, s)?;
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

/// Application data still flows both ways.
fn still_works(c: &mut rustls::ClientConnection, s: &mut rustls::ServerConnection) {
    c.writer().write_all(b"ping").unwrap();
    pump!(c, s).unwrap();
    let mut got = [0u8; 4];
    s.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    s.writer().write_all(b"pong").unwrap();
    pump!(s, c).unwrap();
    c.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
}

fn configs(
    server_trust: &Arc<Trust>,
    client_trust: &Arc<Trust>,
    server_creds: Creds,
    client_creds: Creds,
    expect: &str,
) -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let server = mesh_server_config_live(
        store(server_creds),
        server_trust.clone(),
        TlsVersions::Tls13Only,
        &[],
    )
    .unwrap();
    let client = mesh_client_config_live(
        client_trust.clone(),
        store(client_creds),
        expect,
        TlsVersions::Tls13Only,
        &[],
    )
    .unwrap();
    (client, server)
}

fn is_unknown_issuer(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
        ) | rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate
        )
    )
}

/// The client (under anchor B) connects to a server (under anchor A);
/// each trusts the other's anchor, until one side drops it.
#[test]
fn a_changed_bundle_applies_to_new_handshakes_only() {
    let (a, b) = (TestPki::new(), TestPki::new());
    // Which side drops the peer's anchor: the server (checking the client's
    // certificate) or the client (checking the server's).
    for server_side in [true, false] {
        let server_trust = Trust::new(roots(&[&a, &b])).unwrap();
        let client_trust = Trust::new(roots(&[&a, &b])).unwrap();
        let (client, server) = configs(
            &server_trust,
            &client_trust,
            creds(&a, API),
            creds(&b, WEB),
            API,
        );
        let (mut c, mut s) =
            handshake(client.clone(), server.clone()).expect("both anchors trusted");
        assert_eq!(
            s.peer_certificates()
                .and_then(|p| p.first())
                .and_then(peer_identity)
                .as_deref(),
            Some(WEB)
        );

        // Remove the peer's anchor.
        let (trust, keep) = if server_side {
            (&server_trust, &a)
        } else {
            (&client_trust, &b)
        };
        trust.set(roots(&[keep])).unwrap();
        still_works(&mut c, &mut s);
        let err = handshake(client.clone(), server.clone())
            .expect_err("a new handshake under the removed anchor fails");
        assert!(
            is_unknown_issuer(&err),
            "server side {server_side}: {err:?}"
        );
        still_works(&mut c, &mut s);

        // Add it back: new handshakes succeed again.
        trust.set(roots(&[&a, &b])).unwrap();
        handshake(client, server).expect("an added anchor is trusted at once");
        still_works(&mut c, &mut s);
    }
}

#[test]
fn an_added_anchor_is_trusted_by_new_handshakes() {
    let (a, b) = (TestPki::new(), TestPki::new());
    let server_trust = Trust::new(roots(&[&a])).unwrap();
    let client_trust = Trust::new(roots(&[&a])).unwrap();
    // The server's certificate is from the new anchor B.
    let (client, server) = configs(
        &server_trust,
        &client_trust,
        creds(&b, API),
        creds(&a, WEB),
        API,
    );
    let err = handshake(client.clone(), server.clone()).expect_err("B is not trusted yet");
    assert!(is_unknown_issuer(&err), "{err:?}");
    client_trust.set(roots(&[&a, &b])).unwrap();
    assert_eq!(client_trust.roots().len(), 2);
    handshake(client, server).expect("B trusted after the change");
}

#[test]
fn spiffe_ids_are_matched_exactly_by_uri_san() {
    let pki = TestPki::new();
    let trust = Trust::new(roots(&[&pki])).unwrap();
    // (the server's certificate, the identity the client expects, accepted)
    let cases: [(Creds, &str, bool); 6] = [
        (svid(&pki, SPIFFE_API), SPIFFE_API, true),
        (
            svid(&pki, SPIFFE_API),
            "spiffe://cluster.local/ns/payments/sa/web",
            false,
        ),
        (
            svid(&pki, SPIFFE_API),
            "spiffe://cluster.local/ns/payments/sa/ap",
            false,
        ),
        (
            svid(&pki, SPIFFE_API),
            "spiffe://other.domain/ns/payments/sa/api",
            false,
        ),
        // A ztmesh certificate carries both forms: either is accepted.
        (creds(&pki, API), SPIFFE_API, true),
        (creds(&pki, API), API, true),
    ];
    for (i, (server_creds, expect, ok)) in cases.into_iter().enumerate() {
        let (client, server) = configs(&trust, &trust, server_creds, creds(&pki, WEB), expect);
        let got = handshake(client, server);
        assert_eq!(got.is_ok(), ok, "case {i}: {expect}: {:?}", got.err());
    }
}

#[test]
fn a_spiffe_only_peer_is_identified_by_its_spiffe_id() {
    let pki = TestPki::new();
    let (chain, _) = svid(&pki, SPIFFE_API);
    assert_eq!(peer_identity(&chain[0]).as_deref(), Some(SPIFFE_API));
    assert_eq!(spiffe_ids(&chain[0]), vec![SPIFFE_API.to_string()]);
    // DNS first when both are present, as linkerd2-proxy takes it.
    let (chain, _) = creds(&pki, API);
    assert_eq!(peer_identity(&chain[0]).as_deref(), Some(API));
}

/// The control plane's client config (no client certificate) follows the
/// bundle too, so a rotated anchor does not cut a proxy off its control
/// plane.
#[test]
fn the_control_plane_client_follows_the_bundle() {
    let (a, b) = (TestPki::new(), TestPki::new());
    let server = server_config(store(creds(&b, API)), TlsVersions::Tls13Only, &[]).unwrap();
    let trust = Trust::new(roots(&[&a])).unwrap();
    let client = client_config_live(trust.clone(), API, TlsVersions::Tls13Only, &[]).unwrap();
    let err = handshake(client.clone(), server.clone()).expect_err("B not trusted yet");
    assert!(is_unknown_issuer(&err), "{err:?}");
    trust.set(roots(&[&a, &b])).unwrap();
    handshake(client.clone(), server.clone()).expect("B trusted after the change");
    // And the name is still checked exactly.
    let other = client_config_live(trust, WEB, TlsVersions::Tls13Only, &[]).unwrap();
    handshake(other, server).expect_err("another identity is refused");
}
