//! Namespaces' labels and annotations for the admission webhook
//! ([`ztmesh_webhook::Namespaces`]): a reflector over the Namespaces'
//! metadata (a metadata-only watch, kept for the controller's life), and
//! for a namespace it has not seen yet (created a moment ago) one read of
//! its metadata from the API (a list by name: the controller's role lists
//! namespaces, it does not get them).

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, metadata_watcher, watcher};
use std::collections::BTreeMap;
use ztmesh_webhook::{NamespaceError, NamespaceFuture, NamespaceMeta, Namespaces};

/// The namespaces, from the API server.
pub struct KubeNamespaces {
    store: Store<PartialObjectMeta<Namespace>>,
    api: Api<Namespace>,
    task: tokio::task::JoinHandle<()>,
}

impl KubeNamespaces {
    /// Starts the watch (stopped when this is dropped).
    pub fn start(client: kube::Client) -> Self {
        let api: Api<Namespace> = Api::all(client);
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            metadata_watcher(api.clone(), watcher::Config::default()),
        )
        .default_backoff()
        .touched_objects();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    tracing::debug!(%error, "namespace watch (for the webhook)");
                }
            }
        });
        Self { store, api, task }
    }
}

impl Drop for KubeNamespaces {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn meta(name: &str, m: &ObjectMeta) -> NamespaceMeta {
    let map = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    NamespaceMeta {
        name: name.into(),
        labels: map(&m.labels),
        annotations: map(&m.annotations),
    }
}

impl Namespaces for KubeNamespaces {
    fn get<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a> {
        Box::pin(async move {
            if let Some(ns) = self.store.get(&ObjectRef::new(name)) {
                return Ok(Some(meta(name, &ns.metadata)));
            }
            // A list by name: the controller may list namespaces, not get them.
            let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
            let found = self
                .api
                .list_metadata(&by_name)
                .await
                .map_err(NamespaceError::new)?;
            Ok(found.items.first().map(|ns| meta(name, &ns.metadata)))
        })
    }
}
