//! `ztmesh install`: the identity directory a local controller serves from
//! (`--dir`, [`local`]), the CustomResourceDefinitions (`--crds`,
//! [`crds`], written in [`schema`]'s structural language), or the control
//! plane for a Kubernetes cluster (`--kubernetes`, [`kubernetes`]). The
//! last two print YAML for `kubectl apply -f -`.

pub(crate) mod crds;
pub(crate) mod kubernetes;
mod local;
mod rotate_anchor;
mod schema;

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use ztmesh_identity::TrustDomain;
use ztmesh_identity::issuer::IssuerFiles;

#[derive(clap::Args)]
#[command(after_help = "Files written to DIR:\n  \
    ca.crt      trust anchor (give it to every proxy as LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS)\n  \
    ca.key      the anchor's key, 0600 (needed only by --rotate-issuer; move it offline otherwise)\n  \
    issuer.crt  identity issuer, signed by the anchor\n  \
    issuer.key  its key, 0600\n  \
    token.key   key that signs local service-account tokens, 0600\n\n\
    With --issuer-from, an issuer made elsewhere (cert-manager's tls.crt, tls.key and ca.crt,\n\
    e.g. from Vault) is validated and copied in instead of generating one.\n\n\
    On Kubernetes:\n  \
    ztmesh install --crds | kubectl apply -f -\n  \
    ztmesh install --kubernetes [--ha] | kubectl apply -f -\n\
    With --kubernetes, the trust anchor and issuer come from --identity-trust-anchors-file and\n\
    --identity-issuer-certificate-file / --identity-issuer-key-file, or from --dir (read, not\n\
    written), or are generated anew on every run: to apply again without replacing the trust\n\
    anchor proxies hold, create them once with `ztmesh install --dir D` and pass --dir D.")]
pub struct Args {
    /// Directory to write the identity files to (created if missing); with
    /// --kubernetes, the directory to read the trust anchor and issuer from.
    #[arg(long, required_unless_present_any = ["crds", "kubernetes"])]
    dir: Option<PathBuf>,
    /// The trust domain workload identities end in.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's namespace, part of every identity name.
    #[arg(long, visible_alias = "namespace", default_value = "linkerd")]
    control_plane_namespace: String,
    /// How long the trust anchor is valid.
    #[arg(long, default_value = "8760h", value_parser = crate::flags::duration)]
    anchor_validity: Duration,
    /// How long the identity issuer is valid.
    #[arg(long, default_value = "8760h", value_parser = crate::flags::duration)]
    issuer_validity: Duration,
    /// Replace existing files.
    #[arg(long, conflicts_with_all = ["crds", "kubernetes"])]
    force: bool,
    /// Import an issuer from a directory in cert-manager's layout.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["rotate_issuer", "crds", "kubernetes"])]
    issuer_from: Option<PathBuf>,
    /// Replace only the issuer, signed by the existing anchor (ca.crt + ca.key).
    #[arg(long, conflicts_with_all = ["crds", "kubernetes"])]
    rotate_issuer: bool,
    /// Rotate the trust anchor, one phase per run: add (a new anchor joins
    /// ca.crt), issue (a new issuer under it), remove (the old anchors
    /// leave ca.crt). Each phase checks the running proxies and reports;
    /// issue and remove refuse while a proxy would break, naming it.
    #[arg(long, value_enum, conflicts_with_all = ["crds", "kubernetes", "rotate_issuer", "issuer_from"])]
    rotate_anchor: Option<rotate_anchor::Phase>,
    /// With --rotate-anchor: the manifests naming the workloads whose
    /// proxies are checked [default: the controller's, from its context].
    #[arg(long, requires = "rotate_anchor")]
    manifests: Option<PathBuf>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,

    /// Print the CustomResourceDefinitions the controller reads.
    #[arg(long, conflicts_with_all = ["kubernetes", "dir"])]
    crds: bool,
    /// With --crds, leave out the Gateway API's HTTPRoute and GRPCRoute (the cluster has them).
    #[arg(long, requires = "crds")]
    skip_gateway_api: bool,
    /// Print the control plane for a Kubernetes cluster.
    #[arg(long)]
    kubernetes: bool,
    /// Three controller replicas, a PodDisruptionBudget and pod anti-affinity.
    #[arg(long, requires = "kubernetes")]
    ha: bool,
    /// The trust anchors (PEM) proxies verify against.
    #[arg(long, requires = "kubernetes", conflicts_with = "dir")]
    identity_trust_anchors_file: Option<PathBuf>,
    /// The identity issuer's certificate (PEM), signed by a trust anchor.
    #[arg(long, requires_all = ["identity_trust_anchors_file", "identity_issuer_key_file"])]
    identity_issuer_certificate_file: Option<PathBuf>,
    /// The identity issuer's private key (PEM, ECDSA P-256).
    #[arg(long, requires = "identity_issuer_certificate_file")]
    identity_issuer_key_file: Option<PathBuf>,
    /// Read the issuer from a kubernetes.io/tls Secret linkerd-identity-issuer
    /// (tls.crt, tls.key, ca.crt) managed elsewhere (cert-manager, Vault).
    #[arg(
        long,
        requires = "identity_trust_anchors_file",
        conflicts_with = "identity_issuer_certificate_file"
    )]
    identity_external_issuer: bool,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The controller's container image (no image is published: build and push your own).
    #[arg(long, default_value = concat!("ztmesh:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Address the proxy injector webhook by this https:// URL instead of its Service.
    #[arg(long, requires = "kubernetes", value_parser = webhook_url)]
    webhook_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum UrlError {
    #[error("{0:?} is not an https:// URL with a host")]
    NotHttps(String),
}

fn webhook_url(s: &str) -> Result<String, UrlError> {
    let uri: http::Uri = s.parse().map_err(|_| UrlError::NotHttps(s.into()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(UrlError::NotHttps(s.into()));
    }
    Ok(s.into())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.crds {
        return print(&crds::objects(args.skip_gateway_api));
    }
    if args.kubernetes {
        return print(&kubernetes_objects(&args)?);
    }
    let dir = args.dir.clone().expect("clap requires --dir");
    let trust = TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    if let Some(phase) = args.rotate_anchor {
        let opts = ztmesh_identity::install::InstallOptions {
            trust,
            anchor_validity: args.anchor_validity,
            issuer_validity: args.issuer_validity,
            force: args.force,
        };
        let observe = rotate_anchor::Observe {
            controller: args.controller.clone(),
            manifests: args.manifests.clone(),
        };
        return rotate_anchor::run(&dir, phase, &opts, &observe);
    }
    let action = match (&args.issuer_from, args.rotate_issuer) {
        (_, true) => local::Action::RotateIssuer,
        (Some(from), false) => local::Action::ImportIssuer(from.clone()),
        (None, false) => local::Action::Install,
    };
    let validity = (args.anchor_validity, args.issuer_validity);
    local::run(&dir, trust, validity, args.force, &action)
}

fn kubernetes_objects(args: &Args) -> anyhow::Result<Vec<serde_json::Value>> {
    use kubernetes::pki::IdentitySource;
    let trust = TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    let source = match (
        &args.identity_trust_anchors_file,
        &args.identity_issuer_certificate_file,
        &args.identity_issuer_key_file,
        &args.dir,
    ) {
        (Some(anchors), _, _, _) if args.identity_external_issuer => IdentitySource::External {
            anchors: anchors.clone(),
        },
        (Some(anchors), Some(cert), Some(key), _) => IdentitySource::Files(IssuerFiles {
            anchors: anchors.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        (Some(_), _, _, _) => anyhow::bail!(
            "--identity-trust-anchors-file needs --identity-issuer-certificate-file and --identity-issuer-key-file, or --identity-external-issuer"
        ),
        (None, _, _, Some(dir)) => IdentitySource::Files(IssuerFiles::in_dir(dir)?),
        (None, _, _, None) => IdentitySource::Generate,
    };
    let opts = kubernetes::Options {
        namespace: args.control_plane_namespace.clone(),
        trust_domain: args.trust_domain.clone(),
        cluster_domain: args.cluster_domain.clone(),
        image: args.image.clone(),
        ha: args.ha,
        webhook_url: args.webhook_url.clone(),
    };
    let material = kubernetes::pki::material(
        &source,
        &trust,
        (args.anchor_validity, args.issuer_validity),
        opts.webhook_names(),
        SystemTime::now(),
    )
    .context("the identity for --kubernetes")?;
    Ok(kubernetes::objects(&opts, &material))
}

/// Prints `objects` as one YAML stream (a reader that stops early, like
/// `head`, is not an error).
fn print(objects: &[serde_json::Value]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = String::new();
    for o in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(o)?);
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
