//! Container images as local programs: Linkerd's proxy image runs
//! proxy-init (when its command is Linkerd's proxy-init) or the proxy,
//! the app images the sample app; [`argv`] is what a container runs.
//! The real linkerd2-proxy runs behind the step Linkerd's proxy image
//! runs first (its entrypoint, linkerd2-proxy-identity): a P-256 key
//! (`key.p8`, PKCS#8 DER) and a CSR for the local identity (`csr.der`)
//! written to `LINKERD2_PROXY_IDENTITY_DIR`, which linkerd2-proxy reads
//! and does not write itself. ztmesh's proxy reads them when they are
//! there and otherwise makes its key in memory, so it needs no such step.

use super::spec::{self, Container};
use std::path::PathBuf;

/// The proxy image's first step, as a shell script run in the container
/// (`$1` the proxy): the identity documents, then the proxy. The key is
/// PKCS#8 (what linkerd2-proxy parses; `genpkey -outform DER` would
/// write SEC1), its inner ECPrivateKey without the curve, as Go's
/// `x509.MarshalPKCS8PrivateKey` writes it.
pub const LINKERD_PROXY_ENTRYPOINT: &str = r#"set -e
dir="$LINKERD2_PROXY_IDENTITY_DIR"
name="$LINKERD2_PROXY_IDENTITY_LOCAL_NAME"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/key.pem"
openssl pkcs8 -topk8 -nocrypt -in "$dir/key.pem" -outform DER -out "$dir/key.p8"
rm "$dir/key.pem"
openssl req -new -key "$dir/key.p8" -keyform DER -subj "/CN=$name" -addext "subjectAltName=DNS:$name" -outform DER -out "$dir/csr.der"
exec "$1""#;

/// What a container image runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// `ztmesh proxy-init` with the container's args (as the spec's user,
    /// with the capabilities it adds).
    ProxyInit,
    /// The proxy: `ztmesh proxy`, or the real linkerd2-proxy for the pods
    /// `Kubelet::run_pod` is told so, behind what Linkerd's proxy image
    /// runs first ([`LINKERD_PROXY_ENTRYPOINT`]).
    Proxy,
    /// `ztmesh app serve` named as the container, on its first port
    /// (all addresses), as nobody unless the spec names a user.
    SampleApp,
    /// ztmesh's own image (what `ztmesh inject` and the webhook put in a
    /// pod): the `ztmesh` binary with the container's args (`proxy`,
    /// `proxy-init ...`); with LINKERD2_PROXY_BIN, its `proxy` runs the
    /// real linkerd2-proxy as Linkerd's image would.
    Ztmesh,
}

/// The proxy binary a pod's [`Program::Proxy`] runs.
#[derive(Debug, Clone)]
pub enum ProxyBin {
    Ztmesh,
    Linkerd2(PathBuf),
}

/// Image repositories (without tag) to programs; Linkerd's proxy image
/// runs proxy-init when its command is Linkerd's proxy-init.
pub struct Images(Vec<(String, Program)>);

impl Images {
    pub fn linkerd() -> Self {
        Self(vec![
            ("cr.l5d.io/linkerd/proxy".into(), Program::Proxy),
            ("cr.l5d.io/linkerd/proxy-init".into(), Program::ProxyInit),
        ])
    }

    pub fn with(mut self, repository: &str, program: Program) -> Self {
        self.0.push((repository.into(), program));
        self
    }

    pub(super) fn program(&self, c: &Container) -> Program {
        // A tag follows the last ':' after the last '/'.
        let image = &c.image;
        let slash = image.rfind('/').map_or(0, |i| i + 1);
        let repo = match image[slash..].find(':') {
            Some(i) => &image[..slash + i],
            None => &image[..],
        };
        let program = self
            .0
            .iter()
            .find(|(r, _)| r == repo)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no program for image {image} (container {})", c.name));
        let init_command = c
            .command
            .first()
            .is_some_and(|c| c.ends_with("linkerd2-proxy-init"));
        if init_command {
            Program::ProxyInit
        } else {
            program
        }
    }
}

/// What container `c` runs as `program` (args expanded with its `env`).
pub fn argv(
    program: &Program,
    proxy: &ProxyBin,
    c: &Container,
    env: &[(String, String)],
) -> Vec<String> {
    let ztmesh = env!("CARGO_BIN_EXE_ztmesh").to_string();
    match (program, proxy) {
        (Program::ProxyInit, _) => [ztmesh, "proxy-init".into()]
            .into_iter()
            .chain(c.args.iter().map(|a| spec::expand(a, env)))
            .collect(),
        (Program::Proxy, ProxyBin::Ztmesh) => vec![ztmesh, "proxy".into()],
        (Program::Ztmesh, ProxyBin::Linkerd2(_))
            if c.args.first().is_some_and(|a| a == "proxy") =>
        {
            argv(&Program::Proxy, proxy, c, env)
        }
        (Program::Ztmesh, _) => std::iter::once(ztmesh)
            .chain(c.args.iter().map(|a| spec::expand(a, env)))
            .collect(),
        (Program::Proxy, ProxyBin::Linkerd2(path)) => vec![
            "sh".into(),
            "-c".into(),
            LINKERD_PROXY_ENTRYPOINT.into(),
            "linkerd2-proxy-identity".into(),
            path.display().to_string(),
        ],
        (Program::SampleApp, _) => {
            let http = c.ports.first().map_or("127.0.0.1:0".to_string(), |p| {
                format!("0.0.0.0:{}", p.container_port)
            });
            vec![
                ztmesh,
                "app".into(),
                "serve".into(),
                "--name".into(),
                c.name.clone(),
                "--http".into(),
                http,
            ]
        }
    }
}
