//! `csr`: certificate signing request validation
//! ([`ztmesh_identity::csr::validate`]), against the identity
//! [`REQUESTED_IDENTITY`].
//!
//! Input: a first byte choosing the mode, then
//! - even: the CSR as the controller receives it (DER or PEM). A mutated
//!   request rarely keeps a valid signature, so this mode fuzzes the DER,
//!   PEM and extension parsing; a valid one must name the identity and
//!   carry an uncompressed P-256 point.
//! - odd: a description of a request, which is then made with rcgen and
//!   signed (so its signature verifies) and checked against an oracle: it
//!   must pass exactly when its key is P-256, it asks for no CA bit, its
//!   only SAN is the requested DNS name and its common name is absent,
//!   empty or that name. The description is one byte each for the key
//!   (P-256, P-384, Ed25519), the CA bit (absent, false, true) and the
//!   common name (absent, empty, the identity, a length-prefixed string),
//!   then a SAN count and per SAN a kind byte (the identity's DNS name,
//!   another DNS name, a URI, an IP address, an email address) with a
//!   length-prefixed string for those that take one.

use crate::input::Input;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyPair, SanType,
    SignatureAlgorithm,
};
use std::sync::OnceLock;
use ztmesh_identity::IdentityName;
use ztmesh_identity::csr::validate;

/// The identity every fuzzed request is validated against.
pub const REQUESTED_IDENTITY: &str = "web.booksapp.serviceaccount.identity.linkerd.cluster.local";

fn requested() -> IdentityName {
    IdentityName::parse_dns(REQUESTED_IDENTITY).expect("a valid identity")
}

pub fn csr(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(valid) = validate(rest, &requested()) {
            assert_eq!(valid.identity().to_string(), REQUESTED_IDENTITY);
            let point = rcgen::PublicKeyData::der_bytes(valid.public_key());
            assert!(
                point.len() == 65 && point[0] == 4,
                "not an uncompressed point"
            );
        }
    } else {
        made(Input(rest));
    }
}

/// Makes the described request and checks the verdict against the oracle.
fn made(mut input: Input<'_>) {
    let keys = keys();
    let key = usize::from(input.byte()) % keys.len();
    let ca = input.byte() % 3;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = match ca {
        0 => IsCa::NoCa,
        1 => IsCa::ExplicitNoCa,
        _ => IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
    };
    let cn = match input.byte() % 4 {
        0 => None,
        1 => Some(String::new()),
        2 => Some(REQUESTED_IDENTITY.to_string()),
        _ => Some(String::from_utf8_lossy(input.bytes()).into_owned()),
    };
    if let Some(cn) = &cn {
        params
            .distinguished_name
            .push(DnType::CommonName, DnValue::Utf8String(cn.clone()));
    }
    let mut only_the_identity = 0;
    let mut others = 0;
    for _ in 0..input.byte() % 4 {
        let san = match input.byte() % 5 {
            0 => ia5(REQUESTED_IDENTITY.as_bytes()).map(SanType::DnsName),
            1 => ia5(input.bytes()).map(SanType::DnsName),
            2 => ia5(input.bytes()).map(SanType::URI),
            3 => {
                let b = input.bytes();
                Some(SanType::IpAddress(if b.len() >= 16 {
                    std::net::IpAddr::from(<[u8; 16]>::try_from(&b[..16]).expect("16 bytes"))
                } else {
                    std::net::IpAddr::from([input.byte(), 0, 0, 1])
                }))
            }
            _ => ia5(input.bytes()).map(SanType::Rfc822Name),
        };
        let Some(san) = san else { return };
        match &san {
            SanType::DnsName(n) if n.as_str() == REQUESTED_IDENTITY => only_the_identity += 1,
            _ => others += 1,
        }
        params.subject_alt_names.push(san);
    }
    let Ok(request) = params.serialize_request(&keys[key].0) else {
        return;
    };
    let verdict = validate(request.der(), &requested());
    let expected = keys[key].1
        && ca != 2
        && only_the_identity == 1
        && others == 0
        && cn
            .as_deref()
            .is_none_or(|cn| cn.is_empty() || cn == REQUESTED_IDENTITY);
    assert_eq!(
        verdict.is_ok(),
        expected,
        "{verdict:?} for {params:?} with key {key}"
    );
}

fn ia5(bytes: &[u8]) -> Option<rcgen::string::Ia5String> {
    rcgen::string::Ia5String::try_from(std::str::from_utf8(bytes).ok()?).ok()
}

/// The request keys, each with whether ztmesh accepts its type.
fn keys() -> &'static [(KeyPair, bool)] {
    static KEYS: OnceLock<Vec<(KeyPair, bool)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let make = |alg: &'static SignatureAlgorithm| KeyPair::generate_for(alg).expect("a key");
        vec![
            (
                KeyPair::from_pem(crate::token::FUZZ_KEY_PEM).expect("the fuzz key"),
                true,
            ),
            (make(&rcgen::PKCS_ECDSA_P384_SHA384), false),
            (make(&rcgen::PKCS_ED25519), false),
        ]
    })
}
