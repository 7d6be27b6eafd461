//! TokenReview against a real API server (only when
//! `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): a token
//! projected for `identity.l5d.io` names its service account; one for
//! another audience, or garbage, is refused with the API's reason
//! (UNAUTHENTICATED); a review that cannot be made (the API server
//! unreachable, or refusing the controller's credentials) is no verdict on
//! the token: Certify answers UNAVAILABLE, with the reason.

mod support;

use support::kubectl;
use ztmesh_controller::TokenReviewer;
use ztmesh_identity::{ServiceAccount, TokenError};
use ztmesh_kube::token_review::KubeTokenReviewer;

#[tokio::test]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn token_review_names_the_service_account_or_refuses() {
    let kubeconfig = support::kubeconfig();
    let ns = support::namespace(&kubeconfig, "tr");
    kubectl(
        &kubeconfig,
        &["create", "serviceaccount", "books", "-n", &ns],
        None,
    );
    let good = kubectl(
        &kubeconfig,
        &[
            "create",
            "token",
            "books",
            "-n",
            &ns,
            "--audience",
            "identity.l5d.io",
        ],
        None,
    );
    let other_audience = kubectl(&kubeconfig, &["create", "token", "books", "-n", &ns], None);
    let client = ztmesh_kube::client(Some(std::path::Path::new(&kubeconfig)))
        .await
        .expect("client");
    let reviewer = KubeTokenReviewer::new(client);

    let reviewed = reviewer.review(good.as_bytes()).await;
    let refused_audience = reviewer.review(other_audience.as_bytes()).await;
    let refused_garbage = reviewer.review(b"not-a-token").await;
    let missing = reviewer.review(b"").await;
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );

    assert_eq!(
        reviewed,
        Ok(ServiceAccount {
            namespace: ns.clone(),
            name: "books".into()
        })
    );
    match refused_audience {
        Err(TokenError::Review(reason)) => assert!(reason.contains("audiences"), "{reason}"),
        other => panic!("another audience's token: {other:?}"),
    }
    assert!(
        matches!(refused_garbage, Err(TokenError::Review(_))),
        "{refused_garbage:?}"
    );
    assert_eq!(missing, Err(TokenError::Missing));
}

/// `kubeconfig`'s text with its server, or its bearer token, replaced.
fn altered_kubeconfig(
    kubeconfig: &std::ffi::OsStr,
    server: Option<&str>,
    token: Option<&str>,
) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    for cluster in config["clusters"].as_sequence_mut().expect("clusters") {
        if let Some(server) = server {
            cluster["cluster"]["server"] = server.into();
        }
    }
    for user in config["users"].as_sequence_mut().expect("users") {
        if let Some(token) = token {
            user["user"]["token"] = token.into();
        }
    }
    serde_yaml::to_string(&config).expect("YAML")
}

#[tokio::test]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn a_review_that_cannot_be_made_is_unavailable_not_a_refusal() {
    let kubeconfig = support::kubeconfig();
    let ns = support::namespace(&kubeconfig, "tu");
    kubectl(
        &kubeconfig,
        &["create", "serviceaccount", "books", "-n", &ns],
        None,
    );
    let good = kubectl(
        &kubeconfig,
        &[
            "create",
            "token",
            "books",
            "-n",
            &ns,
            "--audience",
            "identity.l5d.io",
        ],
        None,
    );
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "API server unreachable",
            altered_kubeconfig(&kubeconfig, Some(&format!("https://{closed}")), None),
            "onnect",
        ),
        (
            "API server refusing the controller's credentials",
            altered_kubeconfig(&kubeconfig, None, Some("not-a-valid-admin-token")),
            "Unauthorized",
        ),
    ];
    for (name, config, says) in cases {
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, config).expect("write kubeconfig");
        let client = ztmesh_kube::client(Some(&path)).await.expect("client");
        let reviewer = KubeTokenReviewer::new(client);
        let error = reviewer
            .review(good.as_bytes())
            .await
            .expect_err("no review, no service account");
        match &error {
            TokenError::Unavailable(reason) => assert!(reason.contains(says), "{name}: {reason}"),
            other => panic!("{name}: {other:?} is not Unavailable"),
        }
        let status = ztmesh_grpc::identity::status_for(&ztmesh_identity::CertifyError::from(error));
        eprintln!(
            "{name}: Certify answers {:?}: {}",
            status.code(),
            status.message()
        );
        assert_eq!(status.code(), tonic::Code::Unavailable, "{name}");
    }
}
