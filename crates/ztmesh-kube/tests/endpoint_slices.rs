//! EndpointSlices against a real API server (only when
//! `ZTMESH_TEST_KUBECONFIG` names one; `scripts/test-kube`): the
//! controller-manager fills a Service's slice once a Pod bound to a Node
//! is Ready with an IP (the test plays kubelet: a fake Node, a Binding
//! and a status patch), and the destination index, fed by the store,
//! serves that endpoint with the pod's identity; a pod no longer Ready
//! leaves it, and the Service's selector alone never adds one.

mod support;

use std::time::Duration;
use support::kubectl;
use ztmesh_controller::StoreEvent;
use ztmesh_destination::{DestinationCluster, Index};

const DEADLINE: Duration = Duration::from_secs(60);

/// `addr identity` (or `addr -`) of each endpoint of ns/books:7002.
fn endpoints(index: &std::sync::Mutex<Index>, ns: &str) -> Vec<String> {
    let index = index.lock().expect("index");
    index
        .endpoints(ns, "books", 7002)
        .endpoints
        .values()
        .map(|e| {
            let id = e.tls.as_ref().map_or("-", |t| t.identity.as_str());
            format!("{} {id}", e.addr)
        })
        .collect()
}

async fn wait_for(index: &std::sync::Mutex<Index>, ns: &str, what: &str, want: &[String]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = endpoints(index, ns);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: endpoints {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real API server: ZTMESH_TEST_KUBECONFIG (scripts/test-kube)"]
async fn service_endpoints_come_from_its_endpoint_slices() {
    let kubeconfig = support::kubeconfig();
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 1_000_000;
    let ns = format!("es{suffix}");
    let node = format!("fake-node-{suffix}");
    let client = ztmesh_kube::client(Some(kubeconfig.as_ref()))
        .await
        .expect("client");
    let mut feed = ztmesh_kube::start(client, "linkerd", Default::default())
        .await
        .expect("the store starts");
    let index = std::sync::Arc::new(std::sync::Mutex::new(Index::new(
        DestinationCluster::default(),
    )));
    let fed = index.clone();
    tokio::spawn(async move {
        while let Some(event) = feed.events.recv().await {
            let mut index = fed.lock().expect("index");
            match event {
                StoreEvent::Apply(r) => index.apply(*r),
                StoreEvent::Delete(k) => index.delete(&k),
                StoreEvent::EndpointsFromSlices => index.use_endpoint_slices(),
                StoreEvent::EndpointSlice(s) => index.apply_endpoint_slice(&s),
                StoreEvent::Synced | StoreEvent::Listing => {}
            }
        }
    });
    let objects = format!(
        r#"
apiVersion: v1
kind: Node
metadata: {{name: {node}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: books, namespace: {ns}}}
---
apiVersion: v1
kind: Service
metadata: {{name: books, namespace: {ns}}}
spec:
  selector: {{app: books}}
  ports: [{{name: http, port: 7002, targetPort: web}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: books-1
  namespace: {ns}
  labels: {{app: books, linkerd.io/control-plane-ns: linkerd}}
spec:
  serviceAccountName: books
  containers:
  - name: app
    image: buoyantio/booksapp:v0.0.5
    ports: [{{name: web, containerPort: 7002}}]
"#
    );
    kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&objects));
    // Not Ready, no IP: the selector matches, yet no endpoint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(endpoints(&index, &ns), Vec::<String>::new());
    // Play kubelet: bind the pod to the node, then report it Ready.
    kubectl(
        &kubeconfig,
        &["create", "-f", "-"],
        Some(&format!(
            "{{\"apiVersion\": \"v1\", \"kind\": \"Binding\", \"metadata\": {{\"name\": \"books-1\", \"namespace\": \"{ns}\"}}, \"target\": {{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"name\": \"{node}\"}}}}"
        )),
    );
    let status = |ready: &str| {
        format!(
            r#"{{"status":{{"phase":"Running","podIP":"10.7.0.5","podIPs":[{{"ip":"10.7.0.5"}}],"conditions":[{{"type":"Ready","status":"{ready}"}}]}}}}"#
        )
    };
    kubectl(
        &kubeconfig,
        &[
            "patch",
            "pod",
            "books-1",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status("True"),
        ],
        None,
    );
    let books = format!("10.7.0.5:7002 books.{ns}.serviceaccount.identity.linkerd.cluster.local");
    wait_for(&index, &ns, "the Ready pod is in the slice", &[books]).await;
    kubectl(
        &kubeconfig,
        &[
            "patch",
            "pod",
            "books-1",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status("False"),
        ],
        None,
    );
    wait_for(&index, &ns, "a pod no longer Ready leaves", &[]).await;
    kubectl(
        &kubeconfig,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
    kubectl(
        &kubeconfig,
        &["delete", "node", &node, "--wait=false"],
        None,
    );
}
