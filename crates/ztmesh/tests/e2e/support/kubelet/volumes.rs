//! A pod's volumes as directories on the node (emptyDir; projected
//! ServiceAccount tokens from TokenRequest, bound to the pod, with the
//! spec's audience and lifetime; projected ConfigMap keys and downward-API
//! fields), and a container's process seeing them at exactly the spec's
//! `mountPath`s: in the pod's network namespace, in a private mount
//! namespace (`unshare --mount`) where each volume is bind-mounted (read
//! only when the mount says so), as the spec's user.

use super::Kube;
use super::spec::{Pod, PodFacts, Volume, VolumeMount};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pod's volumes by name.
pub struct Volumes {
    dirs: BTreeMap<String, PathBuf>,
}

fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("volume dir");
    }
    std::fs::write(path, text).expect("volume file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

impl Volumes {
    /// Builds every volume under `root` (world-readable: the containers'
    /// users are not root).
    pub fn build(pod: &Pod, facts: &PodFacts<'_>, root: &Path, kube: &Kube) -> Self {
        let mut dirs = BTreeMap::new();
        for volume in &pod.spec.volumes {
            let dir = root.join(&volume.name);
            std::fs::create_dir_all(&dir).expect("volume dir");
            build_one(volume, pod, facts, &dir, kube);
            dirs.insert(volume.name.clone(), dir);
        }
        Self { dirs }
    }

    /// (volume directory, mountPath, read only) of each of `mounts`.
    pub fn binds(&self, mounts: &[VolumeMount]) -> Vec<(PathBuf, String, bool)> {
        mounts
            .iter()
            .map(|m| {
                assert!(
                    m.sub_path.is_none(),
                    "subPath mounts are not played ({})",
                    m.name
                );
                let dir = self
                    .dirs
                    .get(&m.name)
                    .unwrap_or_else(|| panic!("mount of an unknown volume {}", m.name));
                (dir.clone(), m.mount_path.clone(), m.read_only)
            })
            .collect()
    }
}

fn build_one(volume: &Volume, pod: &Pod, facts: &PodFacts<'_>, dir: &Path, kube: &Kube) {
    if volume.empty_dir.is_some() {
        // Writable by any container user, as kubelet's emptyDir.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        return;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if let Some(cm) = &volume.config_map {
        // Every key as a file (written once: updates are not played); an
        // optional ConfigMap that is absent leaves the directory empty.
        let json = kube.try_run(
            &[
                "get",
                "configmap",
                &cm.name,
                "-n",
                &pod.metadata.namespace,
                "-o",
                "json",
            ],
            None,
        );
        match json {
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).expect("ConfigMap JSON");
                for (key, value) in v["data"].as_object().into_iter().flatten() {
                    write_file(&dir.join(key), value.as_str().unwrap_or_default());
                }
            }
            Err(e) => assert!(cm.optional, "ConfigMap {}: {e}", cm.name),
        }
        return;
    }
    let Some(projected) = &volume.projected else {
        panic!(
            "volume {}: only emptyDir, configMap and projected are played",
            volume.name
        );
    };
    let meta = &pod.metadata;
    for source in &projected.sources {
        if let Some(token) = &source.service_account_token {
            let mut args = vec![
                "create".to_string(),
                "token".into(),
                pod.spec.service_account_name.clone(),
                "-n".into(),
                meta.namespace.clone(),
                "--bound-object-kind".into(),
                "Pod".into(),
                "--bound-object-name".into(),
                meta.name.clone(),
                "--bound-object-uid".into(),
                meta.uid.clone(),
            ];
            if let Some(audience) = &token.audience {
                args.extend(["--audience".into(), audience.clone()]);
            }
            if let Some(secs) = token.expiration_seconds {
                args.extend(["--duration".into(), format!("{secs}s")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            write_file(&dir.join(&token.path), &kube.run(&args, None));
        }
        if let Some(cm) = &source.config_map {
            for item in &cm.items {
                let value = kube
                    .key("ConfigMap", &meta.namespace, &cm.name, &item.key)
                    .unwrap_or_else(|| panic!("ConfigMap {} has no {}", cm.name, item.key));
                write_file(&dir.join(&item.path), &value);
            }
        }
        if let Some(downward) = &source.downward_api {
            for item in &downward.items {
                let field = item.field_ref.as_ref().expect("downward API fieldRef");
                let value = facts.field(&field.field_path).expect("downward API field");
                write_file(&dir.join(&item.path), &value);
            }
        }
    }
}

/// The shell step run in the private mount namespace: bind each
/// (source, target, ro|rw) triple, then exec the rest.
const MOUNT_AND_EXEC: &str = r#"while [ "$1" != -- ]; do
mkdir -p "$2" && mount --bind "$1" "$2" || exit 1
if [ "$3" = ro ]; then mount -o remount,bind,ro "$2" || exit 1; fi
shift 3
done
shift
exec "$@""#;

/// `argv` in network namespace `netns` with `binds` mounted, as
/// `uid`/`gid` (root stays root) with the capabilities `caps` adds
/// (`NET_ADMIN`: ambient, so that they survive the exec), with exactly
/// `env` (and PATH, which an image brings, so that the tools before
/// `argv` are found).
pub fn container_command(
    netns: &str,
    binds: &[(PathBuf, String, bool)],
    ((uid, gid), caps): ((u32, u32), &[String]),
    env: &[(String, String)],
    argv: &[String],
) -> Command {
    let mut cmd = Command::new("ip");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["netns", "exec", netns, "unshare", "--mount"])
        .args(["--propagation", "private", "--", "sh", "-c"])
        .arg(MOUNT_AND_EXEC)
        .arg("sh");
    for (source, target, read_only) in binds {
        cmd.arg(source)
            .arg(target)
            .arg(if *read_only { "ro" } else { "rw" });
    }
    cmd.arg("--");
    if uid != 0 {
        cmd.args([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
        ]);
        if !caps.is_empty() {
            let caps: Vec<String> = caps
                .iter()
                .map(|c| format!("+{}", c.to_lowercase()))
                .collect();
            let caps = caps.join(",");
            cmd.args([
                format!("--inh-caps={caps}"),
                format!("--ambient-caps={caps}"),
            ]);
        }
        cmd.arg("--");
    }
    cmd.args(argv);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
