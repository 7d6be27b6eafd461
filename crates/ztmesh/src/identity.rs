//! `ztmesh identity`: obtain a workload certificate by hand, or inspect one.
//!
//! `certify` does exactly what a proxy does (fresh P-256 key, CSR, Certify,
//! chain verification against the anchors) and writes the result as PEM,
//! so an operator can check the CA end to end with standard tools.

use anyhow::{Context, bail};
use std::path::PathBuf;
use x509_parser::prelude::*;
use ztmesh_proxy::identity::{Documents, verify};

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

pub fn run(cmd: Command) -> anyhow::Result<()> {
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
