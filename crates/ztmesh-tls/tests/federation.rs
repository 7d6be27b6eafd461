//! Federated trust domains with real rustls handshakes in memory: a
//! server in trust domain cluster.local that federates b.example admits a
//! client whose SVID chains to b.example's bundle only for a b.example ID,
//! known by that ID; the same CA signing an cluster.local ID or a DNS identity
//! is refused, an unfederated domain is refused with its reason, and
//! un-federating applies to the next handshake. The client side too: a
//! federated server is verified for its exact SPIFFE ID, never for a DNS
//! name.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use ztmesh_test_support::{TestPki, csr_for};
use ztmesh_tls::*;

const API: &str = "api.demo.serviceaccount.identity.linkerd.cluster.local";
const B_WEB: &str = "spiffe://b.example/ns/demo/sa/web";

type Creds = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A leaf for `sans` under `pki`'s issuer.
fn leaf(pki: &TestPki, sans: &[&str]) -> Creds {
    let issuer_der = pki.issuer().chain()[0].clone();
    let issuer_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.dir().join("issuer.key")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der, issuer_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.strip_prefix("dns:") {
            Some(d) => rcgen::SanType::DnsName((*d).try_into().unwrap()),
            None => rcgen::SanType::URI((*s).try_into().unwrap()),
        })
        .collect();
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(pki.issuer().chain().iter().cloned());
    (chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

/// The mesh certificate Certify issues for `identity`.
fn mesh(pki: &TestPki, identity: &str) -> Creds {
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

fn store(c: Creds) -> Arc<CredentialsStore> {
    let s = CredentialsStore::new();
    s.set(c.0, c.1).unwrap();
    s
}

fn roots(pki: &TestPki) -> Arc<rustls::RootCertStore> {
    roots_from_pem(&pki.anchors_pem()).unwrap()
}

fn federation(local: &str, domains: &[(&str, &TestPki)]) -> Federation {
    let bundles: BTreeMap<String, _> = domains
        .iter()
        .map(|(d, p)| (d.to_string(), roots(p)))
        .collect();
    Federation::new(local, bundles).unwrap()
}

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

/// A handshake; on success, the identity the server learnt of the client.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    server_trust: &Trust,
) -> Result<Option<String>, rustls::Error> {
    let mut c = rustls::ClientConnection::new(client, server_name("peer.example").unwrap())?;
    let mut s = rustls::ServerConnection::new(server)?;
    for _ in 0..10 {
        pump!(c, s)?;
        pump!(s, c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            pump!(c, s)?;
            return Ok(s
                .peer_certificates()
                .and_then(|p| p.first())
                .and_then(|l| server_trust.peer_identity(l)));
        }
    }
    panic!("handshake did not finish");
}

/// Stands for "does not chain to the bundle": the test PKIs' anchors share
/// a subject, so webpki reports a wrong issuer as a bad signature.
const CHAIN: &str = "UnknownIssuer or BadSignature";

fn refused_for(e: &rustls::Error, reason: &str) -> bool {
    let e = e.to_string();
    match reason {
        CHAIN => e.contains("UnknownIssuer") || e.contains("BadSignature"),
        _ => e.contains(reason),
    }
}

/// The server (cluster.local, presenting a mesh certificate) checks the
/// client's certificate; the client trusts the server's anchor.
#[test]
fn a_federated_bundle_vouches_only_for_its_own_domain_table() {
    let (a, b, c) = (TestPki::new(), TestPki::new(), TestPki::new());
    let server_trust = Trust::new(roots(&a)).unwrap();
    server_trust.set_federation(Some(federation("cluster.local", &[("b.example", &b)])));
    let server = mesh_server_config_live(
        store(mesh(&a, API)),
        server_trust.clone(),
        TlsVersions::Tls13Only,
        &[],
    )
    .unwrap();
    let run = |client_creds: Creds| {
        let client = mesh_client_config(
            roots(&a),
            store(client_creds),
            API,
            TlsVersions::Tls13Only,
            &[],
        )
        .unwrap();
        handshake(client, server.clone(), &server_trust)
    };
    let not_federated = "trust domain \"c.example\" is not federated with \"cluster.local\"";
    // (what, client certificate, Ok(identity) or Err(part of the reason))
    let cases: Vec<(&str, Creds, Result<&str, &str>)> = vec![
        (
            "b's CA, b.example ID: admitted as that ID",
            leaf(&b, &[B_WEB]),
            Ok(B_WEB),
        ),
        (
            "b's CA, b.example ID and a DNS SAN: known by the SPIFFE ID",
            leaf(
                &b,
                &[
                    "dns:web.demo.serviceaccount.identity.linkerd.cluster.local",
                    B_WEB,
                ],
            ),
            Ok(B_WEB),
        ),
        (
            "b's CA signing a local (cluster.local-style) SPIFFE ID: refused",
            leaf(&b, &["spiffe://cluster.local/ns/demo/sa/web"]),
            Err(CHAIN),
        ),
        (
            "b's CA signing a local DNS identity: refused",
            mesh(&b, "web.demo.serviceaccount.identity.linkerd.cluster.local"),
            Err(CHAIN),
        ),
        (
            "a's (local) CA signing a b.example ID: refused",
            leaf(&a, &[B_WEB]),
            Err(CHAIN),
        ),
        (
            "c.example is not federated",
            leaf(&c, &["spiffe://c.example/ns/demo/sa/web"]),
            Err(not_federated),
        ),
        (
            "IDs of two domains",
            leaf(&b, &[B_WEB, "spiffe://cluster.local/ns/demo/sa/web"]),
            Err("several trust domains"),
        ),
        (
            "local CA, local identity: admitted as before",
            mesh(&a, "web.demo.serviceaccount.identity.linkerd.cluster.local"),
            Ok("web.demo.serviceaccount.identity.linkerd.cluster.local"),
        ),
    ];
    for (what, creds, want) in cases {
        let got = run(creds);
        match (want, got) {
            (Ok(id), Ok(peer)) => assert_eq!(peer.as_deref(), Some(id), "{what}"),
            (Err(reason), Err(e)) => assert!(refused_for(&e, reason), "{what}: {e}"),
            (want, got) => panic!("{what}: wanted {want:?}, got {got:?}"),
        }
    }

    // Un-federating applies to the next handshake.
    server_trust.set_federation(Some(federation("cluster.local", &[])));
    let err = run(leaf(&b, &[B_WEB])).expect_err("b.example is no longer federated");
    assert!(
        err.to_string().contains("\"b.example\" is not federated"),
        "{err}"
    );
    // No federation at all: the leaf's domain selects nothing, the local
    // bundle decides (b's CA is not in it).
    server_trust.set_federation(None);
    assert!(run(leaf(&b, &[B_WEB])).is_err());
    // A changed local bundle keeps the federation.
    server_trust.set_federation(Some(federation("cluster.local", &[("b.example", &b)])));
    server_trust.set(roots(&a)).unwrap();
    assert_eq!(run(leaf(&b, &[B_WEB])).unwrap().as_deref(), Some(B_WEB));
}

/// The client (cluster.local, federating b.example) checks a server in b.example.
#[test]
fn a_client_verifies_a_federated_server_for_its_exact_spiffe_id() {
    let (a, b) = (TestPki::new(), TestPki::new());
    const B_API: &str = "spiffe://b.example/ns/demo/sa/api";
    let client_trust = Trust::new(roots(&a)).unwrap();
    client_trust.set_federation(Some(federation("cluster.local", &[("b.example", &b)])));
    let run = |server_creds: Creds, expect: &str| {
        let server_trust = Trust::new(roots(&b)).unwrap();
        server_trust.set_federation(Some(federation("b.example", &[("cluster.local", &a)])));
        let server = mesh_server_config_live(
            store(server_creds),
            server_trust.clone(),
            TlsVersions::Tls13Only,
            &[],
        )
        .unwrap();
        let client = mesh_client_config_live(
            client_trust.clone(),
            store(leaf(&a, &["spiffe://cluster.local/ns/demo/sa/web"])),
            expect,
            TlsVersions::Tls13Only,
            &[],
        )
        .unwrap();
        handshake(client, server, &server_trust)
    };
    assert_eq!(
        run(leaf(&b, &[B_API]), B_API).unwrap().as_deref(),
        Some("spiffe://cluster.local/ns/demo/sa/web"),
        "each side federates the other"
    );
    let err = run(leaf(&b, &[B_API]), "spiffe://b.example/ns/demo/sa/other").unwrap_err();
    assert!(err.to_string().contains("NotValidForName"), "{err}");
    let dns = "api.demo.serviceaccount.identity.linkerd.b.example";
    let err = run(leaf(&b, &[&format!("dns:{dns}"), B_API]), dns).unwrap_err();
    assert!(err.to_string().contains("NotValidForName"), "{err}");
    let err = run(
        leaf(&b, &["spiffe://cluster.local/ns/demo/sa/api"]),
        "spiffe://cluster.local/ns/demo/sa/api",
    )
    .unwrap_err();
    assert!(refused_for(&err, CHAIN), "{err}");
}
