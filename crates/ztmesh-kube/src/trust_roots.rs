//! The trust anchors in every namespace where proxies may be injected.
//!
//! Linkerd hands a proxy its anchors in an environment variable, which
//! cannot change while the pod runs, and a ConfigMap mounts only in its own
//! namespace. So the controller copies the control plane's trust roots
//! (ConfigMap `linkerd-identity-trust-roots`, key `ca-bundle.crt`) into
//! ConfigMap [`COPY`] of each namespace the proxy injector serves (not
//! kube-system, nor one labelled `config.linkerd.io/admission-webhooks:
//! disabled`), and the injector mounts it whole (no `subPath`), so a
//! rotated bundle reaches running proxies (they follow the file:
//! `ZTMESH_PROXY_IDENTITY_TRUST_ANCHORS_FILE`).
//!
//! [`keep_copied`] watches the source and the namespaces' metadata and
//! writes each copy by server-side apply (field manager
//! `ztmesh-controller`); a namespace's copy is written when the namespace
//! appears and whenever the source changes, and every copy again each
//! [`RESYNC`] (a deleted or edited copy comes back). A source that holds
//! no certificate is refused (logged) and the copies keep the last good
//! bundle. Which namespaces get one is [`wanted`], a pure function.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, metadata_watcher, watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The copy's name in each namespace (what the injector mounts).
pub const COPY: &str = ztmesh_inject::TRUST_ROOTS_CONFIG_MAP;
/// The bundle's key, in the source and in the copies.
pub const KEY: &str = ztmesh_inject::TRUST_ROOTS_KEY;
/// The source, in the control plane's namespace.
pub const SOURCE: &str = "linkerd-identity-trust-roots";
/// How often every copy is written again.
pub const RESYNC: Duration = Duration::from_secs(60);
const FIELD_MANAGER: &str = "ztmesh-controller";

/// Whether namespace `name`, with `labels`, gets a copy: where the proxy
/// injector's webhook applies.
pub fn wanted(name: &str, labels: &BTreeMap<String, String>) -> bool {
    name != "kube-system"
        && labels
            .get("config.linkerd.io/admission-webhooks")
            .is_none_or(|v| v != "disabled")
}

/// The copy for `namespace`.
pub fn copy(namespace: &str, bundle: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(COPY.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "ztmesh".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), bundle.to_string())])),
        ..Default::default()
    }
}

/// The bundle in the source ConfigMap, if it holds at least one
/// certificate; otherwise why not.
pub fn bundle(source: &ConfigMap) -> Result<String, String> {
    let pem = source
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| format!("no {KEY:?} key"))?;
    match ztmesh_identity::pem::certificates(pem.as_bytes(), "trust anchors") {
        Ok(certs) if !certs.is_empty() => Ok(pem.clone()),
        Ok(_) => Err("no certificate".into()),
        Err(e) => Err(e.to_string()),
    }
}

enum Change {
    Source(Result<String, String>),
    Namespace(Box<watcher::Event<kube::api::PartialObjectMeta<Namespace>>>),
    Resync,
}

/// Keeps every wanted namespace's copy equal to the source in
/// `control_plane` (until the task is aborted).
pub fn keep_copied(client: kube::Client, control_plane: &str) -> tokio::task::JoinHandle<()> {
    let source = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), control_plane),
        watcher::Config::default().fields(&format!("metadata.name={SOURCE}")),
    )
    .default_backoff()
    .applied_objects()
    .map(|r| Change::Source(r.map_err(|e| e.to_string()).and_then(|cm| bundle(&cm))));
    let namespaces = metadata_watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(|e| async move { e.ok().map(|e| Change::Namespace(Box::new(e))) });
    let resync = futures::stream::unfold((), |()| async {
        tokio::time::sleep(RESYNC).await;
        Some((Change::Resync, ()))
    });
    tokio::spawn(async move {
        let mut changes =
            futures::stream::select_all([source.boxed(), namespaces.boxed(), resync.boxed()]);
        let mut bundle: Option<String> = None;
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut written: BTreeSet<String> = BTreeSet::new();
        while let Some(change) = changes.next().await {
            match change {
                Change::Source(Ok(pem)) => {
                    if bundle.as_ref() != Some(&pem) {
                        bundle = Some(pem);
                        written.clear();
                    }
                }
                Change::Source(Err(reason)) => {
                    tracing::warn!(
                        configmap = SOURCE,
                        %reason,
                        "trust roots refused; the namespaces' copies keep the last good bundle"
                    );
                }
                Change::Namespace(event) => namespace_event(*event, &mut known, &mut written),
                Change::Resync => written.clear(),
            }
            let Some(pem) = &bundle else { continue };
            for ns in known.difference(&written.clone()) {
                let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match api.patch(COPY, &params, &Patch::Apply(copy(ns, pem))).await {
                    Ok(_) => {
                        tracing::debug!(namespace = %ns, "trust roots copied");
                        written.insert(ns.clone());
                    }
                    // Tried again at the next change or resync.
                    Err(error) => {
                        tracing::warn!(namespace = %ns, %error, "copying the trust roots")
                    }
                }
            }
        }
    })
}

fn namespace_event(
    event: watcher::Event<kube::api::PartialObjectMeta<Namespace>>,
    known: &mut BTreeSet<String>,
    written: &mut BTreeSet<String>,
) {
    let name_labels = |o: &kube::api::PartialObjectMeta<Namespace>| {
        (
            o.metadata.name.clone().unwrap_or_default(),
            o.metadata.labels.clone().unwrap_or_default(),
            o.metadata.deletion_timestamp.is_some(),
        )
    };
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
            let (name, labels, deleting) = name_labels(&o);
            if wanted(&name, &labels) && !deleting {
                known.insert(name);
            } else {
                known.remove(&name);
                written.remove(&name);
            }
        }
        watcher::Event::Delete(o) => {
            let (name, _, _) = name_labels(&o);
            known.remove(&name);
            written.remove(&name);
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_namespaces_get_a_copy() {
        let labels = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (name, l, want) in [
            ("booksapp", labels(&[]), true),
            ("kube-system", labels(&[]), false),
            (
                "linkerd",
                labels(&[("config.linkerd.io/admission-webhooks", "disabled")]),
                false,
            ),
            (
                "other",
                labels(&[("config.linkerd.io/admission-webhooks", "enabled")]),
                true,
            ),
        ] {
            assert_eq!(wanted(name, &l), want, "{name}");
        }
    }

    #[test]
    fn a_source_without_a_certificate_is_refused() {
        let cm = |data: Option<&str>| ConfigMap {
            data: data.map(|d| BTreeMap::from([(KEY.to_string(), d.to_string())])),
            ..Default::default()
        };
        let pki = ztmesh_test_support::TestPki::new();
        let pem = String::from_utf8(pki.anchors_pem().to_vec()).unwrap();
        assert_eq!(bundle(&cm(Some(&pem))), Ok(pem.clone()));
        assert!(
            bundle(&cm(None))
                .unwrap_err()
                .contains("no \"ca-bundle.crt\" key")
        );
        assert!(bundle(&cm(Some("not PEM"))).is_err());
        assert!(bundle(&cm(Some(""))).is_err());
        let copied = copy("booksapp", &pem);
        assert_eq!(copied.metadata.name.as_deref(), Some(COPY));
        assert_eq!(copied.data.unwrap()[KEY], pem);
    }
}
