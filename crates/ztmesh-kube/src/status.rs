//! HTTPRoute status, as Linkerd's policy controller writes it, by the
//! leader only ([`crate::lease`]): for each parent this controller serves
//! (a `policy.linkerd.io` Server, or a Service), one
//! `status.parents[]` entry with `controllerName: linkerd.io/policy-controller`
//! and the conditions `Accepted` (`NoMatchingParent` when the parent does
//! not exist) and `ResolvedRefs` (`BackendNotFound` when a backend
//! Service does not). Entries of other controllers are kept. A route is
//! written only when its status would change, so a write (which the
//! watch sees again) settles. Nothing is written before the routes,
//! Servers and Services are all listed once: a parent not listed yet is
//! not a parent that does not exist.
//!
//! [`parents`] computes the entries without I/O; [`run`] watches the
//! routes, Servers and Services and writes while leading;
//! [`run_rediscovering`] also takes the route and Server kinds whose CRDs
//! are installed after start.

use crate::kinds::Kind;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tokio::sync::{mpsc, watch};

pub const CONTROLLER_NAME: &str = "linkerd.io/policy-controller";

/// Objects by namespace and name.
pub type Names = BTreeSet<(String, String)>;

/// The `status.parents` `route` should have: its current entries of other
/// controllers, then ours. `now` stamps conditions that change.
pub fn parents(route: &Value, servers: &Names, services: &Names, now: &str) -> Vec<Value> {
    let ns = route["metadata"]["namespace"].as_str().unwrap_or("default");
    let generation = route["metadata"]["generation"].clone();
    let current: Vec<Value> = route["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = current
        .iter()
        .filter(|p| p["controllerName"] != CONTROLLER_NAME)
        .cloned()
        .collect();
    let missing_backend = route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["backendRefs"].as_array().into_iter().flatten())
        .filter(|b| {
            let group = b["group"].as_str().unwrap_or("");
            let kind = b["kind"].as_str().unwrap_or("Service");
            (group.is_empty() || group == "core") && kind == "Service"
        })
        .find_map(|b| {
            let name = b["name"].as_str().unwrap_or_default();
            let bns = b["namespace"].as_str().unwrap_or(ns);
            (!services.contains(&(bns.into(), name.into()))).then(|| format!("{bns}/{name}"))
        });
    for parent in route["spec"]["parentRefs"].as_array().into_iter().flatten() {
        let group = parent["group"]
            .as_str()
            .unwrap_or("gateway.networking.k8s.io");
        let kind = parent["kind"].as_str().unwrap_or("Gateway");
        let name = parent["name"].as_str().unwrap_or_default();
        let pns = parent["namespace"].as_str().unwrap_or(ns);
        let key = (pns.to_string(), name.to_string());
        let exists = match (group, kind) {
            ("policy.linkerd.io", "Server") => servers.contains(&key),
            ("" | "core", "Service") => services.contains(&key),
            _ => continue,
        };
        let previous = current
            .iter()
            .find(|p| p["controllerName"] == CONTROLLER_NAME && p["parentRef"] == *parent);
        let condition = |kind: &str, ok: bool, reason: &str, message: String| {
            let status = if ok { "True" } else { "False" };
            let since = previous
                .and_then(|p| p["conditions"].as_array())
                .into_iter()
                .flatten()
                .find(|c| c["type"] == kind && c["status"] == status)
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_else(|| now.into());
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": since, "observedGeneration": generation})
        };
        let accepted = if exists {
            condition("Accepted", true, "Accepted", String::new())
        } else {
            condition(
                "Accepted",
                false,
                "NoMatchingParent",
                format!("{kind} {pns}/{name} does not exist"),
            )
        };
        let resolved = match &missing_backend {
            None => condition("ResolvedRefs", true, "ResolvedRefs", String::new()),
            Some(b) => condition(
                "ResolvedRefs",
                false,
                "BackendNotFound",
                format!("backend Service {b} does not exist"),
            ),
        };
        out.push(
            json!({"parentRef": parent, "controllerName": CONTROLLER_NAME,
                        "conditions": [accepted, resolved]}),
        );
    }
    out
}

/// Watches the HTTPRoutes, Servers and Services among `kinds` and, while
/// `leading`, writes each route's status when it would change.
pub fn run(
    client: kube::Client,
    kinds: &[(Kind, ApiResource)],
    mut leading: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let find = |group: &str, kind: &str| {
        kinds
            .iter()
            .find(|(k, _)| k.group == group && k.kind == kind)
            .map(|(_, ar)| ar.clone())
    };
    let routes: Vec<ApiResource> = [
        find("policy.linkerd.io", "HTTPRoute"),
        find("gateway.networking.k8s.io", "HTTPRoute"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let server = find("policy.linkerd.io", "Server");
    let service = find("", "Service");
    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut watch_kind = |ar: &ApiResource| {
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let reader = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let stream = reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        let tx = changed_tx.clone();
        tasks.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if event.is_ok() {
                    let _ = tx.try_send(());
                }
            }
        });
        (reader, ar.clone())
    };
    let route_stores: Vec<_> = routes.iter().map(&mut watch_kind).collect();
    let server_store = server.as_ref().map(&mut watch_kind);
    let service_store = service.as_ref().map(&mut watch_kind);
    tokio::spawn(async move {
        let _tasks = tasks;
        // Every store listed once before anything is judged missing.
        let stores = route_stores
            .iter()
            .chain(server_store.iter())
            .chain(service_store.iter());
        for (store, _) in stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                c = changed.recv() => if c.is_none() { return },
                l = leading.changed() => if l.is_err() { return },
            }
            if !*leading.borrow() {
                continue;
            }
            let names = |store: &Option<(reflector::Store<DynamicObject>, ApiResource)>| -> Names {
                store
                    .iter()
                    .flat_map(|(s, _)| s.state())
                    .map(|o| {
                        (
                            o.metadata.namespace.clone().unwrap_or_default(),
                            o.metadata.name.clone().unwrap_or_default(),
                        )
                    })
                    .collect()
            };
            let (servers, services) = (names(&server_store), names(&service_store));
            for (store, ar) in &route_stores {
                for route in store.state() {
                    write_status(&client, ar, &route, &servers, &services).await;
                }
            }
        }
    })
}

/// As [`run`] over `kinds` (from [`crate::watch::discover`]), started
/// again with the new kinds whenever a CRD not served at start is
/// (looked for every [`crate::watch::REDISCOVER`], while some is missing).
pub fn run_rediscovering(
    client: kube::Client,
    kinds: Vec<(Kind, ApiResource)>,
    leading: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    /// Stops the writer when the outer task stops (aborted with the replica).
    struct Writer(tokio::task::JoinHandle<()>);
    impl Drop for Writer {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let all = crate::kinds::core().len() + crate::kinds::CUSTOM.len();
    tokio::spawn(async move {
        let mut kinds = kinds;
        loop {
            let mut writer = Writer(run(client.clone(), &kinds, leading.clone()));
            if kinds.len() >= all {
                let _ = (&mut writer.0).await;
                return;
            }
            loop {
                tokio::time::sleep(crate::watch::REDISCOVER).await;
                match crate::watch::discover(&client).await {
                    Ok(found) if found.len() > kinds.len() => {
                        tracing::info!(
                            "custom resources installed since start: HTTPRoute status follows them"
                        );
                        drop(writer);
                        kinds = found;
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "discovering the custom resources again (status)")
                    }
                }
            }
        }
    })
}

async fn write_status(
    client: &kube::Client,
    ar: &ApiResource,
    route: &DynamicObject,
    servers: &Names,
    services: &Names,
) {
    let json = serde_json::to_value(route).unwrap_or_default();
    let now = k8s_openapi::chrono::Utc::now()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true);
    let want = parents(&json, servers, services, &now);
    let have = json["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if want == have {
        return;
    }
    let (Some(ns), Some(name)) = (&route.metadata.namespace, &route.metadata.name) else {
        return;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let patch = json!({"status": {"parents": want}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(route = %format!("{ns}/{name}"), kind = %ar.kind, "HTTPRoute status written")
        }
        Err(error) => {
            tracing::warn!(route = %format!("{ns}/{name}"), %error, "HTTPRoute status not written")
        }
    }
}

#[cfg(test)]
mod tests;
