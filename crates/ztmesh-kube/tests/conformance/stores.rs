//! The stores the scenarios run over (see `conformance.rs`).

use super::scenarios::{Store, allowed};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ztmesh_controller::StoreEvent;
use ztmesh_kube::kinds::{self, Kind};
use ztmesh_kube::state::{StoreState, WatchEvent};
use ztmesh_policy::{ClusterInfo, Index};

const DEADLINE: Duration = Duration::from_secs(30);

fn new_index() -> Index {
    Index::new(ClusterInfo {
        control_plane_ns: "linkerd".into(),
        ..Default::default()
    })
}

/// The documents of a YAML stream, as JSON.
fn documents(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_json::Value::deserialize(d).expect("test YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// kubectl's name of a kind: `plural.group` (`plural` in the core group).
fn plural(object: &serde_json::Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let plural = match kind.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{kind}s"),
    };
    match object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .rsplit_once('/')
    {
        Some((group, _)) => format!("{plural}.{group}"),
        None => plural,
    }
}

fn id(object: &serde_json::Value) -> (String, String, String) {
    let meta = &object["metadata"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (
        plural(object),
        text(&meta["namespace"]),
        text(&meta["name"]),
    )
}

fn summary(index: &Index) -> String {
    let mut out = String::new();
    for (ns, wl, _) in index.workloads() {
        if let ztmesh_policy::WorkloadRef::Pod(pod) = wl {
            for port in [7001, 8080, 9090] {
                out += &format!("\n  {ns}/{pod}:{port} {:?}", allowed(index, ns, pod, port));
            }
        }
    }
    out
}

/// Applies a store's updates to the index.
fn apply(index: &mut Index, events: Vec<StoreEvent>) {
    for event in events {
        match event {
            StoreEvent::Apply(r) => index.apply(*r),
            StoreEvent::Delete(key) => index.delete(&key),
            StoreEvent::Synced
            | StoreEvent::Listing
            | StoreEvent::EndpointsFromSlices
            | StoreEvent::EndpointSlice(_) => {}
        }
    }
}

/// The manifests directory, one file per object.
pub struct FileStore {
    dir: tempfile::TempDir,
    store: ztmesh_store::ManifestDir,
    index: Index,
}

impl FileStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ztmesh_store::ManifestDir::new(dir.path());
        Self {
            dir,
            store,
            index: new_index(),
        }
    }

    fn file(&self, (kind, ns, name): &(String, String, String)) -> PathBuf {
        self.dir.path().join(format!("{kind}--{ns}--{name}.yaml"))
    }

    fn scan(&mut self) {
        let changes = self.store.scan();
        let mut events: Vec<StoreEvent> =
            changes.delete.into_iter().map(StoreEvent::Delete).collect();
        events.extend(
            changes
                .apply
                .into_iter()
                .map(|r| StoreEvent::Apply(Box::new(r))),
        );
        apply(&mut self.index, events);
    }
}

impl Store for FileStore {
    fn prefix(&self) -> &str {
        "file"
    }

    async fn apply(&mut self, yaml: &str) {
        for doc in documents(yaml) {
            let text = serde_yaml::to_string(&doc).expect("YAML");
            std::fs::write(self.file(&id(&doc)), text).expect("write");
        }
        self.scan();
    }

    async fn delete(&mut self, kind: &str, ns: &str, name: &str) {
        std::fs::remove_file(self.file(&(kind.into(), ns.into(), name.into()))).expect("remove");
        self.scan();
    }

    async fn wait_for(&mut self, what: &str, cond: &(dyn Fn(&Index) -> bool + Sync)) {
        self.scan();
        assert!(
            cond(&self.index),
            "file store: {what}; index:{}",
            summary(&self.index)
        );
    }

    async fn refused(&mut self, object: &str) -> Option<Vec<String>> {
        self.scan();
        self.store
            .refused()
            .into_iter()
            .find(|s| s.reasons.iter().any(|r| r.contains(object)))
            .map(|s| s.reasons)
    }
}

/// The Kubernetes store's state machine, fed objects as the API server
/// sends them.
pub struct Translation {
    state: StoreState,
    index: Index,
    last: BTreeMap<(String, String, String), serde_json::Value>,
    version: u64,
}

fn all_kinds() -> Vec<Kind> {
    kinds::core()
        .into_iter()
        .map(|(k, _)| k)
        .chain(kinds::CUSTOM)
        .collect()
}

impl Translation {
    pub fn new() -> Self {
        let mut state = StoreState::new(all_kinds(), "linkerd", Default::default());
        let mut index = new_index();
        let mut events = Vec::new();
        for i in 0..state.kinds().len() {
            events.extend(state.handle(i, WatchEvent::Init));
            events.extend(state.handle(i, WatchEvent::InitDone));
        }
        assert!(
            matches!(events.last(), Some(StoreEvent::Synced)),
            "synced once every kind is listed"
        );
        apply(&mut index, events);
        Self {
            state,
            index,
            last: BTreeMap::new(),
            version: 1,
        }
    }

    fn kind_of(&self, object: &serde_json::Value) -> usize {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = object["kind"].as_str().unwrap_or_default();
        self.state
            .kinds()
            .iter()
            .position(|k| k.group == group && k.kind == kind)
            .expect("a watched kind")
    }

    /// What the API server adds to a stored object.
    fn as_served(&mut self, mut object: serde_json::Value) -> serde_json::Value {
        self.version += 1;
        let api_version = object["apiVersion"].clone();
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.insert("uid".into(), format!("uid-{}", self.version).into());
        meta.insert("resourceVersion".into(), self.version.to_string().into());
        meta.insert("generation".into(), 1.into());
        meta.insert("creationTimestamp".into(), "2026-12-01T00:00:00Z".into());
        meta.insert(
            "managedFields".into(),
            serde_json::json!([{"manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": api_version, "time": "2026-12-01T00:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]),
        );
        match object["kind"].as_str() {
            Some("Pod") => {
                object["status"] =
                    serde_json::json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            Some("Namespace") => {
                object["spec"] = serde_json::json!({"finalizers": ["kubernetes"]});
                object["status"] = serde_json::json!({"phase": "Active"});
            }
            _ => {}
        }
        object
    }
}

impl Store for Translation {
    fn prefix(&self) -> &str {
        "translation"
    }

    async fn apply(&mut self, yaml: &str) {
        for doc in documents(yaml) {
            let served = self.as_served(doc);
            let kind = self.kind_of(&served);
            self.last.insert(id(&served), served.clone());
            let events = self.state.handle(kind, WatchEvent::Apply(served));
            apply(&mut self.index, events);
        }
    }

    async fn delete(&mut self, kind: &str, ns: &str, name: &str) {
        let object = self
            .last
            .remove(&(kind.into(), ns.into(), name.into()))
            .expect("deleting an object applied before");
        let events = self
            .state
            .handle(self.kind_of(&object), WatchEvent::Delete(object));
        apply(&mut self.index, events);
    }

    async fn wait_for(&mut self, what: &str, cond: &(dyn Fn(&Index) -> bool + Sync)) {
        assert!(
            cond(&self.index),
            "kube translation: {what}; index:{}",
            summary(&self.index)
        );
    }

    async fn refused(&mut self, object: &str) -> Option<Vec<String>> {
        self.state
            .rejected()
            .into_iter()
            .find(|(r, _)| r.object == object)
            .map(|(r, _)| r.reasons)
    }
}

/// The Kubernetes store against a real API server, objects applied with
/// kubectl (`ZTMESH_TEST_KUBECTL`, or `kubectl` on the PATH).
pub struct ApiServer {
    kubeconfig: PathBuf,
    prefix: String,
    index: Arc<Mutex<Index>>,
    status: Arc<Mutex<serde_json::Value>>,
    metrics: ztmesh_kube::Metrics,
    namespaces: Vec<String>,
}

impl ApiServer {
    pub async fn start(kubeconfig: PathBuf) -> Self {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut server = Self {
            kubeconfig,
            prefix: format!(
                "k{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs()
                    % 1_000_000
            ),
            index: Arc::new(Mutex::new(new_index())),
            status: Arc::new(Mutex::new(serde_json::Value::Null)),
            metrics: Default::default(),
            namespaces: Vec::new(),
        };
        // The CRDs, unless `ztmesh install --crds` put them there already.
        if std::env::var_os("ZTMESH_TEST_SKIP_CRDS").is_none() {
            server
                .kubectl(&["apply", "-f"], Some(&fixtures.join("crds.yaml")))
                .await;
            server
                .kubectl(
                    &[
                        "wait",
                        "--for=condition=established",
                        "--timeout=60s",
                        "crd",
                        "--all",
                    ],
                    None,
                )
                .await;
        }
        let client = ztmesh_kube::client(Some(&server.kubeconfig))
            .await
            .expect("client");
        let mut feed = ztmesh_kube::start(client, "linkerd", server.metrics.clone())
            .await
            .expect("the store starts");
        server.status = feed.status.clone();
        let (synced_tx, synced) = tokio::sync::oneshot::channel();
        let index = server.index.clone();
        tokio::spawn(async move {
            let mut synced_tx = Some(synced_tx);
            while let Some(event) = feed.events.recv().await {
                if matches!(event, StoreEvent::Synced)
                    && let Some(tx) = synced_tx.take()
                {
                    let _ = tx.send(());
                }
                apply(&mut index.lock().expect("index"), vec![event]);
            }
        });
        tokio::time::timeout(DEADLINE, synced)
            .await
            .expect("the store lists every kind in time")
            .expect("synced");
        let watched = server.status.lock().expect("status")["watched"].clone();
        // Every kind `ztmesh install --crds` serves is watched (SPIRE's
        // ClusterFederatedTrustDomain too where SPIRE's CRD is installed).
        let names: Vec<String> = watched
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        for kind in all_kinds()
            .into_iter()
            .filter(|k| k.group != "spire.spiffe.io")
        {
            assert!(
                names.contains(&kind.to_string()),
                "{kind} is watched: {watched}"
            );
        }
        server
    }

    async fn kubectl(&self, args: &[&str], file: Option<&std::path::Path>) {
        self.kubectl_stdin(args, file, None).await
    }

    /// Runs kubectl (blocking: the store's tasks run on other threads).
    async fn kubectl_stdin(
        &self,
        args: &[&str],
        file: Option<&std::path::Path>,
        stdin: Option<&str>,
    ) {
        use std::io::Write;
        let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
        let mut cmd = std::process::Command::new(kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        if let Some(file) = file {
            cmd.arg(file);
        }
        if stdin.is_some() {
            cmd.arg("-");
        }
        cmd.stdin(std::process::Stdio::piped());
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The broken object was refused: the rejection metric counted it.
    pub fn check_metric(&self) {
        assert!(self.metrics.rejected("Server.policy.linkerd.io") >= 1);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let kubectl = std::env::var_os("ZTMESH_TEST_KUBECTL").unwrap_or("kubectl".into());
        for ns in &self.namespaces {
            let _ = std::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", "namespace", ns, "--wait=false"])
                .output();
        }
    }
}

impl Store for ApiServer {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn apply(&mut self, yaml: &str) {
        for doc in documents(yaml) {
            if doc["kind"] == "Namespace" {
                self.namespaces.push(id(&doc).2);
            }
        }
        self.kubectl_stdin(&["apply", "-f"], None, Some(yaml)).await;
    }

    async fn delete(&mut self, kind: &str, ns: &str, name: &str) {
        self.kubectl(&["delete", "-n", ns, kind, name], None).await;
    }

    async fn wait_for(&mut self, what: &str, cond: &(dyn Fn(&Index) -> bool + Sync)) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            {
                let index = self.index.lock().expect("index");
                if cond(&index) {
                    return;
                }
                if tokio::time::Instant::now() > deadline {
                    panic!("API server: {what}; index:{}", summary(&index));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn refused(&mut self, object: &str) -> Option<Vec<String>> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let found = self.status.lock().expect("status")["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["object"] == object)
                .map(|r| {
                    r["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                });
            if found.is_some() || tokio::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
