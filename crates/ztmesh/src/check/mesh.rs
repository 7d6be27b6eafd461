//! Finding the mesh and observing it once, for every group's checks.
//!
//! [`Target`]: the controller's addresses and directories, from
//! `--controller` / the context file, with `--identity-dir` and
//! `--manifests` overriding. [`TrustFiles`]: the anchors and the issuer
//! read from the identity directory. [`observe`] makes every network call
//! a run needs (the four controller APIs, each workload's admin
//! `/ready` and `/metrics`, the chain its proxy presents, the policy its
//! controller serves for an undeclared port) and returns [`Observed`],
//! plain data the checks judge.

use super::chain::{self, ChainError};
use super::control_plane::Apis;
use super::workloads::{Workload, workloads};
use crate::mesh_context::{ContextError, ControllerArg, Env};
use crate::viz::client::GetError;
use crate::viz::scrape::Sample;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ztmesh_resources::Resource;

/// What a run was pointed at.
pub(crate) struct Target {
    pub(crate) resolved: Result<Resolved, ContextError>,
    pub(crate) identity_dir: Option<PathBuf>,
}

/// A controller's addresses (those the context file records; with only
/// `--controller`, the viz API's) and the directories it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) viz: String,
    pub(crate) identity: Option<SocketAddr>,
    pub(crate) destination: Option<SocketAddr>,
    pub(crate) policy: Option<SocketAddr>,
    pub(crate) identity_dir: Option<PathBuf>,
    pub(crate) manifests: Option<PathBuf>,
}

impl Resolved {
    pub(crate) fn from_context(c: &crate::mesh_context::MeshContext) -> Self {
        Self {
            viz: c.viz.to_string(),
            identity: Some(c.identity),
            destination: Some(c.destination),
            policy: Some(c.policy),
            identity_dir: c.identity_dir.clone(),
            manifests: c.manifests.clone(),
        }
    }
}

impl Target {
    pub(crate) fn find(
        arg: &ControllerArg,
        identity_dir: Option<PathBuf>,
        manifests: Option<PathBuf>,
        env: &dyn Env,
    ) -> Self {
        let file = crate::mesh_context::load(env).ok().flatten();
        let resolved = arg.resolve(env).map(|c| {
            // The context file still tells the other addresses when it
            // describes the controller the flag names.
            let context = c
                .context
                .or_else(|| file.clone().filter(|f| f.viz.to_string() == c.viz));
            let mut r = match context {
                Some(context) => Resolved::from_context(&context),
                None => Resolved {
                    viz: c.viz,
                    identity: None,
                    destination: None,
                    policy: None,
                    identity_dir: None,
                    manifests: None,
                },
            };
            if identity_dir.is_some() {
                r.identity_dir = identity_dir.clone();
            }
            if manifests.is_some() {
                r.manifests = manifests.clone();
            }
            r
        });
        // Another controller's directories are not this context's.
        let identity_dir =
            identity_dir.or_else(|| resolved.as_ref().ok().and_then(|r| r.identity_dir.clone()));
        Self {
            resolved,
            identity_dir,
        }
    }
}

/// The identity directory's public files: anchors, and the issuer's chain.
#[derive(Debug, Default)]
pub(crate) struct TrustFiles {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) anchors_pem: Option<Vec<u8>>,
    pub(crate) anchors: Vec<CertificateDer<'static>>,
    /// The issuer certificate (first), as `ztmesh install` or cert-manager wrote it.
    pub(crate) issuer: Vec<CertificateDer<'static>>,
    /// Loading the issuer as the controller does (validity, chain, key).
    pub(crate) load: Option<Result<(), ztmesh_identity::IssuerError>>,
}

impl TrustFiles {
    pub(crate) fn read(dir: Option<&Path>) -> Self {
        let Some(dir) = dir else {
            return Self::default();
        };
        let anchors_pem = std::fs::read(dir.join(ztmesh_identity::install::ANCHORS_FILE)).ok();
        let anchors = anchors_pem
            .as_deref()
            .and_then(|p| ztmesh_identity::pem::certificates(p, "ca.crt").ok())
            .unwrap_or_default();
        let issuer = ["issuer.crt", "tls.crt"]
            .iter()
            .find_map(|f| std::fs::read(dir.join(f)).ok())
            .and_then(|p| ztmesh_identity::pem::certificates(&p, "issuer").ok())
            .unwrap_or_default();
        let load =
            Some(ztmesh_identity::Issuer::load_dir(dir, std::time::SystemTime::now()).map(|_| ()));
        Self {
            dir: Some(dir.to_path_buf()),
            anchors_pem,
            anchors,
            issuer,
            load,
        }
    }
}

/// The proxy's outbound and tap listeners (linkerd2-proxy's defaults):
/// not app ports.
const PROXY_OUTBOUND_PORT: u16 = 4140;
const PROXY_TAP_PORT: u16 = 4190;

/// Probe settings.
pub(crate) struct Probe {
    pub(crate) admin_port: u16,
    pub(crate) inbound_port: u16,
    pub(crate) timeout: Duration,
    pub(crate) namespace: Option<String>,
}

/// What one workload's proxy showed.
#[derive(Debug)]
pub(crate) struct WorkloadObs {
    pub(crate) workload: Workload,
    /// Its proxy's admin address (`/ready`, `/metrics`).
    pub(crate) admin: SocketAddr,
    pub(crate) ready: Result<(), GetError>,
    pub(crate) metrics: Result<Vec<Sample>, GetError>,
    pub(crate) chain: Result<Vec<CertificateDer<'static>>, ChainError>,
    /// The policy the controller serves for a port no Server selects:
    /// the default in force (`all-unauthenticated`, `deny`, ...).
    pub(crate) default_policy: Option<String>,
    /// The ports probed at the workload's address (explicit mode only:
    /// the declared ports and every socket listening on that address on
    /// this host, but the proxy's own).
    pub(crate) probed_ports: Vec<u16>,
    /// Those that accept connections without the proxy.
    pub(crate) open_app_ports: Vec<u16>,
}

/// Everything a run observed.
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) apis: Apis,
    pub(crate) manifests_dir: Option<PathBuf>,
    /// The directory's own validation (`ztmesh controller --check`'s).
    pub(crate) diagnostics: Vec<ztmesh_resources::Diagnostic>,
    /// The resources in force (as the controller reads them).
    pub(crate) resources: Vec<Resource>,
    /// Files the controller refused (its `/status`).
    pub(crate) refused: Vec<(String, Vec<String>)>,
    pub(crate) workloads: Vec<WorkloadObs>,
}

/// The resources of a manifests directory and its diagnostics.
pub(crate) fn read_manifests(dir: &Path) -> (Vec<Resource>, Vec<ztmesh_resources::Diagnostic>) {
    let mut store = ztmesh_store::ManifestDir::new(dir);
    let changes = store.scan();
    (store.resources().cloned().collect(), changes.diagnostics)
}

pub(crate) async fn observe(target: &Resolved, trust: &TrustFiles, probe: &Probe) -> Observed {
    let (resources, diagnostics) = match &target.manifests {
        Some(dir) => read_manifests(dir),
        None => Default::default(),
    };
    let workloads = workloads(&resources, probe.namespace.as_deref());
    let roots = trust
        .anchors_pem
        .as_deref()
        .and_then(|p| ztmesh_tls::roots_from_pem(p).ok());
    let first = workloads.first();
    let (viz, refused) = super::control_plane::viz(&target.viz, probe.timeout).await;
    let apis = Apis {
        identity: super::control_plane::identity(target.identity, roots.clone(), probe.timeout)
            .await,
        destination: super::control_plane::destination(
            target.destination,
            roots.clone(),
            &resources,
            probe.timeout,
        )
        .await,
        policy: super::control_plane::policy(target.policy, roots.clone(), first, probe.timeout)
            .await,
        viz,
    };
    let mut observed = Vec::new();
    for w in workloads {
        let admin = SocketAddr::new(w.ip, probe.admin_port);
        let ready = crate::viz::client::get_text(&admin.to_string(), "/ready", probe.timeout)
            .await
            .map(|_| ());
        let metrics = crate::viz::scrape::fetch(admin, probe.timeout)
            .await
            .map(|t| crate::viz::scrape::parse(&t));
        let inbound = SocketAddr::new(w.ip, probe.inbound_port);
        let chain = chain::fetch(inbound, &w.identity, probe.timeout).await;
        let default_policy = match target.policy {
            Some(addr) => {
                super::control_plane::default_policy(addr, roots.clone(), &w, probe.timeout).await
            }
            None => None,
        };
        let mut open_app_ports = Vec::new();
        let mut probed_ports = Vec::new();
        if w.explicit {
            let proxy_ports = [
                probe.inbound_port,
                probe.admin_port,
                PROXY_OUTBOUND_PORT,
                PROXY_TAP_PORT,
            ];
            probed_ports = w
                .ports
                .iter()
                .copied()
                .chain(super::sockets::listening(w.ip))
                .filter(|p| !proxy_ports.contains(p))
                .collect();
            probed_ports.sort_unstable();
            probed_ports.dedup();
        }
        for port in &probed_ports {
            {
                let addr = SocketAddr::new(w.ip, *port);
                let connect = tokio::net::TcpStream::connect(addr);
                if let Ok(Ok(_)) = tokio::time::timeout(probe.timeout, connect).await {
                    open_app_ports.push(*port);
                }
            }
        }
        observed.push(WorkloadObs {
            workload: w,
            admin,
            ready,
            metrics,
            chain,
            default_policy,
            probed_ports,
            open_app_ports,
        });
    }
    Observed {
        apis,
        manifests_dir: target.manifests.clone(),
        diagnostics,
        resources,
        refused,
        workloads: observed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh_context::MeshContext;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    #[test]
    fn the_context_file_then_flags_decide_what_is_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let env = MapEnv(HashMap::from([(
            "ZTMESH_CONTEXT",
            tmp.path().join("c.json").display().to_string(),
        )]));
        let none = ControllerArg::default();
        let found = Target::find(&none, None, None, &env);
        assert!(found.resolved.is_err(), "no context, no flag");
        assert_eq!(found.identity_dir, None);

        let context = MeshContext {
            viz: "127.0.0.1:18084".parse().unwrap(),
            identity: "127.0.0.1:18080".parse().unwrap(),
            destination: "127.0.0.1:18086".parse().unwrap(),
            policy: "127.0.0.1:18090".parse().unwrap(),
            identity_dir: Some("/id".into()),
            manifests: Some("/m".into()),
            written_by: "demo".into(),
            pid: 1,
        };
        crate::mesh_context::save(&env, &context).unwrap();
        // (flag, --identity-dir, --manifests) -> (identity API known, identity dir, manifests)
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: [(Case, (bool, Option<&str>, Option<&str>)); 4] = [
            ((None, None, None), (true, Some("/id"), Some("/m"))),
            (
                (None, Some("/other"), Some("/m2")),
                (true, Some("/other"), Some("/m2")),
            ),
            // The flag names the controller of the context file: all its addresses.
            (
                (Some("127.0.0.1:18084"), None, None),
                (true, Some("/id"), Some("/m")),
            ),
            // Another controller: only its viz API is known.
            ((Some("10.0.0.1:8084"), None, None), (false, None, None)),
        ];
        for ((flag, id_dir, manifests), (identity_known, want_dir, want_manifests)) in cases {
            let arg = ControllerArg {
                controller: flag.map(String::from),
            };
            let found = Target::find(
                &arg,
                id_dir.map(PathBuf::from),
                manifests.map(PathBuf::from),
                &env,
            );
            let r = found.resolved.unwrap();
            assert_eq!(r.identity.is_some(), identity_known, "{flag:?}");
            assert_eq!(
                found.identity_dir.as_deref(),
                want_dir.map(Path::new),
                "{flag:?}"
            );
            assert_eq!(
                r.manifests.as_deref(),
                want_manifests.map(Path::new),
                "{flag:?}"
            );
        }
    }
}
