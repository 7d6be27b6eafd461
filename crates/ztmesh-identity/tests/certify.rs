//! The whole Certify operation: token, CSR and identity checks in order.

use std::time::{Duration, SystemTime};
use ztmesh_identity::{CertifyError, CertifyRequest, TokenError, certify};
use ztmesh_test_support::{TestPki, csr_for};

#[tokio::test]
async fn certify_table() {
    let pki = TestPki::new();
    let ca = pki.ca(Duration::from_secs(86400));
    let verifier = pki.token_signer().verifier();
    let books = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
    let (_k, books_csr) = csr_for(books);
    let books_token = pki.token("booksapp", "books");
    let webapp_token = pki.token("booksapp", "webapp");
    let expired_token = pki.token_issued_at(
        "booksapp",
        "books",
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    );
    let foreign_token = ztmesh_identity::token::TokenSigner::generate()
        .unwrap()
        .sign(
            &ztmesh_identity::ServiceAccount {
                namespace: "booksapp".into(),
                name: "books".into(),
            },
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();

    type Check = fn(&CertifyError) -> bool;
    let cases: Vec<(&str, &str, &[u8], &[u8], Option<Check>)> = vec![
        ("valid", books, books_token.as_bytes(), &books_csr, None),
        (
            "bad identity",
            "books",
            books_token.as_bytes(),
            &books_csr,
            Some(|e| matches!(e, CertifyError::BadIdentity { .. })),
        ),
        (
            "other trust domain",
            "books.booksapp.serviceaccount.identity.linkerd.example.org",
            books_token.as_bytes(),
            &books_csr,
            Some(|e| matches!(e, CertifyError::BadIdentity { .. })),
        ),
        (
            "garbage CSR",
            books,
            books_token.as_bytes(),
            b"\x30\x03abc",
            Some(|e| matches!(e, CertifyError::BadCsr(_))),
        ),
        (
            "no token",
            books,
            b"",
            &books_csr,
            Some(|e| matches!(e, CertifyError::Unauthenticated(TokenError::Missing))),
        ),
        (
            "expired token",
            books,
            expired_token.as_bytes(),
            &books_csr,
            Some(|e| matches!(e, CertifyError::Unauthenticated(TokenError::Expired(_)))),
        ),
        (
            "foreign token",
            books,
            foreign_token.as_bytes(),
            &books_csr,
            Some(|e| matches!(e, CertifyError::Unauthenticated(TokenError::BadSignature))),
        ),
        (
            "another SA's token",
            books,
            webapp_token.as_bytes(),
            &books_csr,
            Some(|e| matches!(e, CertifyError::IdentityMismatch { .. })),
        ),
    ];
    for (name, identity, token, csr, expected) in cases {
        let got = certify(
            CertifyRequest {
                identity,
                token,
                csr,
            },
            &verifier,
            &ca,
            SystemTime::now(),
        )
        .await;
        match (expected, got) {
            (None, Ok(issued)) => assert!(!issued.leaf.is_empty(), "{name}"),
            (Some(check), Err(e)) => assert!(check(&e), "{name}: {e:?}"),
            (_, got) => panic!("{name}: unexpected {got:?}"),
        }
    }

    let err = certify(
        CertifyRequest {
            identity: books,
            token: webapp_token.as_bytes(),
            csr: &books_csr,
        },
        &verifier,
        &ca,
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the token is for service account booksapp/webapp, whose identity is webapp.booksapp.serviceaccount.identity.linkerd.cluster.local, but the request is for books.booksapp.serviceaccount.identity.linkerd.cluster.local"
    );
}
