//! The certificates `install --kubernetes` puts in the cluster: the trust
//! anchors, the identity issuer (read from Linkerd's flags or `--dir`,
//! validated, or generated), and the proxy injector's webhook serving
//! certificate with the CA that goes in the webhook's `caBundle`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use ztmesh_identity::issuer::{Issuer, IssuerError, IssuerFiles};
use ztmesh_identity::{TrustDomain, pki};

/// Where the trust anchors and issuer come from.
#[derive(Clone, Debug)]
pub(crate) enum IdentitySource {
    /// A new anchor and issuer.
    Generate,
    /// Linkerd's `--identity-trust-anchors-file` and issuer files, or a
    /// `ztmesh install --dir` directory.
    Files(IssuerFiles),
    /// Only the anchors; the issuer Secret is managed elsewhere
    /// (cert-manager, Vault) as `kubernetes.io/tls`.
    External { anchors: PathBuf },
}

/// The PEM the manifests carry.
pub(crate) struct Material {
    pub(crate) anchors_pem: String,
    /// The issuer's certificate and key; `None` with an external issuer.
    pub(crate) issuer: Option<(String, String)>,
    pub(crate) webhook: WebhookTls,
}

/// The proxy injector's serving certificate and the CA that signed it.
pub(crate) struct WebhookTls {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 PEM", .0.display())]
    NotUtf8(PathBuf),
    #[error("the issuer is refused: {0}")]
    Issuer(#[from] IssuerError),
    #[error("{}: no certificate in it", .0.display())]
    NoAnchors(PathBuf),
}

fn read_pem(path: &Path) -> Result<String, PkiError> {
    let bytes = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.into(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| PkiError::NotUtf8(path.into()))
}

/// The identity material from `source`, and a new webhook certificate for
/// `webhook_names` (DNS names or IP addresses).
pub(crate) fn material(
    source: &IdentitySource,
    trust: &TrustDomain,
    validity: (Duration, Duration),
    webhook_names: Vec<String>,
    now: SystemTime,
) -> Result<Material, PkiError> {
    let (anchor_validity, issuer_validity) = validity;
    let (anchors_pem, issuer) = match source {
        IdentitySource::Generate => {
            let anchor = pki::trust_anchor(trust, anchor_validity, now)?;
            let issuer = pki::issuer(&anchor, trust, issuer_validity, now)?;
            (
                anchor.cert_pem(),
                Some((issuer.cert_pem(), issuer.key_pem())),
            )
        }
        IdentitySource::Files(files) => {
            let [anchors, cert, key] =
                [&files.anchors, &files.cert, &files.key].map(|p| read_pem(p));
            let (anchors, cert, key) = (anchors?, cert?, key?);
            Issuer::from_pem(
                anchors.as_bytes(),
                cert.as_bytes(),
                key.as_bytes(),
                files,
                now,
            )?;
            (anchors, Some((cert, key)))
        }
        IdentitySource::External { anchors } => {
            let pem = read_pem(anchors)?;
            let parsed = ztmesh_identity::TrustAnchors::from_pem(
                pem.as_bytes(),
                &anchors.display().to_string(),
            )?;
            if parsed.certificates().is_empty() {
                return Err(PkiError::NoAnchors(anchors.clone()));
            }
            (pem, None)
        }
    };
    let webhook = webhook_tls(webhook_names, issuer_validity, now)?;
    Ok(Material {
        anchors_pem,
        issuer,
        webhook,
    })
}

fn webhook_tls(
    names: Vec<String>,
    validity: Duration,
    now: SystemTime,
) -> Result<WebhookTls, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let window = |p: &mut CertificateParams| {
        p.not_before = (now - Duration::from_secs(60)).into();
        p.not_after = (now + validity).into();
    };
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ztmesh proxy injector CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    window(&mut ca_params);
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = rcgen::Issuer::new(ca_params, ca_key);

    let cn = names.first().cloned().unwrap_or_default();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, cn);
    window(&mut params);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(WebhookTls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
