//! `ztmesh identity`: a running workload's certificate chain, or obtain
//! a workload certificate by hand, or inspect one.
//!
//! `ztmesh identity KIND/NAME -n NS` (as `linkerd identity`) finds the
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

/// `ztmesh identity`: a workload (`KIND/NAME`), or a subcommand.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The workload whose proxy's chain to show, named as every command
    /// names one: `po/NAME`, `ew/NAME`, `deploy/NAME` (`sts/`, `ds/`: the
    /// workloads labelled app=NAME, each shown), a bare NAME, or the older
    /// `NS/KIND/NAME`.
    #[arg(required = true)]
    workload: Option<String>,
    /// The workload's namespace [default: default].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
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

/// The workloads `name` selects among `all` (those of namespace `ns`
/// with an address): every one labelled `app=NAME` for an owner's name,
/// else the one [`crate::resource::resolve`] finds.
fn select<'a>(
    resources: &[ztmesh_resources::Resource],
    all: &'a [crate::check::workloads::Workload],
    ns: &str,
    name: &crate::resource::WorkloadName,
) -> Result<Vec<&'a crate::check::workloads::Workload>, crate::resource::NoSuchWorkload> {
    if let crate::resource::WorkloadName::App(_, app) = name {
        let labelled: Vec<_> = all
            .iter()
            .filter(|w| w.labels.get("app") == Some(app))
            .collect();
        if !labelled.is_empty() {
            return Ok(labelled);
        }
    }
    let mut index = ztmesh_policy::Index::new(ztmesh_policy::ClusterInfo::default());
    for r in resources {
        index.apply(r.clone());
    }
    let found = crate::resource::resolve(&index, ns, name)?;
    Ok(all.iter().filter(|w| w.workload == found).collect())
}

fn show_workload(args: &Args) -> anyhow::Result<()> {
    let given = args.workload.as_deref().expect("clap requires a workload");
    let (ns, name) = crate::resource::workload_arg(given, args.namespace.as_deref())?;
    let ns = ns.unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into());
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
    let all = crate::check::workloads::workloads(&resources, Some(&ns));
    let found = select(&resources, &all, &ns, &name)
        .with_context(|| format!("in the manifests of {}", manifests.display()))?;
    if found.is_empty() {
        bail!(
            "{name} in namespace {ns} has no address in {}: nothing to ask",
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

    /// One parser for every command: sts/ds, NS/KIND/NAME, and po/NAME
    /// is a Pod only.
    #[test]
    fn workloads_named_as_every_command_names_them() {
        let yaml = "\
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: web, containers: [{name: c, image: i}]}
status: {podIP: 127.0.9.21}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: web, containers: [{name: c, image: i}]}
status: {podIP: 127.0.9.22}
---
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  meshTLS: {identity: db.shop.serviceaccount.identity.linkerd.cluster.local, serverName: db.shop.serviceaccount.identity.linkerd.cluster.local}
  workloadIPs: [{ip: 127.0.9.23}]
";
        let resources = ztmesh_resources::load_str(yaml, "t.yaml").resources;
        assert_eq!(resources.len(), 3);
        let all = crate::check::workloads::workloads(&resources, Some("shop"));
        assert_eq!(all.len(), 3, "{all:#?}");
        // (argument, -n, the workloads shown, or an error containing)
        let cases: [(&str, Option<&str>, Result<&[&str], &str>); 8] = [
            ("po/web-1", Some("shop"), Ok(&["web-1"])),
            ("sts/web", Some("shop"), Ok(&["web-1", "web-2"])),
            ("ds/web", Some("shop"), Ok(&["web-1", "web-2"])),
            ("deploy/web", Some("shop"), Ok(&["web-1", "web-2"])),
            ("shop/ew/db", None, Ok(&["externalworkload/db"])),
            ("db", Some("shop"), Ok(&["externalworkload/db"])),
            (
                "po/db",
                Some("shop"),
                Err("no workload pod/db in namespace shop"),
            ),
            ("svc/web", Some("shop"), Err("not svc objects")),
        ];
        for (arg, flag, want) in cases {
            let got = crate::resource::workload_arg(arg, flag)
                .map_err(anyhow::Error::from)
                .and_then(|(ns, name)| {
                    let ns = ns.unwrap_or_else(|| "default".into());
                    let found = select(&resources, &all, &ns, &name)?;
                    Ok(found.iter().map(|w| w.name.clone()).collect::<Vec<_>>())
                });
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{arg}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{arg}: {e}"),
                (got, want) => panic!("{arg}: {got:?}, want {want:?}"),
            }
        }
    }
}
