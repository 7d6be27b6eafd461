//! The conformance suite: the same scenarios ([`scenarios`]) over every
//! store.
//!
//! - `file_store`: the manifests directory (ztmesh-store), one file per
//!   object, as a user would keep them.
//! - `kube_translation`: the Kubernetes store's state machine fed the
//!   objects as the API server sends them (server-set metadata and
//!   status added), with no server: what CI runs.
//! - `kube_api_server`: the Kubernetes store's watches against a real API
//!   server, objects applied with kubectl; runs only when
//!   `ZTMESH_TEST_KUBECONFIG` names one (`scripts/test-kube`), and passes
//!   without checking anything otherwise, saying so.

mod conformance {
    pub mod scenarios;
    pub mod stores;
}

use conformance::{scenarios, stores};

#[test]
fn file_store() {
    let mut store = stores::FileStore::new();
    block_on(scenarios::run(&mut store));
}

#[test]
fn kube_translation() {
    let mut store = stores::Translation::new();
    block_on(scenarios::run(&mut store));
}

#[test]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
fn kube_api_server() {
    let kubeconfig = std::env::var_os("ZTMESH_TEST_KUBECONFIG").expect(
        "ZTMESH_TEST_KUBECONFIG names a disposable cluster's kubeconfig (scripts/test-kube)",
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut store = stores::ApiServer::start(kubeconfig.into()).await;
        scenarios::run(&mut store).await;
        store.check_metric();
    });
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}
