//! `ztmesh identity`: a running workload's certificate chain, or obtain
//! a workload certificate by hand, or inspect one.
//!
//! `ztmesh identity po/NAME -n NS` (as `linkerd identity`) finds the
//! workload in the manifests of the controller the context file names
//! (or `--manifests`), reads the chain its proxy presents in a TLS
//! handshake on its inbound port ([`crate::check::chain`]: public
//! certificates only, nothing sent) and prints each certificate: subject,
//! SANs (with the spiffe:// URI), issuer, validity, then its PEM.
//! `certify` does exactly what a proxy does (fresh P-256 key, CSR, Certify,
//! chain verification against the anchors) and writes the result as PEM,
//! so an operator can check the CA end to end with standard tools.

use anyhow::{Context, bail};
use std::path::PathBuf;
use x509_parser::prelude::*;
use ztmesh_proxy::identity::{Documents, verify};

/// `ztmesh identity`: a workload (`po/NAME`), or a subcommand.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The workload whose proxy's chain to show: `po/NAME` (`pod/NAME`),
    /// `ew/NAME` (`externalworkload/NAME`) or `deploy/NAME` (the workloads
    /// labelled app=NAME). A `po/NAME` with no such Pod means the
    /// ExternalWorkload NAME, as local-mode workloads are.
    #[arg(required = true)]
    workload: Option<String>,
    /// The workload's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The manifests directory that declares the workload [default: the
    /// one the controller in the context file reads].
    #[arg(long)]
    manifests: Option<PathBuf>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// The proxies' inbound port (where the chain is read).
    #[arg(long, default_value_t = 4143)]
    inbound_port: u16,
    /// How long the handshake may take.
    #[arg(long, value_parser = crate::flags::duration, default_value = "5s")]
    timeout: std::time::Duration,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Request a certificate from the Identity service, verify it and save it.
    Certify(CertifyArgs),
    /// Print the identity, SANs, issuer and validity of a PEM certificate chain.
    Inspect {
        /// A PEM file (leaf first).
        file: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct CertifyArgs {
    /// The identity to request, e.g. books.booksapp.serviceaccount.identity.linkerd.cluster.local.
    #[arg(long)]
    identity: String,
    /// A file holding the service-account token (from `ztmesh token create`).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The token itself.
    #[arg(long)]
    token: Option<String>,
    /// PEM trust anchors the returned chain must verify against (e.g. DIR/ca.crt).
    #[arg(long)]
    trust_anchors: PathBuf,
    /// host:port of the Identity service (plaintext on loopback, TLS
    /// otherwise) [default: the running controller's, from its context
    /// file, else 127.0.0.1:8080].
    #[arg(long)]
    identity_addr: Option<String>,
    /// The identity the service must prove over TLS.
    #[arg(
        long,
        default_value = "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
    )]
    identity_svc_name: String,
    /// Where to write leaf.pem, intermediates.pem and key.pem.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(cmd) = args.command else {
        return show_workload(&args);
    };
    match cmd {
        Command::Certify(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(certify(args)),
        Command::Inspect { file } => {
            let pem =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let certs = ztmesh_identity::pem::certificates(&pem, &file.display().to_string())?;
            for (i, der) in certs.iter().enumerate() {
                println!("certificate #{}", i + 1);
                describe(der)?;
            }
            Ok(())
        }
    }
}

async fn certify(args: CertifyArgs) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => bail!("pass --token-file or --token"),
    };
    let anchors_pem = std::fs::read(&args.trust_anchors)
        .with_context(|| format!("reading {}", args.trust_anchors.display()))?;
    let anchors = verify::anchors(&anchors_pem).map_err(anyhow::Error::msg)?;
    let documents = Documents::generate(&args.identity)?;
    let identity_addr = match &args.identity_addr {
        Some(addr) => addr.clone(),
        None => crate::mesh_context::load(&crate::mesh_context::ProcessEnv)?
            .map(|c| c.identity.to_string())
            .unwrap_or_else(|| "127.0.0.1:8080".into()),
    };
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: identity_addr.clone(),
        server_name: args.identity_svc_name.clone(),
        roots: Some(ztmesh_tls::roots_from_pem(&anchors_pem)?),
    })?;
    let mut client = linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel);
    let rsp = client
        .certify(linkerd2_proxy_api::identity::CertifyRequest {
            identity: args.identity.clone(),
            token,
            certificate_signing_request: documents.csr_der.clone(),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "Identity.Certify at {} failed: {:?}: {}",
                identity_addr,
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let leaf = rustls_pki_types::CertificateDer::from(rsp.leaf_certificate);
    let intermediates: Vec<_> = rsp
        .intermediate_certificates
        .into_iter()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    verify::verify(
        &leaf,
        &intermediates,
        &anchors,
        &args.identity,
        &documents.public_key,
    )
    .context("verifying the issued certificate")?;

    std::fs::create_dir_all(&args.out)?;
    let write = |name: &str, text: String, secret: bool| -> anyhow::Result<()> {
        let path = args.out.join(name);
        ztmesh_identity::install::write_atomically(&path, text.as_bytes(), secret)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
        Ok(())
    };
    write(
        "leaf.pem",
        ztmesh_identity::pem::encode("CERTIFICATE", &leaf),
        false,
    )?;
    write(
        "intermediates.pem",
        intermediates
            .iter()
            .map(|c| ztmesh_identity::pem::encode("CERTIFICATE", c))
            .collect(),
        false,
    )?;
    write(
        "key.pem",
        ztmesh_identity::pem::encode("PRIVATE KEY", &documents.key_pkcs8),
        true,
    )?;
    println!("verified against {}", args.trust_anchors.display());
    describe(&leaf)
}

/// What `KIND/NAME` names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Named {
    Pod(String),
    External(String),
    App(String),
}

#[derive(Debug, thiserror::Error)]
enum NameError {
    #[error("{0:?} is not KIND/NAME (po/NAME, ew/NAME or deploy/NAME)")]
    Form(String),
    #[error("unknown kind {0:?}: use po, ew or deploy (or pod, externalworkload, deployment)")]
    Kind(String),
}

fn parse_named(s: &str) -> Result<Named, NameError> {
    let (kind, name) = s
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .ok_or_else(|| NameError::Form(s.into()))?;
    match kind.to_ascii_lowercase().as_str() {
        "po" | "pod" | "pods" => Ok(Named::Pod(name.into())),
        "ew" | "externalworkload" | "externalworkloads" => Ok(Named::External(name.into())),
        "deploy" | "deployment" | "deployments" => Ok(Named::App(name.into())),
        _ => Err(NameError::Kind(kind.into())),
    }
}

/// The workloads `named` selects among `all` (of one namespace).
fn select<'a>(
    all: &'a [crate::check::mesh::Workload],
    named: &Named,
) -> Vec<&'a crate::check::mesh::Workload> {
    use ztmesh_policy::WorkloadRef;
    let is = |w: &&crate::check::mesh::Workload, want: &WorkloadRef| &w.workload == want;
    match named {
        Named::Pod(n) => {
            let pods: Vec<_> = all
                .iter()
                .filter(|w| is(w, &WorkloadRef::Pod(n.clone())))
                .collect();
            if !pods.is_empty() {
                return pods;
            }
            all.iter()
                .filter(|w| is(w, &WorkloadRef::External(n.clone())))
                .collect()
        }
        Named::External(n) => all
            .iter()
            .filter(|w| is(w, &WorkloadRef::External(n.clone())))
            .collect(),
        Named::App(n) => all
            .iter()
            .filter(|w| w.labels.get("app") == Some(n))
            .collect(),
    }
}

fn show_workload(args: &Args) -> anyhow::Result<()> {
    let given = args.workload.as_deref().expect("clap requires a workload");
    let named = parse_named(given)?;
    let manifests = match &args.manifests {
        Some(m) => m.clone(),
        None => {
            let target = crate::check::mesh::Target::find(
                &args.controller,
                None,
                None,
                &crate::mesh_context::ProcessEnv,
            );
            target
                .resolved?
                .manifests
                .context("the controller's manifests directory is unknown: pass --manifests DIR")?
        }
    };
    let (resources, _) = crate::check::mesh::read_manifests(&manifests);
    let all = crate::check::mesh::workloads(&resources, Some(&args.namespace));
    let found = select(&all, &named);
    if found.is_empty() {
        bail!(
            "no workload {given} with an address in namespace {} of {}",
            args.namespace,
            manifests.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for w in found {
        let addr = std::net::SocketAddr::new(w.ip, args.inbound_port);
        let chain = runtime
            .block_on(crate::check::chain::fetch(addr, &w.identity, args.timeout))
            .with_context(|| format!("reading {}'s chain from its proxy", w.display()))?;
        println!("{} ({addr}, identity {})", w.display(), w.identity);
        for (i, der) in chain.iter().enumerate() {
            let role = if i == 0 { "leaf" } else { "intermediate" };
            println!("certificate #{} ({role})", i + 1);
            describe(der)?;
            print!("{}", ztmesh_identity::pem::encode("CERTIFICATE", der));
        }
    }
    Ok(())
}

fn describe(der: &[u8]) -> anyhow::Result<()> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| anyhow::anyhow!("not a valid certificate: {e}"))?;
    println!("  subject:    {}", cert.subject());
    println!("  issuer:     {}", cert.issuer());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => println!("  SAN DNS:    {d}"),
                GeneralName::URI(u) => println!("  SAN URI:    {u}"),
                other => println!("  SAN:        {other}"),
            }
        }
    }
    println!("  not before: {}", cert.validity().not_before);
    println!("  not after:  {}", cert.validity().not_after);
    println!("  serial:     {}", cert.raw_serial_as_string());
    println!("  CA:         {}", cert.is_ca());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names_as_linkerd_writes_them() {
        let cases = [
            ("po/authors", Ok(Named::Pod("authors".into()))),
            ("pod/authors", Ok(Named::Pod("authors".into()))),
            ("ew/authors", Ok(Named::External("authors".into()))),
            ("deploy/webapp", Ok(Named::App("webapp".into()))),
            ("svc/authors", Err("unknown kind \"svc\"")),
            ("authors", Err("is not KIND/NAME")),
            ("po/", Err("is not KIND/NAME")),
        ];
        for (given, want) in cases {
            match (parse_named(given), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{given}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{given}: {e}"),
                (got, want) => panic!("{given}: {got:?}, want {want:?}"),
            }
        }
    }
}
