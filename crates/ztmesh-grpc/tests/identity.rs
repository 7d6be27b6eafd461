//! Identity.Certify over real gRPC on loopback: wire format, status codes,
//! and request size limits.

use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use std::time::{Duration, SystemTime};
use tonic::Code;
use ztmesh_test_support::control_plane::serve_identity;
use ztmesh_test_support::{TestPki, csr_for};

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";

async fn client(
    pki: &TestPki,
) -> (
    IdentityClient<tonic::transport::Channel>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (addr, stop) = serve_identity(pki, Duration::from_secs(86400)).await;
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
            .into(),
        roots: None,
    })
    .unwrap();
    (IdentityClient::new(channel), stop)
}

#[tokio::test]
async fn status_codes_table() {
    let pki = TestPki::new();
    let (mut client, _stop) = client(&pki).await;
    let (_key, csr) = csr_for(BOOKS);
    let pem_csr = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![BOOKS.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    };
    let token = pki.token("booksapp", "books").into_bytes();
    let expired = pki
        .token_issued_at(
            "booksapp",
            "books",
            Duration::from_secs(1),
            SystemTime::now() - Duration::from_secs(60),
        )
        .into_bytes();
    let other_sa = pki.token("booksapp", "webapp").into_bytes();

    let cases: Vec<(&str, &str, Vec<u8>, Vec<u8>, Code, &str)> = vec![
        ("DER CSR", BOOKS, token.clone(), csr.clone(), Code::Ok, ""),
        ("PEM CSR", BOOKS, token.clone(), pem_csr, Code::Ok, ""),
        (
            "malformed CSR",
            BOOKS,
            token.clone(),
            b"\x30\x82garbage".to_vec(),
            Code::InvalidArgument,
            "malformed",
        ),
        (
            "empty CSR",
            BOOKS,
            token.clone(),
            vec![],
            Code::InvalidArgument,
            "empty",
        ),
        (
            "no identity",
            "",
            token.clone(),
            csr.clone(),
            Code::InvalidArgument,
            "not an identity name",
        ),
        (
            "no token",
            BOOKS,
            vec![],
            csr.clone(),
            Code::Unauthenticated,
            "no token was sent",
        ),
        (
            "garbage token",
            BOOKS,
            b"abc".to_vec(),
            csr.clone(),
            Code::Unauthenticated,
            "not a JWT",
        ),
        (
            "expired token",
            BOOKS,
            expired,
            csr.clone(),
            Code::Unauthenticated,
            "expired",
        ),
        (
            "another SA's token",
            BOOKS,
            other_sa,
            csr.clone(),
            Code::PermissionDenied,
            "booksapp/webapp",
        ),
    ];
    for (name, identity, token, csr, code, text) in cases {
        let got = client
            .certify(CertifyRequest {
                identity: identity.into(),
                token,
                certificate_signing_request: csr,
            })
            .await;
        match got {
            Ok(rsp) => {
                assert_eq!(code, Code::Ok, "{name}: expected {code:?}");
                let rsp = rsp.into_inner();
                assert_eq!(rsp.leaf_certificate[0], 0x30, "{name}: the leaf is DER");
                assert_eq!(rsp.intermediate_certificates.len(), 1, "{name}");
                assert_eq!(
                    rsp.intermediate_certificates[0],
                    pki.issuer().chain()[0].to_vec()
                );
                let until = SystemTime::try_from(rsp.valid_until.unwrap()).unwrap();
                let left = until.duration_since(SystemTime::now()).unwrap();
                assert!(
                    left > Duration::from_secs(86390) && left <= Duration::from_secs(86400),
                    "{name}: {left:?}"
                );
            }
            Err(status) => {
                assert_eq!(status.code(), code, "{name}: {status:?}");
                assert!(
                    status.message().contains(text),
                    "{name}: {}",
                    status.message()
                );
            }
        }
    }
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let pki = TestPki::new();
    let (mut client, _stop) = client(&pki).await;
    let (_key, csr) = csr_for(BOOKS);
    let status = client
        .certify(CertifyRequest {
            identity: BOOKS.into(),
            token: vec![b'a'; 1024 * 1024],
            certificate_signing_request: csr.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{}",
        status.message()
    );
    // The service is still there for well-formed requests.
    client
        .certify(CertifyRequest {
            identity: BOOKS.into(),
            token: pki.token("booksapp", "books").into_bytes(),
            certificate_signing_request: csr,
        })
        .await
        .unwrap();
}
