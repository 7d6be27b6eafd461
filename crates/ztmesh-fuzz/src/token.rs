//! `token`: service-account token verification
//! ([`ztmesh_identity::token::TokenVerifier::verify`]) with the key
//! [`FUZZ_KEY_PEM`] at the time [`now`].
//!
//! Input: a first byte choosing the mode, then
//! - 0: the token as a workload sends it. A mutation rarely keeps a valid
//!   signature, so this mode fuzzes the framing (parts, base64, header).
//! - 1: a header's JSON, a zero byte, then the claims' JSON; the target
//!   signs them with the fuzz key, so the claims' checks are reached. A
//!   token that passes has an `identity.l5d.io` audience, has not expired
//!   and names its service account in `sub`.
//! - 2: a byte saying where to flip one bit, then mode 1's input: the
//!   signed token, changed anywhere in one bit, never verifies.

use crate::input::Input;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ztmesh_identity::token::{AUDIENCE, TokenSigner, TokenVerifier};

/// The fuzz targets' own P-256 key (PKCS#8), for tokens and requests: a
/// test key, trusted by nothing.
pub const FUZZ_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgeWRmA2VABbBqD03D
w7kCFfu/1eNkrFFPmEjExj4OVCOhRANCAASkurn9ObaMlIhFpqM99FVBn3chUCMz
QeHMrvG20su6Zmy527JT50O1lMsZwvos+PRDmEoO+nPZ1fqOn9Xh8mzs
-----END PRIVATE KEY-----
";

/// The time tokens are verified at (fixed, so the corpus stays valid).
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

const NOW_SECS: u64 = 1_800_000_000;

pub fn token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (signer, verifier) = keys();
    match mode % 3 {
        0 => {
            let _ = verifier.verify(rest, now());
        }
        1 => {
            let (header, claims) = split(rest);
            let token = sign(signer, header, claims);
            if let Ok(sa) = verifier.verify(token.as_bytes(), now()) {
                let claims: serde_json::Value =
                    serde_json::from_slice(claims).expect("verified claims are JSON");
                let sub = format!("system:serviceaccount:{}:{}", sa.namespace, sa.name);
                assert_eq!(claims["sub"], sub.as_str());
                let aud = &claims["aud"];
                assert!(
                    aud == AUDIENCE
                        || aud
                            .as_array()
                            .is_some_and(|a| a.iter().any(|a| a == AUDIENCE)),
                    "{aud}"
                );
                let exp = claims["exp"].as_u64().expect("a numeric exp");
                assert!(exp > NOW_SECS, "expired at {exp}");
            }
        }
        _ => {
            let mut input = Input(rest);
            let at = input.byte();
            let (header, claims) = split(input.rest());
            let mut token = sign(signer, header, claims).into_bytes();
            let i = usize::from(at) * token.len() / 256;
            token[i] ^= 1 << (at % 8);
            let verdict = verifier.verify(&token, now());
            assert!(verdict.is_err(), "a changed token verified: {verdict:?}");
        }
    }
}

fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, b"{}"),
    }
}

/// A JWT of these parts, signed as `ztmesh token create` signs.
fn sign(key: &EcdsaKeyPair, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = key.sign(&rng, input.as_bytes()).expect("signing works");
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn keys() -> &'static (EcdsaKeyPair, TokenVerifier) {
    static KEYS: OnceLock<(EcdsaKeyPair, TokenVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pkcs8 = rcgen::KeyPair::from_pem(FUZZ_KEY_PEM)
            .expect("the fuzz key")
            .serialize_der();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .expect("a P-256 key");
        let verifier = TokenSigner::from_pkcs8(&pkcs8)
            .expect("a P-256 key")
            .verifier();
        (key, verifier)
    })
}
