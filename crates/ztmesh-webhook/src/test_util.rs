//! For tests (feature `test-util`): [`TestInjector`], which adds a
//! `linkerd-proxy` container to Pods whose namespace or own annotation
//! says `linkerd.io/inject: enabled`, and [`FixedNamespaces`].

use crate::inject::{InjectError, Injector, NamespaceMeta, Patched};
use crate::namespaces::{NamespaceError, NamespaceFuture, Namespaces};
use crate::{INJECT_ANNOTATION, PROXY_CONTAINER};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The image of the container [`TestInjector`] adds.
pub const TEST_PROXY_IMAGE: &str = "ztmesh.test/proxy:test";

/// Injects a bare `linkerd-proxy` container (not Linkerd's injection:
/// enough to see the webhook apply a patch).
#[derive(Clone, Copy, Debug, Default)]
pub struct TestInjector;

/// The test injector refuses objects it cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TestInjectError(pub String);

impl Injector for TestInjector {
    fn patch(
        &self,
        kind: &str,
        object: &Value,
        namespace: &NamespaceMeta,
    ) -> Result<Patched, InjectError> {
        let name = object["metadata"]["name"]
            .as_str()
            .or(object["metadata"]["generateName"].as_str())
            .unwrap_or_default();
        let skip = |why: &str| {
            Ok(Patched {
                patch: None,
                report: format!("{} {name:?} skipped: {why}", kind.to_lowercase()),
            })
        };
        if kind != "Pod" {
            return skip("not a pod");
        }
        let Some(containers) = object["spec"]["containers"].as_array() else {
            return Err(InjectError::new(TestInjectError(
                "a pod without spec.containers".into(),
            )));
        };
        let own = object["metadata"]["annotations"][INJECT_ANNOTATION].as_str();
        let ns = namespace
            .annotations
            .get(INJECT_ANNOTATION)
            .map(String::as_str);
        if own.or(ns) != Some("enabled") {
            return skip("injection not enabled");
        }
        if containers
            .iter()
            .any(|c| c["name"].as_str() == Some(PROXY_CONTAINER))
        {
            return skip("already injected");
        }
        Ok(Patched {
            patch: Some(json!([{
                "op": "add",
                "path": "/spec/containers/-",
                "value": {"name": PROXY_CONTAINER, "image": TEST_PROXY_IMAGE},
            }])),
            report: format!("pod {name:?} injected"),
        })
    }
}

/// Namespaces from a map; a name listed with `None` fails to be read.
#[derive(Clone, Debug, Default)]
pub struct FixedNamespaces(pub BTreeMap<String, Option<NamespaceMeta>>);

/// What [`FixedNamespaces`] answers for a namespace it is told to fail.
#[derive(Debug, thiserror::Error)]
#[error("namespace {0} is unreadable in this test")]
pub struct Unreadable(pub String);

impl FixedNamespaces {
    pub fn with(mut self, meta: NamespaceMeta) -> Self {
        self.0.insert(meta.name.clone(), Some(meta));
        self
    }

    pub fn failing(mut self, name: &str) -> Self {
        self.0.insert(name.into(), None);
        self
    }
}

impl Namespaces for FixedNamespaces {
    fn get<'a>(&'a self, name: &'a str) -> NamespaceFuture<'a> {
        let answer = match self.0.get(name) {
            None => Ok(None),
            Some(Some(meta)) => Ok(Some(meta.clone())),
            Some(None) => Err(NamespaceError::new(Unreadable(name.into()))),
        };
        Box::pin(std::future::ready(answer))
    }
}
