//! Issue 14's whole path on a real API server (`ZTMESH_TEST_KUBECONFIG`,
//! from `scripts/test-kube`; needs root): the booksapp's plain
//! Deployments applied with kubectl to a namespace annotated
//! `linkerd.io/inject: enabled` and labelled to enforce injection; the API
//! server calls `ztmesh controller --kubernetes`'s webhook (by URL on the
//! host), which stores the pods with the proxy; the test plays kubelet
//! over exactly those pods (proxy-init, the proxy with the env and the
//! projected token the spec says, the app); webapp's GET of authors is
//! mTLS with both identities, traffic is refused by the seed's policy,
//! and a pod that opts out of injection is refused with the reason.
//! The flow is [`super::kube_pods::booksapp_over_the_mesh`]'s.

use super::kube_pods::{Injection, booksapp_over_the_mesh};

#[test]
#[ignore = "needs ZTMESH_TEST_KUBECONFIG and root: run scripts/test-kube"]
fn webhook_injected_booksapp_pods_run_with_mtls_and_policy() {
    booksapp_over_the_mesh(Injection::Webhook);
}
