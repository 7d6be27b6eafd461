//! The federated trust domains: one task per ClusterFederatedTrustDomain
//! follows its domain's bundle endpoint, and the bundles in force are
//! written to the proxies' bundle set file.
//!
//! Per domain: `spec.trustDomainBundle`, when given, is the bundle until
//! the endpoint answers. The endpoint is read again after its
//! `spiffe_refresh_hint` (clamped to [`MIN_REFRESH`]..[`MAX_REFRESH`];
//! [`DEFAULT_REFRESH`] without one). A failed fetch (unreachable, TLS
//! refused, an HTTP error) keeps the last good bundle and is retried
//! after [`RETRY`] (or the last refresh interval, if shorter); a malformed bundle fails closed: the domain has no
//! bundle (nothing of it is trusted) until a good one arrives. A resource
//! naming the local trust domain, or a domain another resource already
//! names, is refused with its reason. A removed resource takes its
//! domain's bundle with it at once.

use super::bundle::{self, Bundle};
use super::fetch;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use ztmesh_resources::federation::ClusterFederatedTrustDomainSpec as Spec;

/// The ClusterFederatedTrustDomains in force, by name.
pub(crate) type SourceSet = BTreeMap<String, Spec>;

pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(1);
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(3600);
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
pub(crate) const RETRY: Duration = Duration::from_secs(5);

/// What is known of one domain.
#[derive(Debug, Default)]
struct DomainState {
    bundle: Option<Bundle>,
    last_error: Option<String>,
}

type States = Arc<Mutex<BTreeMap<String, DomainState>>>;

/// Aborts a domain's task when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) struct Domains {
    pub(crate) local: String,
    pub(crate) sources: watch::Receiver<SourceSet>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) file: Option<PathBuf>,
}

impl Domains {
    pub(crate) async fn run(mut self, stopped: impl std::future::Future<Output = ()>) {
        let states: States = Arc::default();
        let changed = Arc::new(Notify::new());
        // (resource name, its spec, its task), for the domains in force.
        let mut tasks: HashMap<String, (Spec, Task)> = HashMap::new();
        let mut written: Option<String> = None;
        tokio::pin!(stopped);
        let mut sources_open = true;
        // Judged (and refusals logged) once per change of the resources.
        let mut wanted = self.wanted();
        loop {
            tasks.retain(|name, (spec, _)| {
                let keep = wanted.get(name) == Some(spec);
                if !keep {
                    tracing::info!(resource = %name, trust_domain = %spec.trust_domain, "federation: no longer federated");
                    states.lock().expect("federation state").remove(&spec.trust_domain);
                }
                keep
            });
            for (name, spec) in &wanted {
                if tasks.contains_key(name) {
                    continue;
                }
                tracing::info!(resource = %name, trust_domain = %spec.trust_domain, url = %spec.bundle_endpoint_url, "federation: following a trust domain's bundle");
                let follow = follow(
                    spec.clone(),
                    self.tls.clone(),
                    states.clone(),
                    changed.clone(),
                );
                tasks.insert(name.clone(), (spec.clone(), Task(tokio::spawn(follow))));
            }
            self.write(&states, &mut written);
            tokio::select! {
                _ = &mut stopped => return,
                _ = changed.notified() => {}
                r = self.sources.changed(), if sources_open => {
                    sources_open = r.is_ok();
                    wanted = self.wanted();
                }
            }
        }
    }

    /// The resources in force by name: the first (by name) to claim a
    /// domain wins; the local domain is never federated.
    fn wanted(&self) -> BTreeMap<String, Spec> {
        let mut claimed: BTreeMap<String, String> = BTreeMap::new();
        let mut wanted = BTreeMap::new();
        for (name, spec) in self.sources.borrow().iter() {
            let domain = &spec.trust_domain;
            if *domain == self.local {
                tracing::error!(resource = %name, "federation: {domain:?} is the local trust domain; refused");
            } else if let Some(first) = claimed.get(domain) {
                tracing::error!(resource = %name, "federation: {domain:?} is already federated by ClusterFederatedTrustDomain {first}; refused");
            } else {
                claimed.insert(domain.clone(), name.clone());
                wanted.insert(name.clone(), spec.clone());
            }
        }
        wanted
    }

    /// Writes the bundle set file when its content changed.
    fn write(&self, states: &States, written: &mut Option<String>) {
        let Some(path) = &self.file else { return };
        let domains: BTreeMap<String, String> = states
            .lock()
            .expect("federation state")
            .iter()
            .filter_map(|(d, s)| s.bundle.as_ref().map(|b| (d.clone(), b.pem())))
            .collect();
        let doc = bundle_set(&self.local, &domains);
        if written.as_deref() == Some(doc.as_str()) {
            return;
        }
        match write_atomically(path, doc.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), trust_domains = ?domains.keys().collect::<Vec<_>>(), "federation: bundle set written");
                *written = Some(doc);
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "federation: writing the bundle set failed")
            }
        }
    }
}

/// The proxies' bundle set file: `{"trust_domain": LOCAL, "trust_domains":
/// {DOMAIN: PEM, ...}}`.
pub(crate) fn bundle_set(local: &str, domains: &BTreeMap<String, String>) -> String {
    let doc = serde_json::json!({ "trust_domain": local, "trust_domains": domains });
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n"
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Follows one domain's bundle until aborted.
async fn follow(spec: Spec, tls: Arc<rustls::ClientConfig>, states: States, changed: Arc<Notify>) {
    let domain = spec.trust_domain.clone();
    let set = |bundle: Option<Option<Bundle>>, error: Option<String>| {
        let mut states = states.lock().expect("federation state");
        let state = states.entry(domain.clone()).or_default();
        if let Some(bundle) = bundle {
            state.bundle = bundle;
        }
        state.last_error = error;
        changed.notify_one();
    };
    if let Some(doc) = &spec.trust_domain_bundle {
        match bundle::parse(doc.as_bytes()) {
            Ok(b) => set(Some(Some(b)), None),
            Err(e) => {
                tracing::error!(trust_domain = %domain, error = %e, "federation: spec.trustDomainBundle is malformed; nothing of it is trusted");
                set(Some(None), Some(format!("spec.trustDomainBundle: {e}")));
            }
        }
    }
    let mut retry = RETRY;
    loop {
        let delay = match fetch::get(&spec.bundle_endpoint_url, tls.clone()).await {
            Ok(bytes) => match bundle::parse(&bytes) {
                Ok(b) => {
                    let delay = b
                        .refresh_hint
                        .unwrap_or(DEFAULT_REFRESH)
                        .clamp(MIN_REFRESH, MAX_REFRESH);
                    tracing::debug!(trust_domain = %domain, anchors = b.x509_authorities.len(), sequence = ?b.sequence, ?delay, "federation: bundle fetched");
                    set(Some(Some(b)), None);
                    retry = RETRY.min(delay);
                    delay
                }
                Err(e) => {
                    tracing::error!(trust_domain = %domain, error = %e, "federation: the endpoint's bundle is malformed; nothing of the domain is trusted until a good one arrives");
                    set(Some(None), Some(format!("malformed bundle: {e}")));
                    retry
                }
            },
            Err(e) => {
                tracing::warn!(trust_domain = %domain, error = %e, "federation: fetching the bundle failed; the last good bundle stays");
                set(None, Some(e.to_string()));
                retry
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_set_names_the_local_domain_and_each_federated_one() {
        let domains = BTreeMap::from([("b.example".to_string(), "PEM".to_string())]);
        let v: serde_json::Value =
            serde_json::from_str(&bundle_set("a.example", &domains)).unwrap();
        assert_eq!(v["trust_domain"], "a.example");
        assert_eq!(v["trust_domains"]["b.example"], "PEM");
        let v: serde_json::Value =
            serde_json::from_str(&bundle_set("a.example", &BTreeMap::new())).unwrap();
        assert_eq!(v["trust_domains"], serde_json::json!({}));
    }
}
