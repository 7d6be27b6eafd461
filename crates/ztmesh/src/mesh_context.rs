//! Where the CLI finds the mesh it talks to, as one flag everywhere:
//! `--controller ADDR` (the controller's viz API), else the
//! `ZTMESH_CONTROLLER` variable, else the context file that `ztmesh
//! controller` and `ztmesh demo --keep` write when they start
//! (`$ZTMESH_CONTEXT`, else `$XDG_CONFIG_HOME/ztmesh/context.json`, else
//! `~/.config/ztmesh/context.json`), like kubectl's current context.
//!
//! The file records every address the controller serves and the
//! directories it reads, so commands that need more than the viz API
//! (`check`, `identity`) find them too. [`Env`] is how the environment is
//! read: the process's in the binary, a map in tests.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What a running controller serves and reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MeshContext {
    /// The viz API (`/stat`, `/status`, ...).
    pub(crate) viz: SocketAddr,
    /// Identity (Certify).
    pub(crate) identity: SocketAddr,
    /// Destination (Get, GetProfile).
    pub(crate) destination: SocketAddr,
    /// Inbound and outbound policy.
    pub(crate) policy: SocketAddr,
    /// The identity directory (trust anchors, issuer certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity_dir: Option<PathBuf>,
    /// The manifests directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) manifests: Option<PathBuf>,
    /// Which command wrote the file (`controller`, `demo`), and its pid.
    pub(crate) written_by: String,
    pub(crate) pid: u32,
}

/// Reading the environment: the process's, or a map in tests.
pub(crate) trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's environment.
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextError {
    #[error(
        "no controller given: pass --controller HOST:PORT (its viz API, default 127.0.0.1:8084), set ZTMESH_CONTROLLER, or start one (`ztmesh controller` or `ztmesh demo --keep` write {})",
        .0.display()
    )]
    NoController(PathBuf),
    #[error("no context file: neither ZTMESH_CONTEXT, XDG_CONFIG_HOME nor HOME is set")]
    NoPath,
    #[error("reading the context file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the context file {} is not valid: {source} (remove it, or start the controller again)", .path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing the context file {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the context file is.
pub(crate) fn path(env: &dyn Env) -> Result<PathBuf, ContextError> {
    if let Some(p) = env.var("ZTMESH_CONTEXT") {
        return Ok(PathBuf::from(p));
    }
    let config = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".config")))
        .ok_or(ContextError::NoPath)?;
    Ok(config.join("ztmesh").join("context.json"))
}

/// The context file's content, if there is one.
pub(crate) fn load(env: &dyn Env) -> Result<Option<MeshContext>, ContextError> {
    let path = path(env)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ContextError::Read { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ContextError::Parse { path, source })
}

/// Records `context` (atomically: a temporary file renamed over the old).
pub(crate) fn save(env: &dyn Env, context: &MeshContext) -> Result<PathBuf, ContextError> {
    let path = path(env)?;
    let write = |path: &Path| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(context).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    };
    write(&path).map_err(|source| ContextError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// `--controller`, as every command that talks to the controller takes it
/// (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct ControllerArg {
    /// The controller's viz API, HOST:PORT [default: $ZTMESH_CONTROLLER, else
    /// the context file `ztmesh controller` and `ztmesh demo --keep` write].
    #[arg(long, env = "ZTMESH_CONTROLLER")]
    pub(crate) controller: Option<String>,
}

/// The controller a command talks to, and where that answer came from
/// (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Controller {
    /// The viz API's HOST:PORT.
    pub(crate) viz: String,
    /// The whole context, when it came from the file.
    pub(crate) context: Option<MeshContext>,
}

impl ControllerArg {
    /// The flag (or variable), else the context file.
    pub(crate) fn resolve(&self, env: &dyn Env) -> Result<Controller, ContextError> {
        if let Some(viz) = &self.controller {
            return Ok(Controller {
                viz: viz.clone(),
                context: None,
            });
        }
        match load(env)? {
            Some(context) => Ok(Controller {
                viz: context.viz.to_string(),
                context: Some(context),
            }),
            None => Err(ContextError::NoController(path(env)?)),
        }
    }
}

/// The manifests directory the controller `controller` resolves to reads,
/// when the context file describes that controller and records one that
/// exists (a context left by a controller long gone names nothing).
pub(crate) fn context_manifests(controller: &ControllerArg, env: &dyn Env) -> Option<PathBuf> {
    let found = controller.resolve(env).ok()?;
    let context = match found.context {
        Some(context) => context,
        None => load(env)
            .ok()
            .flatten()
            .filter(|c| c.viz.to_string() == found.viz)?,
    };
    context.manifests.filter(|dir| dir.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn context() -> MeshContext {
        MeshContext {
            viz: "127.0.0.1:18084".parse().unwrap(),
            identity: "127.0.0.1:18080".parse().unwrap(),
            destination: "127.0.0.1:18086".parse().unwrap(),
            policy: "127.0.0.1:18090".parse().unwrap(),
            identity_dir: Some("/tmp/id".into()),
            manifests: None,
            written_by: "controller".into(),
            pid: 42,
        }
    }

    #[test]
    fn the_path_follows_the_environment() {
        let cases: [(&[(&str, &str)], Option<&str>); 4] = [
            (
                &[("ZTMESH_CONTEXT", "/a/c.json"), ("HOME", "/h")],
                Some("/a/c.json"),
            ),
            (
                &[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")],
                Some("/x/ztmesh/context.json"),
            ),
            (&[("HOME", "/h")], Some("/h/.config/ztmesh/context.json")),
            (&[], None),
        ];
        for (vars, want) in cases {
            let env = MapEnv(vars.iter().map(|(k, v)| (*k, v.to_string())).collect());
            let got = path(&env).ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "{vars:?}");
        }
    }

    #[test]
    fn the_flag_wins_then_the_file_then_an_error_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/context.json");
        let env = MapEnv(HashMap::from([(
            "ZTMESH_CONTEXT",
            file.display().to_string(),
        )]));
        let none = ControllerArg::default();
        let err = none.resolve(&env).unwrap_err().to_string();
        assert!(err.contains("pass --controller"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");

        save(&env, &context()).unwrap();
        let got = none.resolve(&env).unwrap();
        assert_eq!(got.viz, "127.0.0.1:18084");
        assert_eq!(got.context, Some(context()));

        let flag = ControllerArg {
            controller: Some("10.1.1.1:9".into()),
        };
        let got = flag.resolve(&env).unwrap();
        assert_eq!((got.viz.as_str(), got.context), ("10.1.1.1:9", None));

        // The manifests the context records, for the controller it describes.
        assert_eq!(context_manifests(&none, &env), None);
        save(
            &env,
            &MeshContext {
                manifests: Some(dir.path().to_path_buf()),
                ..context()
            },
        )
        .unwrap();
        assert_eq!(context_manifests(&none, &env), Some(dir.path().into()));
        let same = ControllerArg {
            controller: Some("127.0.0.1:18084".into()),
        };
        assert_eq!(context_manifests(&same, &env), Some(dir.path().into()));
        assert_eq!(context_manifests(&flag, &env), None);
        // A directory since removed names nothing.
        save(
            &env,
            &MeshContext {
                manifests: Some(dir.path().join("gone")),
                ..context()
            },
        )
        .unwrap();
        assert_eq!(context_manifests(&none, &env), None);

        std::fs::write(&file, "{not json").unwrap();
        let err = none.resolve(&env).unwrap_err().to_string();
        assert!(err.contains("is not valid"), "{err}");
    }
}
