//! The identity directory on disk, as `ztmesh install` writes it.
//!
//! `ca.crt` (trust anchors), `issuer.crt`, `issuer.key` and `token.key` (the
//! local token-signing key), plus `ca.key`, the anchor's key, which only
//! [`rotate_issuer`] needs: move it offline if the issuer will be rotated
//! elsewhere. Keys are written mode 0600. Every file is
//! written to a temporary name and renamed into place, so a controller
//! watching the directory never reads half a file.

use crate::issuer::{Issuer, IssuerError, IssuerFiles};
use crate::name::TrustDomain;
use crate::pki;
use crate::token::{TokenError, TokenSigner};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const ANCHORS_FILE: &str = "ca.crt";
pub const ANCHOR_KEY_FILE: &str = "ca.key";
pub const ISSUER_CERT_FILE: &str = "issuer.crt";
pub const ISSUER_KEY_FILE: &str = "issuer.key";
pub const TOKEN_KEY_FILE: &str = "token.key";

#[derive(Clone, Debug)]
pub struct InstallOptions {
    pub trust: TrustDomain,
    pub anchor_validity: Duration,
    pub issuer_validity: Duration,
    pub force: bool,
}

/// What was written, for the operator.
#[derive(Debug)]
pub struct Installed {
    pub files: Vec<PathBuf>,
    pub anchor_fingerprints: Vec<String>,
    pub issuer_not_after: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{} already exists; refusing to overwrite it (pass --force to replace the identity files)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("generating keys and certificates failed: {0}")]
    Generate(String),
    #[error("the issuer to import is refused: {0}")]
    Issuer(#[from] IssuerError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            trust: TrustDomain::default(),
            anchor_validity: Duration::from_secs(8760 * 3600),
            issuer_validity: Duration::from_secs(8760 * 3600),
            force: false,
        }
    }
}

/// Generates a new trust anchor, issuer and token key into `dir`.
pub fn install(
    dir: &Path,
    opts: &InstallOptions,
    now: SystemTime,
) -> Result<Installed, InstallError> {
    let targets = [
        ANCHORS_FILE,
        ANCHOR_KEY_FILE,
        ISSUER_CERT_FILE,
        ISSUER_KEY_FILE,
        TOKEN_KEY_FILE,
    ];
    check_free(dir, &targets, opts.force)?;
    let generate = |e: rcgen::Error| InstallError::Generate(e.to_string());
    let anchor = pki::trust_anchor(&opts.trust, opts.anchor_validity, now).map_err(generate)?;
    let issuer = pki::issuer(&anchor, &opts.trust, opts.issuer_validity, now).map_err(generate)?;
    let token = TokenSigner::generate()?;
    let contents = [
        (ANCHORS_FILE, anchor.cert_pem(), false),
        (ANCHOR_KEY_FILE, anchor.key_pem(), true),
        (ISSUER_CERT_FILE, issuer.cert_pem(), false),
        (ISSUER_KEY_FILE, issuer.key_pem(), true),
        (TOKEN_KEY_FILE, token.to_pem()?, true),
    ];
    write_all(dir, &contents, now)
}

/// Imports an issuer made elsewhere (cert-manager's `tls.crt`, `tls.key`,
/// `ca.crt`, e.g. from Vault) after validating it, and adds a token key.
pub fn import_issuer(
    dir: &Path,
    from: &Path,
    opts: &InstallOptions,
    now: SystemTime,
) -> Result<Installed, InstallError> {
    let files = IssuerFiles {
        anchors: from.join("ca.crt"),
        cert: from.join("tls.crt"),
        key: from.join("tls.key"),
    };
    let [anchors, cert, key] = files.read()?;
    Issuer::from_pem(&anchors, &cert, &key, &files, now)?;
    let targets = [
        ANCHORS_FILE,
        ISSUER_CERT_FILE,
        ISSUER_KEY_FILE,
        TOKEN_KEY_FILE,
    ];
    check_free(dir, &targets, opts.force)?;
    let utf8 = |b: Vec<u8>, p: &Path| {
        String::from_utf8(b).map_err(|_| InstallError::Io {
            path: p.into(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 PEM"),
        })
    };
    let contents = [
        (ANCHORS_FILE, utf8(anchors, &files.anchors)?, false),
        (ISSUER_CERT_FILE, utf8(cert, &files.cert)?, false),
        (ISSUER_KEY_FILE, utf8(key, &files.key)?, true),
        (TOKEN_KEY_FILE, TokenSigner::generate()?.to_pem()?, true),
    ];
    write_all(dir, &contents, now)
}

/// Replaces `issuer.crt` / `issuer.key` with a new issuer signed by the
/// anchor in `ca.crt` / `ca.key`; the anchors and token key are kept, so no
/// proxy needs new trust anchors and a running controller hot-reloads it.
pub fn rotate_issuer(
    dir: &Path,
    opts: &InstallOptions,
    now: SystemTime,
) -> Result<Installed, InstallError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|error| InstallError::Io { path, error })
    };
    let anchor_pem = read(ANCHORS_FILE)?;
    let anchor_key_pem = read(ANCHOR_KEY_FILE)?;
    let anchor_name = dir.join(ANCHORS_FILE).display().to_string();
    let anchor_cert =
        crate::pem::certificates(&anchor_pem, &anchor_name).map_err(IssuerError::from)?;
    let key = crate::pem::private_key(
        &anchor_key_pem,
        &dir.join(ANCHOR_KEY_FILE).display().to_string(),
    )
    .map_err(IssuerError::from)?;
    let key = crate::issuer::p256_key_pair(&key, &dir.join(ANCHOR_KEY_FILE).display().to_string())?;
    // The anchor that signs is the first one in ca.crt.
    let anchor = pki::GeneratedCa::from_existing(anchor_cert[0].clone(), key)
        .map_err(|e| InstallError::Generate(e.to_string()))?;
    let issuer = pki::issuer(&anchor, &opts.trust, opts.issuer_validity, now)
        .map_err(|e| InstallError::Generate(e.to_string()))?;
    let contents = [
        (ISSUER_CERT_FILE, issuer.cert_pem(), false),
        (ISSUER_KEY_FILE, issuer.key_pem(), true),
    ];
    write_all(dir, &contents, now)
}

fn check_free(dir: &Path, targets: &[&str], force: bool) -> Result<(), InstallError> {
    if force {
        return Ok(());
    }
    match targets.iter().map(|t| dir.join(t)).find(|p| p.exists()) {
        Some(existing) => Err(InstallError::Exists(existing)),
        None => Ok(()),
    }
}

fn write_all(
    dir: &Path,
    contents: &[(&str, String, bool)],
    now: SystemTime,
) -> Result<Installed, InstallError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| InstallError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Every file is complete on disk before any is renamed into place, so
    // the window in which a reader sees a mix of old and new is a few renames.
    let mut staged = Vec::new();
    for (name, text, secret) in contents {
        let path = dir.join(name);
        let tmp = stage(&path, text.as_bytes(), *secret).map_err(io(&path))?;
        staged.push((tmp, path));
    }
    let mut files = Vec::new();
    for (tmp, path) in staged {
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        files.push(path);
    }
    let issuer = Issuer::load_dir(dir, now)?;
    Ok(Installed {
        files,
        anchor_fingerprints: issuer.anchors().fingerprints(),
        issuer_not_after: issuer.not_after(),
    })
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let tmp = stage(path, bytes, secret)?;
    std::fs::rename(&tmp, path)
}

/// Writes and syncs `bytes` to a temporary name beside `path`; returns that name.
fn stage(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(tmp)
}
