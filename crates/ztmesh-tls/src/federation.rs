//! Federated trust domains: one bundle per foreign trust domain, each
//! trusted only for identities in its own domain.
//!
//! A [`Federation`] names the local trust domain and holds, per federated
//! domain, its roots and a client verifier built from them once. At each
//! handshake the presented leaf's `spiffe://` URI SAN selects the roots
//! that may verify it ([`classify`]): no SPIFFE ID, or one in the local
//! domain, selects the local bundle; one in a federated domain selects
//! that domain's bundle and nothing else; any other domain, SPIFFE IDs in
//! several domains, several IDs under a federated bundle, or an ID that is
//! not one are refused ([`ScopeError`]). So a federated domain's CA that
//! signs `spiffe://LOCAL/...` proves nothing (the local bundle does not
//! chain to it), and its DNS SANs are never read: a peer verified under a
//! federated bundle is known by its SPIFFE ID alone.

use crate::{TlsError, provider};
use rustls::RootCertStore;
use rustls::server::danger::ClientCertVerifier;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Why a leaf's SPIFFE IDs select no bundle.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("trust domain {domain:?} is not federated with {local:?}")]
    NotFederated { domain: String, local: String },
    #[error("the certificate names SPIFFE IDs in several trust domains: {0}")]
    SeveralTrustDomains(String),
    #[error("a certificate under federated trust domain {0:?} must carry exactly one SPIFFE ID")]
    SeveralIds(String),
    #[error("{0:?} is not a SPIFFE ID (spiffe://TRUST_DOMAIN/PATH)")]
    BadId(String),
}

/// The message itself: rustls shows a certificate error's cause with `{:?}`.
impl fmt::Debug for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<ScopeError> for rustls::Error {
    fn from(e: ScopeError) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    }
}

/// Which bundle may verify a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// The local bundle (no SPIFFE ID, or one in the local domain).
    Local,
    /// Only this federated domain's bundle; the peer is `id`.
    Federated { domain: String, id: String },
}

/// The trust domain of a `spiffe://` ID.
pub fn trust_domain_of(id: &str) -> Option<&str> {
    let rest = id.strip_prefix(crate::SPIFFE_SCHEME)?;
    let domain = rest.split('/').next()?;
    let valid = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    valid.then_some(domain)
}

/// The scoping rule, on names alone: `ids` are the leaf's `spiffe://` URI
/// SANs, `local` the local trust domain, `federated` whether a domain has
/// a bundle.
pub fn classify(
    local: &str,
    federated: &dyn Fn(&str) -> bool,
    ids: &[String],
) -> Result<Class, ScopeError> {
    let Some(first) = ids.first() else {
        return Ok(Class::Local);
    };
    let domain = trust_domain_of(first).ok_or_else(|| ScopeError::BadId(first.clone()))?;
    for id in &ids[1..] {
        let other = trust_domain_of(id).ok_or_else(|| ScopeError::BadId(id.clone()))?;
        if other != domain {
            return Err(ScopeError::SeveralTrustDomains(ids.join(", ")));
        }
    }
    if domain == local {
        return Ok(Class::Local);
    }
    if !federated(domain) {
        return Err(ScopeError::NotFederated {
            domain: domain.to_string(),
            local: local.to_string(),
        });
    }
    if ids.len() != 1 {
        return Err(ScopeError::SeveralIds(domain.to_string()));
    }
    Ok(Class::Federated {
        domain: domain.to_string(),
        id: first.clone(),
    })
}

/// One federated domain's bundle and the client verifier built from it.
pub(crate) struct DomainVerifiers {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) client: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for DomainVerifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainVerifiers")
            .field("anchors", &self.roots.len())
            .finish()
    }
}

/// The local trust domain and the federated domains' bundles.
#[derive(Debug)]
pub struct Federation {
    local: String,
    domains: HashMap<String, DomainVerifiers>,
}

impl Federation {
    /// Refuses a bundle for the local domain (the local bundle is the
    /// anchors) and a domain that is not a trust domain name.
    pub fn new(
        local: &str,
        bundles: BTreeMap<String, Arc<RootCertStore>>,
    ) -> Result<Self, TlsError> {
        let check = |d: &str| {
            trust_domain_of(&format!("{}{d}/", crate::SPIFFE_SCHEME)) == Some(d) && !d.contains('/')
        };
        if !check(local) {
            return Err(TlsError::Federation(format!(
                "{local:?} is not a trust domain name"
            )));
        }
        let mut domains = HashMap::new();
        for (domain, roots) in bundles {
            if !check(&domain) {
                return Err(TlsError::Federation(format!(
                    "{domain:?} is not a trust domain name"
                )));
            }
            if domain == local {
                return Err(TlsError::Federation(format!(
                    "{domain:?} is the local trust domain; its bundle is the trust anchors"
                )));
            }
            let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Federation(format!("{domain}: {e}")))?;
            domains.insert(domain, DomainVerifiers { roots, client });
        }
        Ok(Self {
            local: local.into(),
            domains,
        })
    }

    pub fn local_domain(&self) -> &str {
        &self.local
    }

    /// The federated domains, sorted.
    pub fn domains(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.domains.keys().map(String::as_str).collect();
        d.sort_unstable();
        d
    }

    /// Whether `domain` has a bundle here.
    pub fn is_federated(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }

    /// Which bundle may verify a leaf with these SPIFFE IDs.
    pub fn classify(&self, ids: &[String]) -> Result<Class, ScopeError> {
        classify(&self.local, &|d| self.domains.contains_key(d), ids)
    }

    pub(crate) fn domain(&self, domain: &str) -> Option<&DomainVerifiers> {
        self.domains.get(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains_scope_identities_table() {
        let federated = |d: &str| d == "b.example" || d == "c.example";
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fed = |d: &str, id: &str| {
            Ok(Class::Federated {
                domain: d.into(),
                id: id.into(),
            })
        };
        let not_fed = |d: &str| {
            Err(ScopeError::NotFederated {
                domain: d.into(),
                local: "a.example".into(),
            })
        };
        let cases: &[(&str, &[&str], Result<Class, ScopeError>)] = &[
            ("DNS-only leaf: local bundle", &[], Ok(Class::Local)),
            (
                "local SPIFFE ID: local bundle",
                &["spiffe://a.example/ns/x/sa/y"],
                Ok(Class::Local),
            ),
            (
                "federated SPIFFE ID: its own bundle only",
                &["spiffe://b.example/ns/x/sa/y"],
                fed("b.example", "spiffe://b.example/ns/x/sa/y"),
            ),
            (
                "unfederated domain refused",
                &["spiffe://d.example/ns/x/sa/y"],
                not_fed("d.example"),
            ),
            (
                "a suffix of a federated domain is another domain",
                &["spiffe://evil-b.example/ns/x/sa/y"],
                not_fed("evil-b.example"),
            ),
            (
                "IDs in two domains refused",
                &["spiffe://b.example/a", "spiffe://a.example/b"],
                Err(ScopeError::SeveralTrustDomains(
                    "spiffe://b.example/a, spiffe://a.example/b".into(),
                )),
            ),
            (
                "two IDs under a federated bundle refused",
                &["spiffe://b.example/a", "spiffe://b.example/b"],
                Err(ScopeError::SeveralIds("b.example".into())),
            ),
            (
                "port in the authority refused",
                &["spiffe://b.example:443/a"],
                Err(ScopeError::BadId("spiffe://b.example:443/a".into())),
            ),
            (
                "userinfo in the authority refused",
                &["spiffe://a.example@b.example/a"],
                Err(ScopeError::BadId("spiffe://a.example@b.example/a".into())),
            ),
            (
                "upper case refused",
                &["spiffe://B.example/a"],
                Err(ScopeError::BadId("spiffe://B.example/a".into())),
            ),
            (
                "empty domain refused",
                &["spiffe:///a"],
                Err(ScopeError::BadId("spiffe:///a".into())),
            ),
        ];
        for (what, leaf, want) in cases {
            assert_eq!(
                &classify("a.example", &federated, &ids(leaf)),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn federation_refuses_the_local_domain_and_bad_names() {
        let roots = Arc::new(RootCertStore::empty());
        let one = |d: &str| BTreeMap::from([(d.to_string(), roots.clone())]);
        assert!(Federation::new("a.example", BTreeMap::new()).is_ok());
        for bad in ["a.example", "B.example", "b.example/x", ""] {
            assert!(
                Federation::new("a.example", one(bad)).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(Federation::new("a/b", BTreeMap::new()).is_err());
    }
}
