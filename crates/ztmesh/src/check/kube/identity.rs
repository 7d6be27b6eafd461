//! The identity group on a cluster: the trust roots ConfigMap
//! (`linkerd-identity-trust-roots`, key `ca-bundle.crt`) and the issuer
//! Secret (`linkerd-identity-issuer`: Linkerd's `crt.pem`/`key.pem` or an
//! external issuer's `tls.crt`/`tls.key`) parse, are not expired, and
//! the issuer chains to an anchor, validated as the controller loads it
//! (`ztmesh_identity::Issuer::from_pem`); expiry horizons are the local
//! trust group's ([`crate::check::trust::expiry`]). [`trust_files`] gives
//! the same material to the data-plane checks. Pure.

use super::names::{ISSUER_SECRET, TRUST_ROOTS};
use super::observe::call::CallError;
use crate::check::chain::Summary;
use crate::check::mesh::TrustFiles;
use crate::check::result::{CheckResult, Group};
use crate::check::trust::expiry;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::time::SystemTime;
use ztmesh_identity::issuer::{Issuer, IssuerError, IssuerFiles};

const ROOTS_KEY: &str = "ca-bundle.crt";

type Observed<T> = Result<Option<T>, CallError>;

/// The anchors' PEM, or why there is none.
fn anchors_pem(roots: &Observed<ConfigMap>, ns: &str) -> Result<Vec<u8>, String> {
    match roots {
        Err(e) => Err(e.to_string()),
        Ok(None) => Err(format!("ConfigMap {ns}/{TRUST_ROOTS} does not exist")),
        Ok(Some(cm)) => cm
            .data
            .as_ref()
            .and_then(|d| d.get(ROOTS_KEY))
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| format!("ConfigMap {ns}/{TRUST_ROOTS} has no {ROOTS_KEY}")),
    }
}

/// The issuer's certificate and key PEM and the keys they were under.
fn issuer_pem(
    secret: &Observed<Secret>,
    ns: &str,
) -> Result<(Vec<u8>, Vec<u8>, &'static str, &'static str), String> {
    let secret = match secret {
        Err(e) => return Err(e.to_string()),
        Ok(None) => return Err(format!("Secret {ns}/{ISSUER_SECRET} does not exist")),
        Ok(Some(s)) => s,
    };
    let data = secret.data.clone().unwrap_or_default();
    for (cert, key) in [("crt.pem", "key.pem"), ("tls.crt", "tls.key")] {
        if let (Some(c), Some(k)) = (data.get(cert), data.get(key)) {
            return Ok((c.0.clone(), k.0.clone(), cert, key));
        }
    }
    Err(format!(
        "Secret {ns}/{ISSUER_SECRET} holds neither crt.pem/key.pem nor tls.crt/tls.key"
    ))
}

/// The material as the local checks read an identity directory.
pub(crate) fn trust_files(
    roots: &Observed<ConfigMap>,
    issuer: &Observed<Secret>,
    ns: &str,
    now: SystemTime,
) -> TrustFiles {
    let anchors_pem = anchors_pem(roots, ns).ok();
    let anchors = anchors_pem
        .as_deref()
        .and_then(|p| ztmesh_identity::pem::certificates(p, ROOTS_KEY).ok())
        .unwrap_or_default();
    let pem = issuer_pem(issuer, ns).ok();
    let chain = pem
        .as_ref()
        .and_then(|(c, ..)| ztmesh_identity::pem::certificates(c, ISSUER_SECRET).ok())
        .unwrap_or_default();
    let load = match (&anchors_pem, &pem) {
        (Some(a), Some((c, k, cn, kn))) => Some(load(a, c, k, ns, cn, kn, now).map(|_| ())),
        _ => None,
    };
    TrustFiles {
        dir: None,
        anchors_pem,
        anchors,
        issuer: chain,
        load,
    }
}

fn load(
    anchors: &[u8],
    cert: &[u8],
    key: &[u8],
    ns: &str,
    cert_key: &str,
    key_key: &str,
    now: SystemTime,
) -> Result<Issuer, IssuerError> {
    let files = IssuerFiles {
        anchors: format!("ConfigMap {ns}/{TRUST_ROOTS} {ROOTS_KEY}").into(),
        cert: format!("Secret {ns}/{ISSUER_SECRET} {cert_key}").into(),
        key: format!("Secret {ns}/{ISSUER_SECRET} {key_key}").into(),
    };
    Issuer::from_pem(anchors, cert, key, &files, now)
}

pub(crate) fn checks(
    roots: &Observed<ConfigMap>,
    issuer: &Observed<Secret>,
    ns: &str,
    now: SystemTime,
) -> Vec<CheckResult> {
    let reinstall = format!(
        "ztmesh install --kubernetes --namespace {ns} --dir DIR | kubectl apply -f - (DIR from `ztmesh install --dir DIR`), then restart the proxies"
    );
    let rotate = format!(
        "ztmesh install --dir DIR --rotate-issuer, then ztmesh install --kubernetes --namespace {ns} --dir DIR | kubectl apply -f -"
    );
    let (aid, atitle) = ("trust-anchors", "trust roots ConfigMap valid");
    let mut out = Vec::new();
    let anchors = match anchors_pem(roots, ns) {
        Err(why) => {
            out.push(CheckResult::fail(
                Group::Identity,
                aid,
                atitle,
                why,
                reinstall.clone(),
            ));
            None
        }
        Ok(pem) => match ztmesh_identity::TrustAnchors::from_pem(&pem, TRUST_ROOTS) {
            Err(e) => {
                out.push(CheckResult::fail(
                    Group::Identity,
                    aid,
                    atitle,
                    e.to_string(),
                    reinstall.clone(),
                ));
                None
            }
            Ok(a) => {
                for c in a.certificates() {
                    match Summary::of(c) {
                        Ok(s) => out.push(expiry("trust anchor", aid, atitle, &s, now, &reinstall)),
                        Err(e) => out.push(CheckResult::fail(
                            Group::Identity,
                            aid,
                            atitle,
                            e.to_string(),
                            reinstall.clone(),
                        )),
                    }
                }
                Some(pem)
            }
        },
    };
    let (iid, ititle) = ("issuer", "issuer Secret valid and chained to the anchors");
    let issuer = match issuer_pem(issuer, ns) {
        Err(why) => {
            out.push(CheckResult::fail(
                Group::Identity,
                iid,
                ititle,
                why,
                reinstall,
            ));
            return out;
        }
        Ok(p) => p,
    };
    let Some(anchors) = anchors else {
        out.push(CheckResult::fail(
            Group::Identity,
            iid,
            ititle,
            "not judged: no valid trust roots to chain it to",
            reinstall,
        ));
        return out;
    };
    let (cert, key, cn, kn) = issuer;
    let offender = format!("Secret {ns}/{ISSUER_SECRET}");
    match load(&anchors, &cert, &key, ns, cn, kn, now) {
        Err(IssuerError::Expired { at, .. }) => out.push(
            CheckResult::fail(
                Group::Identity,
                iid,
                ititle,
                format!("the issuer expired at {at}: no proxy can renew its certificate"),
                rotate,
            )
            .offenders([offender]),
        ),
        Err(e) => out.push(
            CheckResult::fail(Group::Identity, iid, ititle, e.to_string(), rotate)
                .offenders([offender]),
        ),
        Ok(i) => match Summary::of(&i.chain()[0]) {
            Ok(s) => out.push(expiry("issuer", iid, ititle, &s, now, &rotate)),
            Err(e) => out.push(CheckResult::fail(
                Group::Identity,
                iid,
                ititle,
                e.to_string(),
                rotate,
            )),
        },
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use k8s_openapi::ByteString;
    use std::time::Duration;
    use ztmesh_identity::{TrustDomain, pki};

    const DAY: Duration = Duration::from_secs(86400);

    /// The ConfigMap and Secret `install --kubernetes` prints, for an
    /// anchor and issuer valid for the given days from `at`.
    fn material(anchor: u32, issuer: u32, at: SystemTime, tls_keys: bool) -> (ConfigMap, Secret) {
        let trust = TrustDomain::new("linkerd", "cluster.local").unwrap();
        let a = pki::trust_anchor(&trust, DAY * anchor, at).unwrap();
        let i = pki::issuer(&a, &trust, DAY * issuer, at).unwrap();
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": TRUST_ROOTS, "namespace": "linkerd"},
            "data": {ROOTS_KEY: a.cert_pem()},
        }))
        .unwrap();
        let (ck, kk) = if tls_keys {
            ("tls.crt", "tls.key")
        } else {
            ("crt.pem", "key.pem")
        };
        let mut data = std::collections::BTreeMap::new();
        data.insert(ck.to_string(), ByteString(i.cert_pem().into_bytes()));
        data.insert(kk.to_string(), ByteString(i.key_pem().into_bytes()));
        let secret = Secret {
            data: Some(data),
            ..Default::default()
        };
        (cm, secret)
    }

    #[test]
    fn roots_and_issuer_by_presence_chain_and_expiry() {
        let now = SystemTime::now();
        let (cm, secret) = material(365, 365, now, false);
        let (_, other) = material(365, 365, now, true);
        let (cm_soon, secret_soon) = material(365, 20, now, true);
        let (cm_old, secret_old) = material(365, 1, now - 2 * DAY, false);
        let call = CallError::new("get Secret", "forbidden");
        // (roots, issuer, checked at, anchor status, issuer status, words in the issuer's detail)
        type Case = (
            Observed<ConfigMap>,
            Observed<Secret>,
            Status,
            Status,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                Ok(Some(cm.clone())),
                Ok(Some(secret.clone())),
                Status::Pass,
                Status::Pass,
                "valid until",
            ),
            (
                Ok(Some(cm_soon)),
                Ok(Some(secret_soon)),
                Status::Pass,
                Status::Warn,
                "expires in",
            ),
            (
                Ok(Some(cm_old)),
                Ok(Some(secret_old)),
                Status::Pass,
                Status::Fail,
                "expired at",
            ),
            (
                Ok(Some(cm.clone())),
                Ok(Some(other)),
                Status::Pass,
                Status::Fail,
                "not signed by",
            ),
            (
                Ok(Some(cm.clone())),
                Ok(None),
                Status::Pass,
                Status::Fail,
                "does not exist",
            ),
            (
                Ok(Some(cm.clone())),
                Err(call),
                Status::Pass,
                Status::Fail,
                "forbidden",
            ),
            (
                Ok(None),
                Ok(Some(secret)),
                Status::Fail,
                Status::Fail,
                "no valid trust roots",
            ),
        ];
        for (i, (roots, issuer, want_a, want_i, words)) in cases.into_iter().enumerate() {
            let got = checks(&roots, &issuer, "linkerd", now);
            let find = |id: &str| got.iter().find(|c| c.id == id).unwrap();
            assert_eq!(find("trust-anchors").status, want_a, "case {i}: {got:#?}");
            let iss = find("issuer");
            assert_eq!(iss.status, want_i, "case {i}: {got:#?}");
            assert!(iss.detail.contains(words), "case {i}: {iss:#?}");
            for c in &got {
                assert_eq!(c.fix.is_some(), c.status != Status::Pass, "case {i}: {c:?}");
            }
        }
    }

    #[test]
    fn trust_files_carry_the_material_the_proxy_checks_judge() {
        let now = SystemTime::now();
        let (cm, secret) = material(365, 365, now, true);
        let t = trust_files(&Ok(Some(cm)), &Ok(Some(secret)), "linkerd", now);
        assert_eq!(t.anchors.len(), 1);
        assert_eq!(t.issuer.len(), 1);
        assert!(matches!(t.load, Some(Ok(()))), "{:?}", t.load);
        let none = trust_files(&Ok(None), &Ok(None), "linkerd", now);
        assert!(none.anchors_pem.is_none() && none.load.is_none());
    }
}
