//! The issuer and trust anchors as Linkerd keeps them on a cluster, copied
//! into the controller's identity directory, where the controller's
//! issuer reload (ztmesh-controller's `issuer_reload`) validates each
//! change and keeps the last good issuer on a bad one:
//!
//! - ConfigMap `linkerd-identity-trust-roots`, key `ca-bundle.crt` -> `ca.crt`;
//! - Secret `linkerd-identity-issuer`: Linkerd's own (Opaque, `crt.pem`,
//!   `key.pem`) or an external issuer's (`kubernetes.io/tls`, `tls.crt`,
//!   `tls.key`, as cert-manager or Vault write it) -> `issuer.crt`,
//!   `issuer.key`.
//!
//! [`sync_once`] copies them before the controller starts (both must
//! exist); [`keep_synced`] watches both and copies each change. Files are
//! replaced atomically (write, then rename) and only when they differ.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::path::{Path, PathBuf};

pub const TRUST_ROOTS: &str = "linkerd-identity-trust-roots";
pub const ISSUER_SECRET: &str = "linkerd-identity-issuer";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading {what} {namespace}/{name}")]
    Get {
        what: &'static str,
        namespace: String,
        name: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{what} {namespace}/{name} does not exist")]
    Missing {
        what: &'static str,
        namespace: String,
        name: &'static str,
    },
    #[error("{0}")]
    Content(String),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files the objects hold: `ca.crt` from the ConfigMap.
pub fn anchors_file(cm: &ConfigMap) -> Result<Vec<(&'static str, Vec<u8>)>, SyncError> {
    let bundle = cm
        .data
        .as_ref()
        .and_then(|d| d.get("ca-bundle.crt"))
        .ok_or_else(|| {
            SyncError::Content(format!("ConfigMap {TRUST_ROOTS} has no ca-bundle.crt"))
        })?;
    Ok(vec![("ca.crt", bundle.clone().into_bytes())])
}

/// `issuer.crt` and `issuer.key` from the Secret, Linkerd's or external.
pub fn issuer_files(secret: &Secret) -> Result<Vec<(&'static str, Vec<u8>)>, SyncError> {
    let external = secret.type_.as_deref() == Some("kubernetes.io/tls");
    let (crt, key) = if external {
        ("tls.crt", "tls.key")
    } else {
        ("crt.pem", "key.pem")
    };
    let get = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .ok_or_else(|| SyncError::Content(format!("Secret {ISSUER_SECRET} has no {k}")))
    };
    // The key first: a reload between the two sees a mismatched pair and
    // keeps the issuer in force until the certificate lands too.
    Ok(vec![("issuer.key", get(key)?), ("issuer.crt", get(crt)?)])
}

/// Copies the anchors and the issuer into `dir` now.
pub async fn sync_once(
    client: &kube::Client,
    namespace: &str,
    dir: &Path,
) -> Result<(), SyncError> {
    let get_err = |what, name| {
        move |source| SyncError::Get {
            what,
            namespace: namespace.into(),
            name,
            source: Box::new(source),
        }
    };
    let missing = |what, name| SyncError::Missing {
        what,
        namespace: namespace.into(),
        name,
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = cms
        .get_opt(TRUST_ROOTS)
        .await
        .map_err(get_err("ConfigMap", TRUST_ROOTS))?
        .ok_or_else(|| missing("ConfigMap", TRUST_ROOTS))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(ISSUER_SECRET)
        .await
        .map_err(get_err("Secret", ISSUER_SECRET))?
        .ok_or_else(|| missing("Secret", ISSUER_SECRET))?;
    write_files(dir, &anchors_file(&cm)?)?;
    write_files(dir, &issuer_files(&secret)?)
}

/// Watches both objects and copies every change into `dir`; a bad object
/// is logged and nothing is written for it.
pub fn keep_synced(
    client: kube::Client,
    namespace: &str,
    dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let cms = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        by_name(TRUST_ROOTS),
    )
    .default_backoff()
    .applied_objects()
    .map(|r| {
        r.map_err(|e| e.to_string())
            .and_then(|cm| anchors_file(&cm).map_err(|e| e.to_string()))
    });
    let secrets = watcher(
        Api::<Secret>::namespaced(client, namespace),
        by_name(ISSUER_SECRET),
    )
    .default_backoff()
    .applied_objects()
    .map(|r| {
        r.map_err(|e| e.to_string())
            .and_then(|s| issuer_files(&s).map_err(|e| e.to_string()))
    });
    tokio::spawn(async move {
        let mut both = futures::stream::select(cms.boxed(), secrets.boxed());
        while let Some(files) = both.next().await {
            match files {
                Ok(files) => {
                    if let Err(error) = write_files(&dir, &files) {
                        tracing::warn!(%error, "the issuer could not be copied");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the issuer or trust roots could not be read; the issuer in force stays")
                }
            }
        }
    })
}

/// Replaces each file that differs, atomically.
fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), SyncError> {
    use std::os::unix::fs::OpenOptionsExt;
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_ref() == Some(content) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        let write = |p: &Path| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)?;
            f.write_all(content)?;
            f.sync_all()
        };
        write(&tmp)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| SyncError::Write { path, source })?;
        tracing::info!(file = %dir.join(name).display(), "copied from the cluster");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(type_: Option<&str>, keys: &[&str]) -> Secret {
        Secret {
            type_: type_.map(String::from),
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(k.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn linkerd_and_external_issuers_map_to_the_issuer_files() {
        // (type, keys, Ok(files with the key each came from) or Err(missing key))
        let cases: [(Option<&str>, &[&str], Result<[(&str, &str); 2], &str>); 4] = [
            (
                Some("Opaque"),
                &["crt.pem", "key.pem"],
                Ok([("issuer.key", "key.pem"), ("issuer.crt", "crt.pem")]),
            ),
            (
                None,
                &["crt.pem", "key.pem"],
                Ok([("issuer.key", "key.pem"), ("issuer.crt", "crt.pem")]),
            ),
            (
                Some("kubernetes.io/tls"),
                &["tls.crt", "tls.key", "ca.crt"],
                Ok([("issuer.key", "tls.key"), ("issuer.crt", "tls.crt")]),
            ),
            (
                Some("kubernetes.io/tls"),
                &["crt.pem", "key.pem"],
                Err("no tls.key"),
            ),
        ];
        for (type_, keys, want) in cases {
            let got = issuer_files(&secret(type_, keys));
            match (got, want) {
                (Ok(files), Ok(want)) => {
                    let files: Vec<(&str, Vec<u8>)> = files;
                    let want: Vec<(&str, Vec<u8>)> = want
                        .iter()
                        .map(|(f, k)| (*f, k.as_bytes().to_vec()))
                        .collect();
                    assert_eq!(files, want, "{type_:?}");
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e}"),
                (got, want) => panic!("{type_:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn files_are_replaced_only_when_they_differ() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &[("ca.crt", b"one".to_vec())]).unwrap();
        let before = std::fs::metadata(dir.path().join("ca.crt"))
            .unwrap()
            .modified()
            .unwrap();
        write_files(dir.path(), &[("ca.crt", b"one".to_vec())]).unwrap();
        let same = std::fs::metadata(dir.path().join("ca.crt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, same, "an unchanged file is not rewritten");
        write_files(dir.path(), &[("ca.crt", b"two".to_vec())]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), b"two");
        assert!(!dir.path().join(".ca.crt.tmp").exists());
    }
}
