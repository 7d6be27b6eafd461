//! The demo's identity steps: proxy identity clients certified by the
//! controller, with tokens signed by the install's token key.

use anyhow::bail;
use std::path::Path;
use std::time::{Duration, SystemTime};
use ztmesh_identity::install;
use ztmesh_identity::token::{ServiceAccount, TokenSigner};
use ztmesh_proxy::identity::{Documents, IdentityConfig, IdentityDaemon, IdentityStatus};

pub fn token_file(
    dir: &Path,
    signer: &TokenSigner,
    ns: &str,
    sa: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let token = signer.sign(
        &ServiceAccount {
            namespace: ns.into(),
            name: sa.into(),
        },
        Duration::from_secs(3600),
        SystemTime::now(),
    )?;
    let path = dir.join(format!("{ns}-{sa}.token"));
    install::write_atomically(&path, token.as_bytes(), true)?;
    Ok(path)
}

fn workload_env(
    dir: &Path,
    addr: &str,
    token: &Path,
    name: &str,
) -> anyhow::Result<IdentityConfig> {
    let env: std::collections::HashMap<String, String> = [
        (
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            String::from_utf8(std::fs::read(dir.join(install::ANCHORS_FILE))?)?,
        ),
        (
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            token.display().to_string(),
        ),
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", addr.to_string()),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local".into(),
        ),
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", name.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(IdentityConfig::from_env(&env)?)
}

/// Runs one proxy identity client until it holds a certificate.
pub async fn certify_workload(
    dir: &Path,
    addr: &str,
    signer: &TokenSigner,
    ns: &str,
    sa: &str,
) -> anyhow::Result<IdentityStatus> {
    let name = format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    let config = workload_env(dir, addr, &token_file(dir, signer, ns, sa)?, &name)?;
    let client = identity_client(&config)?;
    let daemon = IdentityDaemon::new(&config, Documents::generate(&name)?, client)
        .map_err(anyhow::Error::msg)?;
    let mut status = daemon.status();
    let task = tokio::spawn(daemon.run());
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| *s != IdentityStatus::Pending),
    )
    .await;
    task.abort();
    match result {
        Ok(Ok(s)) => Ok(s.clone()),
        _ => bail!("{name}: no certificate within 10s"),
    }
}

/// One Certify round for `want` using `token_for`'s token; returns the chain.
pub async fn certify_with_token(
    dir: &Path,
    addr: &str,
    signer: &TokenSigner,
    token_for: (&str, &str),
    want: (&str, &str),
) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    let name = format!(
        "{}.{}.serviceaccount.identity.linkerd.cluster.local",
        want.1, want.0
    );
    let config = workload_env(
        dir,
        addr,
        &token_file(dir, signer, token_for.0, token_for.1)?,
        &name,
    )?;
    let client = identity_client(&config)?;
    let mut daemon = IdentityDaemon::new(&config, Documents::generate(&name)?, client)
        .map_err(anyhow::Error::msg)?;
    daemon.refresh().await?;
    Ok(daemon
        .store()
        .get()
        .map(|c| c.cert.clone())
        .unwrap_or_default())
}

fn identity_client(
    config: &IdentityConfig,
) -> anyhow::Result<
    linkerd2_proxy_api::identity::identity_client::IdentityClient<tonic::transport::Channel>,
> {
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: config.svc_addr.clone(),
        server_name: config.svc_name.clone(),
        roots: Some(ztmesh_tls::roots_from_pem(
            config.trust_anchors_pem.as_bytes(),
        )?),
    })?;
    Ok(linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel))
}
