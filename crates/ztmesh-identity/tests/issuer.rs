//! Loading and validating issuers: ztmesh's layout, cert-manager's, and every
//! reason to refuse one.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::time::{Duration, SystemTime};
use ztmesh_identity::issuer::{Issuer, IssuerError};
use ztmesh_identity::pki;
use ztmesh_identity::{TrustDomain, install};

const YEAR: Duration = Duration::from_secs(8760 * 3600);

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn make(
    cn: &str,
    is_ca: Option<u8>,
    ku: Vec<KeyUsagePurpose>,
    from: SystemTime,
    to: SystemTime,
    parent: Option<&Ca>,
    key: KeyPair,
) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = match is_ca {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::ExplicitNoCa,
    };
    params.key_usages = ku;
    params.not_before = from.into();
    params.not_after = to.into();
    let cert = match parent {
        Some(p) => params
            .signed_by(&key, &rcgen::Issuer::from_params(&p.params, &p.key))
            .unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn ca_ku() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn install_layout_loads_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let out = install::install(dir.path(), &install::InstallOptions::default(), now).unwrap();
    assert_eq!(out.files.len(), 5);
    assert_eq!(out.anchor_fingerprints.len(), 1);
    assert_eq!(out.anchor_fingerprints[0].len(), 32 * 3 - 1);
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [
        ("issuer.key", 0o600),
        ("token.key", 0o600),
        ("ca.key", 0o600),
        ("ca.crt", 0o644),
    ] {
        let m = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    let issuer = Issuer::load_dir(dir.path(), now).unwrap();
    assert_eq!(issuer.chain().len(), 1);
    let remaining = issuer.not_after().duration_since(now).unwrap();
    assert!(
        remaining > YEAR - Duration::from_secs(60) && remaining <= YEAR,
        "{remaining:?}"
    );

    let before = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let err = install::install(dir.path(), &install::InstallOptions::default(), now).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).unwrap(),
        before,
        "nothing was overwritten"
    );

    let forced = install::InstallOptions {
        force: true,
        ..Default::default()
    };
    install::install(dir.path(), &forced, now).unwrap();
    assert_ne!(std::fs::read(dir.path().join("ca.crt")).unwrap(), before);
}

#[test]
fn cert_manager_layout_with_chain_in_tls_crt() {
    // Vault-style: root -> intermediate -> issuer; tls.crt holds issuer + intermediate.
    let now = SystemTime::now();
    let (past, future) = (now - Duration::from_secs(60), now + YEAR);
    let root = make("root", Some(2), ca_ku(), past, future, None, p256());
    let mid = make("mid", Some(1), ca_ku(), past, future, Some(&root), p256());
    let issuer = make(
        "identity.linkerd.cluster.local",
        Some(0),
        ca_ku(),
        past,
        future,
        Some(&mid),
        p256(),
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("ca.crt", &root.pem),
            ("tls.crt", &format!("{}{}", issuer.pem, mid.pem)),
            ("tls.key", &issuer.key.serialize_pem()),
        ],
    );
    let loaded = Issuer::load_dir(dir.path(), now).unwrap();
    assert_eq!(
        loaded.chain().len(),
        2,
        "the intermediate is handed to clients too"
    );

    // The same, imported into a ztmesh directory.
    let target = tempfile::tempdir().unwrap();
    install::import_issuer(target.path(), dir.path(), &Default::default(), now).unwrap();
    assert!(target.path().join("token.key").exists());
    assert_eq!(
        Issuer::load_dir(target.path(), now).unwrap().chain().len(),
        2
    );
}

#[test]
fn sec1_issuer_key_is_accepted() {
    // cert-manager writes ECDSA keys as SEC1 ("EC PRIVATE KEY") by default.
    let now = SystemTime::now();
    let root = make(
        "root",
        Some(1),
        ca_ku(),
        now - Duration::from_secs(5),
        now + YEAR,
        None,
        p256(),
    );
    let key = p256();
    let pkcs8 = key.serialize_der();
    let ec = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
    )
    .unwrap();
    use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der};
    let sec1: EcPrivateKeyRfc5915Der = ec.private_key().as_der().unwrap();
    let sec1_pem = ztmesh_identity::pem::encode("EC PRIVATE KEY", sec1.as_ref());
    let issuer = make(
        "issuer",
        Some(0),
        ca_ku(),
        now - Duration::from_secs(5),
        now + YEAR,
        Some(&root),
        key,
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("ca.crt", &root.pem),
            ("tls.crt", &issuer.pem),
            ("tls.key", &sec1_pem),
        ],
    );
    Issuer::load_dir(dir.path(), now).unwrap();
}

#[test]
fn refusals_table() {
    let now = SystemTime::now();
    let (past, future) = (now - Duration::from_secs(60), now + YEAR);
    let root = make("root", Some(1), ca_ku(), past, future, None, p256());
    let other_root = make("root", Some(1), ca_ku(), past, future, None, p256());
    let expired_root = make(
        "root",
        Some(1),
        ca_ku(),
        now - YEAR,
        now - Duration::from_secs(1),
        None,
        p256(),
    );
    let good = make(
        "issuer",
        Some(0),
        ca_ku(),
        past,
        future,
        Some(&root),
        p256(),
    );
    let leaf = make(
        "issuer",
        None,
        vec![KeyUsagePurpose::DigitalSignature],
        past,
        future,
        Some(&root),
        p256(),
    );
    let no_certsign = make(
        "issuer",
        Some(0),
        vec![KeyUsagePurpose::DigitalSignature],
        past,
        future,
        Some(&root),
        p256(),
    );
    let expired = make(
        "issuer",
        Some(0),
        ca_ku(),
        now - YEAR,
        now - Duration::from_secs(1),
        Some(&root),
        p256(),
    );
    let future_issuer = make(
        "issuer",
        Some(0),
        ca_ku(),
        now + Duration::from_secs(3600),
        future,
        Some(&root),
        p256(),
    );
    let p384 = make(
        "issuer",
        Some(0),
        ca_ku(),
        past,
        future,
        Some(&root),
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
    );
    let by_expired_root = make(
        "issuer",
        Some(0),
        ca_ku(),
        past,
        future,
        Some(&expired_root),
        p256(),
    );
    let wrong_key = p256().serialize_pem();

    type Check = fn(&IssuerError) -> bool;
    let cases: Vec<(&str, String, String, String, Check, &str)> = vec![
        (
            "not a CA",
            root.pem.clone(),
            leaf.pem.clone(),
            leaf.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotCa { .. }),
            "CA:FALSE",
        ),
        (
            "no keyCertSign",
            root.pem.clone(),
            no_certsign.pem.clone(),
            no_certsign.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotCa { .. }),
            "keyCertSign",
        ),
        (
            "expired",
            root.pem.clone(),
            expired.pem.clone(),
            expired.key.serialize_pem(),
            |e| matches!(e, IssuerError::Expired { .. }),
            "expired at",
        ),
        (
            "not yet valid",
            root.pem.clone(),
            future_issuer.pem.clone(),
            future_issuer.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotYetValid { .. }),
            "not valid until",
        ),
        (
            "other root",
            other_root.pem.clone(),
            good.pem.clone(),
            good.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotChained { .. }),
            "not signed by any valid trust anchor",
        ),
        (
            "expired root",
            expired_root.pem.clone(),
            by_expired_root.pem.clone(),
            by_expired_root.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotChained { .. }),
            "not signed",
        ),
        (
            "key mismatch",
            root.pem.clone(),
            good.pem.clone(),
            wrong_key,
            |e| matches!(e, IssuerError::KeyMismatch { .. }),
            "is not the private key of",
        ),
        (
            "P-384 issuer",
            root.pem.clone(),
            p384.pem.clone(),
            p384.key.serialize_pem(),
            |e| matches!(e, IssuerError::KeyNotP256 { .. }),
            "P-256",
        ),
        (
            "garbage cert",
            root.pem.clone(),
            "not pem".into(),
            good.key.serialize_pem(),
            |e| matches!(e, IssuerError::Pem(_)),
            "holds no CERTIFICATE",
        ),
        (
            "garbage key",
            root.pem.clone(),
            good.pem.clone(),
            "nope".into(),
            |e| matches!(e, IssuerError::Pem(_)),
            "holds no PRIVATE KEY",
        ),
        (
            "leaf as anchor",
            leaf.pem.clone(),
            good.pem.clone(),
            good.key.serialize_pem(),
            |e| matches!(e, IssuerError::NotCa { .. }),
            "ca.crt",
        ),
        (
            "corrupt DER",
            root.pem.clone(),
            "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n".into(),
            good.key.serialize_pem(),
            |e| matches!(e, IssuerError::Parse { .. }),
            "not a valid X.509",
        ),
    ];
    for (name, anchors, cert, key, check, text) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("ca.crt", &anchors),
                ("issuer.crt", &cert),
                ("issuer.key", &key),
            ],
        );
        let err = Issuer::load_dir(dir.path(), now).expect_err(name);
        assert!(check(&err), "{name}: wrong kind {err:?}");
        assert!(err.to_string().contains(text), "{name}: {err}");
    }

    // A trust bundle with an expired and a valid anchor still works (anchor rotation).
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("ca.crt", &format!("{}{}", expired_root.pem, root.pem)),
            ("issuer.crt", &good.pem),
            ("issuer.key", &good.key.serialize_pem()),
        ],
    );
    assert_eq!(
        Issuer::load_dir(dir.path(), now)
            .unwrap()
            .anchors()
            .certificates()
            .len(),
        2
    );
}

#[test]
fn missing_files_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = Issuer::load_dir(dir.path(), SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("ztmesh install --dir"), "{err}");
    std::fs::write(dir.path().join("issuer.crt"), "x").unwrap();
    let err = Issuer::load_dir(dir.path(), SystemTime::now()).unwrap_err();
    assert!(matches!(err, IssuerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

#[test]
fn generated_pki_chains() {
    let now = SystemTime::now();
    let td = TrustDomain::new("ztmesh", "example.org").unwrap();
    let anchor = pki::trust_anchor(&td, YEAR, now).unwrap();
    let issuer = pki::issuer(&anchor, &td, YEAR, now).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("ca.crt", &anchor.cert_pem()),
            ("issuer.crt", &issuer.cert_pem()),
            ("issuer.key", &issuer.key_pem()),
        ],
    );
    let loaded = Issuer::load_dir(dir.path(), now).unwrap();
    assert_eq!(loaded.chain()[0], *issuer.cert_der());
}

#[test]
fn rotating_the_issuer_keeps_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    install::install(dir.path(), &Default::default(), now).unwrap();
    let anchors = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let token_key = std::fs::read(dir.path().join("token.key")).unwrap();
    let before = Issuer::load_dir(dir.path(), now).unwrap().fingerprint();

    let out = install::rotate_issuer(dir.path(), &Default::default(), now).unwrap();
    assert_eq!(
        out.files,
        vec![dir.path().join("issuer.crt"), dir.path().join("issuer.key")]
    );
    let after = Issuer::load_dir(dir.path(), now).unwrap();
    assert_ne!(after.fingerprint(), before, "a new issuer");
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).unwrap(),
        anchors,
        "same anchor"
    );
    assert_eq!(
        std::fs::read(dir.path().join("token.key")).unwrap(),
        token_key,
        "same token key"
    );

    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let err = install::rotate_issuer(dir.path(), &Default::default(), now).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
}
