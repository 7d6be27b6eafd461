//! Federated clients on open connections: their identity counts only
//! while their trust domain stays federated, at every HTTP request, and an
//! opaque connection is closed once it does not.

use super::authorize::{ConnectionAuthz, DefaultPolicy};
use super::policy::PortPolicy;
use super::tls::{ClientId, ClientTls};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    ca: String,
    trust: Arc<ztmesh_tls::Trust>,
    rx: tokio::sync::watch::Receiver<PortPolicy>,
    _tx: tokio::sync::watch::Sender<PortPolicy>,
}

impl Fixture {
    /// a.example federating b.example, a port that admits any identity.
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().pem();
        let trust = ztmesh_tls::Trust::from_pem(ca.as_bytes()).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(PortPolicy {
            server: Arc::new(DefaultPolicy::AllAuthenticated.server(&[])),
            from_controller: true,
        });
        let f = Self { ca, trust, rx, _tx };
        f.federate(&["b.example"]);
        f
    }

    fn federate(&self, domains: &[&str]) {
        let roots = ztmesh_tls::roots_from_pem(self.ca.as_bytes()).unwrap();
        let bundles = domains
            .iter()
            .map(|d| (d.to_string(), roots.clone()))
            .collect();
        self.trust.set_federation(Some(
            ztmesh_tls::Federation::new("a.example", bundles).unwrap(),
        ));
    }

    fn authz(&self, id: &str) -> ConnectionAuthz {
        ConnectionAuthz::new(
            self.rx.clone(),
            "10.0.0.1".parse().unwrap(),
            ClientTls::Terminated {
                client_id: Some(ClientId::new(id.to_string())),
            },
            "127.0.0.1:8080".parse().unwrap(),
            Arc::default(),
        )
        .with_federation(Some(&self.trust))
    }
}

#[test]
fn a_federated_client_counts_only_while_its_domain_is_federated() {
    let f = Fixture::new();
    let (foreign, local) = (
        f.authz("spiffe://b.example/ns/demo/sa/web"),
        f.authz("spiffe://a.example/ns/demo/sa/web"),
    );
    let allowed = |a: &ConnectionAuthz| {
        a.check_request(&http::Request::get("/").body(()).unwrap())
            .is_ok()
    };
    assert!(allowed(&foreign) && allowed(&local));
    // Un-federated: the open connection's identity no longer counts.
    f.federate(&[]);
    assert!(!allowed(&foreign), "b.example is no longer federated");
    assert!(allowed(&local), "local clients are unaffected");
    f.federate(&["b.example"]);
    assert!(allowed(&foreign), "federated again");
}

#[tokio::test(start_paused = true)]
async fn an_opaque_connection_from_an_unfederated_domain_is_closed() {
    let f = Fixture::new();
    let mut foreign = f.authz("spiffe://b.example/ns/demo/sa/web");
    assert!(
        tokio::time::timeout(Duration::from_secs(10), foreign.revoked())
            .await
            .is_err(),
        "kept while b.example is federated"
    );
    f.federate(&[]);
    tokio::time::timeout(Duration::from_secs(3), foreign.revoked())
        .await
        .expect("closed once b.example is no longer federated");
    let mut local = f.authz("spiffe://a.example/ns/demo/sa/web");
    assert!(
        tokio::time::timeout(Duration::from_secs(10), local.revoked())
            .await
            .is_err(),
        "a local client is never judged by the federation"
    );
}
