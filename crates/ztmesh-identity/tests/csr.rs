//! CSR validation, as a table of requests the CA must accept or refuse.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use ztmesh_identity::TrustDomain;
use ztmesh_identity::csr::{CsrError, validate};

const ID: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn csr(sans: Vec<SanType>, cn: Option<&str>, is_ca: bool, key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params.serialize_request(key).unwrap().der().to_vec()
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

#[test]
fn csr_table() {
    let requested = TrustDomain::default().parse_identity(ID).unwrap();
    let key = p256();
    let good = csr(vec![dns(ID)], None, false, &key);
    let good_pem = {
        let mut params = CertificateParams::new(vec![ID.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    };
    let bad_sig = {
        let mut b = good.clone();
        let n = b.len();
        b[n - 3] ^= 0x55;
        b
    };
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let other = "admin.booksapp.serviceaccount.identity.linkerd.cluster.local";
    let uri = SanType::URI(
        "spiffe://cluster.local/ns/booksapp/sa/books"
            .try_into()
            .unwrap(),
    );
    let ip = SanType::IpAddress("10.0.0.1".parse().unwrap());
    let email = SanType::Rfc822Name("a@b.c".try_into().unwrap());

    let cases: Vec<(&str, Vec<u8>, Result<(), CsrError>)> = vec![
        ("DER with the identity", good.clone(), Ok(())),
        ("PEM with the identity", good_pem, Ok(())),
        (
            "CN equal to the identity",
            csr(vec![dns(ID)], Some(ID), false, &key),
            Ok(()),
        ),
        ("empty", vec![], Err(CsrError::Empty)),
        (
            "garbage",
            b"hello world".to_vec(),
            Err(CsrError::NotDerOrPem),
        ),
        (
            "PEM of a certificate",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            Err(CsrError::NotDerOrPem),
        ),
        (
            "truncated DER",
            good[..good.len() / 2].to_vec(),
            Err(CsrError::Malformed(String::new())),
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0, 0]].concat(),
            Err(CsrError::Malformed(String::new())),
        ),
        ("bad signature", bad_sig, Err(CsrError::BadSignature)),
        (
            "P-384 key",
            csr(vec![dns(ID)], None, false, &p384),
            Err(CsrError::NotP256),
        ),
        (
            "Ed25519 key",
            csr(vec![dns(ID)], None, false, &ed),
            Err(CsrError::NotP256),
        ),
        (
            "no SAN",
            csr(vec![], Some(ID), false, &key),
            Err(CsrError::NoDnsName(ID.into())),
        ),
        (
            "two DNS SANs",
            csr(vec![dns(ID), dns(other)], None, false, &key),
            Err(CsrError::ManyDnsNames(2)),
        ),
        (
            "another identity",
            csr(vec![dns(other)], None, false, &key),
            Err(CsrError::NameMismatch {
                csr: other.into(),
                requested: ID.into(),
            }),
        ),
        (
            "other CN",
            csr(vec![dns(ID)], Some("admin"), false, &key),
            Err(CsrError::BadCommonName("admin".into())),
        ),
        (
            "URI SAN",
            csr(vec![dns(ID), uri], None, false, &key),
            Err(CsrError::ForbiddenSan("URI")),
        ),
        (
            "IP SAN",
            csr(vec![dns(ID), ip], None, false, &key),
            Err(CsrError::ForbiddenSan("IP address")),
        ),
        (
            "email SAN",
            csr(vec![dns(ID), email], None, false, &key),
            Err(CsrError::ForbiddenSan("email address")),
        ),
        (
            "CA bit",
            csr(vec![dns(ID)], None, true, &key),
            Err(CsrError::CaRequested),
        ),
    ];
    for (name, input, expected) in cases {
        let got = validate(&input, &requested).map(|v| {
            assert_eq!(v.identity(), &requested);
        });
        match (&expected, &got) {
            // Parser messages are the parser's; only the kind is asserted.
            (Err(CsrError::Malformed(_)), Err(CsrError::Malformed(msg))) => {
                assert!(!msg.is_empty(), "{name}")
            }
            _ => assert_eq!(got, expected, "case {name:?}"),
        }
        if let Err(e) = &got {
            assert!(
                e.to_string().contains("certificate signing request"),
                "{name}: {e}"
            );
        }
    }
}
