//! TokenReview against a real API server (only when
//! `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): a token
//! projected for `identity.l5d.io` names its service account; one for
//! another audience, or garbage, is refused with the API's reason.

mod support;

use support::kubectl;
use ztmesh_controller::TokenReviewer;
use ztmesh_identity::{ServiceAccount, TokenError};
use ztmesh_kube::token_review::KubeTokenReviewer;

#[tokio::test]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn token_review_names_the_service_account_or_refuses() {
    let kubeconfig = std::env::var_os("ZTMESH_TEST_KUBECONFIG").expect(
        "ZTMESH_TEST_KUBECONFIG names a disposable cluster's kubeconfig (scripts/test-kube)",
    );
    let ns = format!(
        "tr{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            % 1_000_000
    );
    kubectl(&kubeconfig, &["create", "namespace", &ns], None);
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
