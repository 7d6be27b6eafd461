//! Identity names: `{sa}.{ns}.serviceaccount.identity.{cp-ns}.{trust-domain}`
//! and the SPIFFE ID `spiffe://{trust-domain}/ns/{ns}/sa/{sa}`.
//!
//! Service-account and namespace names must be DNS-1123 labels (a
//! service-account name with a dot would make the DNS form ambiguous), the
//! control-plane namespace is a label, and the trust domain is a DNS name of
//! one or more labels. The whole DNS form is at most 253 characters.

use std::fmt;

/// The fixed middle of every identity name.
const SA_INFIX: &str = ".serviceaccount.identity.";
const SPIFFE_SCHEME: &str = "spiffe://";
const MAX_DNS_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Where identities live: the control plane's namespace and the trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrustDomain {
    control_plane_ns: String,
    domain: String,
}

/// A workload identity: one service account in one namespace, in a trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityName {
    service_account: String,
    namespace: String,
    trust: TrustDomain,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} {value:?} is not a DNS-1123 label: {reason}")]
    BadLabel {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("trust domain {0:?} is not a DNS name (lowercase labels separated by dots)")]
    BadTrustDomain(String),
    #[error(
        "{0:?} is not an identity name: expected {{sa}}.{{ns}}.serviceaccount.identity.{{cp-ns}}.{{trust-domain}}"
    )]
    NotAnIdentity(String),
    #[error(
        "{0:?} is not a SPIFFE ID of a service account: expected spiffe://{{trust-domain}}/ns/{{ns}}/sa/{{sa}}"
    )]
    NotASpiffeId(String),
    #[error("identity name {name:?} is {len} characters long; a DNS name holds at most 253")]
    TooLong { name: String, len: usize },
    #[error("identity {name} is outside trust domain {expected}")]
    WrongTrustDomain { name: String, expected: String },
}

impl Default for TrustDomain {
    /// Linkerd's defaults: control plane in `linkerd`, trust domain `cluster.local`.
    fn default() -> Self {
        Self {
            control_plane_ns: "linkerd".into(),
            domain: "cluster.local".into(),
        }
    }
}

impl TrustDomain {
    pub fn new(control_plane_ns: &str, domain: &str) -> Result<Self, NameError> {
        check_label("control-plane namespace", control_plane_ns)?;
        check_domain(domain)?;
        Ok(Self {
            control_plane_ns: control_plane_ns.into(),
            domain: domain.into(),
        })
    }

    pub fn control_plane_ns(&self) -> &str {
        &self.control_plane_ns
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The identity of a service account in this trust domain.
    pub fn identity(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<IdentityName, NameError> {
        IdentityName::new(service_account, namespace, self.clone())
    }

    /// Parses a DNS-form identity and checks that it belongs to this trust domain.
    pub fn parse_identity(&self, dns: &str) -> Result<IdentityName, NameError> {
        let id = IdentityName::parse_dns(dns)?;
        if &id.trust != self {
            return Err(NameError::WrongTrustDomain {
                name: dns.into(),
                expected: format!("{}.{}", self.control_plane_ns, self.domain),
            });
        }
        Ok(id)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.control_plane_ns, self.domain)
    }
}

impl IdentityName {
    pub fn new(
        service_account: &str,
        namespace: &str,
        trust: TrustDomain,
    ) -> Result<Self, NameError> {
        check_label("service account", service_account)?;
        check_label("namespace", namespace)?;
        let id = Self {
            service_account: service_account.into(),
            namespace: namespace.into(),
            trust,
        };
        let len = id.to_string().len();
        if len > MAX_DNS_NAME {
            return Err(NameError::TooLong {
                name: id.to_string(),
                len,
            });
        }
        Ok(id)
    }

    /// Parses `{sa}.{ns}.serviceaccount.identity.{cp-ns}.{trust-domain}`.
    pub fn parse_dns(s: &str) -> Result<Self, NameError> {
        let not_identity = || NameError::NotAnIdentity(s.into());
        let (workload, authority) = s.split_once(SA_INFIX).ok_or_else(not_identity)?;
        let (sa, ns) = workload.split_once('.').ok_or_else(not_identity)?;
        let (cp_ns, domain) = authority.split_once('.').ok_or_else(not_identity)?;
        let trust = TrustDomain::new(cp_ns, domain)?;
        Self::new(sa, ns, trust)
    }

    /// Parses `spiffe://{trust-domain}/ns/{ns}/sa/{sa}`; the SPIFFE form does
    /// not carry the control-plane namespace, so the caller supplies it.
    pub fn parse_spiffe(s: &str, control_plane_ns: &str) -> Result<Self, NameError> {
        let not_spiffe = || NameError::NotASpiffeId(s.into());
        let rest = s.strip_prefix(SPIFFE_SCHEME).ok_or_else(not_spiffe)?;
        let mut parts = rest.split('/');
        let (Some(domain), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(not_spiffe());
        };
        let trust = TrustDomain::new(control_plane_ns, domain)?;
        Self::new(sa, ns, trust)
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust
    }

    pub fn spiffe_id(&self) -> String {
        format!(
            "{SPIFFE_SCHEME}{}/ns/{}/sa/{}",
            self.trust.domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for IdentityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}{SA_INFIX}{}.{}",
            self.service_account, self.namespace, self.trust.control_plane_ns, self.trust.domain
        )
    }
}

/// DNS-1123 label: 1-63 characters of `[a-z0-9-]`, starting and ending alphanumeric.
fn check_label(what: &'static str, value: &str) -> Result<(), NameError> {
    let bad = |reason| {
        Err(NameError::BadLabel {
            what,
            value: value.into(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > MAX_LABEL {
        return bad("it is longer than 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only lowercase letters, digits and '-' are allowed");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return bad("it must start and end with a letter or digit");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), NameError> {
    if domain.is_empty()
        || domain.len() > MAX_DNS_NAME
        || domain.split('.').any(|l| check_label("label", l).is_err())
    {
        return Err(NameError::BadTrustDomain(domain.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "api.payments.serviceaccount.identity.linkerd.cluster.local";

    #[test]
    fn formats_and_parses_both_forms() {
        let id = TrustDomain::default().identity("payments", "api").unwrap();
        assert_eq!(id.to_string(), API);
        assert_eq!(id.spiffe_id(), "spiffe://cluster.local/ns/payments/sa/api");
        assert_eq!(IdentityName::parse_dns(API).unwrap(), id);
        assert_eq!(
            IdentityName::parse_spiffe("spiffe://cluster.local/ns/payments/sa/api", "linkerd")
                .unwrap(),
            id
        );
    }

    #[test]
    fn dns_table() {
        // (input, Ok((sa, ns, cp_ns, domain)) or Err(expected error kind))
        let cases: &[(&str, Option<(&str, &str, &str, &str)>)] = &[
            (API, Some(("api", "payments", "linkerd", "cluster.local"))),
            (
                "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
                Some(("books", "booksapp", "linkerd", "cluster.local")),
            ),
            (
                "web-1.ns2.serviceaccount.identity.ztmesh.example.org",
                Some(("web-1", "ns2", "ztmesh", "example.org")),
            ),
            (
                "a.b.serviceaccount.identity.c.d",
                Some(("a", "b", "c", "d")),
            ),
            ("", None),
            ("api.payments", None),
            ("api.payments.serviceaccount.identity.linkerd", None),
            ("api.serviceaccount.identity.linkerd.cluster.local", None),
            (
                "Api.payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "api_x.payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "-api.payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "api-.payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "api.pay.ments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                ".payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "api.payments.serviceaccount.identity.linkerd.cluster..local",
                None,
            ),
            (
                "api.payments.serviceaccount.identity.linkerd.cluster.local.",
                None,
            ),
            ("api.payments.serviceaccount.identity..cluster.local", None),
            (
                "api payments.serviceaccount.identity.linkerd.cluster.local",
                None,
            ),
            (
                "api.payments.serviceaccount.identity.linkerd.clüster.local",
                None,
            ),
        ];
        for (input, expected) in cases {
            let got = IdentityName::parse_dns(input);
            match (expected, &got) {
                (Some((sa, ns, cp, d)), Ok(id)) => {
                    assert_eq!(
                        (id.service_account(), id.namespace()),
                        (*sa, *ns),
                        "{input}"
                    );
                    assert_eq!(id.trust_domain().control_plane_ns(), *cp, "{input}");
                    assert_eq!(id.trust_domain().domain(), *d, "{input}");
                    assert_eq!(id.to_string(), *input, "round trip of {input}");
                }
                (None, Err(e)) => assert!(!e.to_string().is_empty()),
                _ => panic!("{input:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn label_length_limits() {
        let l63 = "a".repeat(63);
        let l64 = "a".repeat(64);
        assert!(TrustDomain::default().identity(&l63, "x").is_ok());
        let err = TrustDomain::default().identity(&l64, "x").unwrap_err();
        assert!(err.to_string().contains("longer than 63"), "{err}");
        // Each label fits but the whole name is over 253 characters.
        let long_domain = [l63.as_str(), &l63, &l63].join(".");
        let td = TrustDomain::new("linkerd", &long_domain).unwrap();
        let err = td.identity(&l63, &l63).unwrap_err();
        assert!(matches!(err, NameError::TooLong { .. }), "{err}");
    }

    #[test]
    fn spiffe_table() {
        let cases: &[(&str, bool)] = &[
            ("spiffe://cluster.local/ns/payments/sa/api", true),
            ("spiffe://example.org/ns/a/sa/b", true),
            ("spiffe://cluster.local/ns/payments/sa/api/", false),
            ("spiffe://cluster.local/ns/payments/sa", false),
            ("spiffe://cluster.local/sa/api/ns/payments", false),
            ("https://cluster.local/ns/payments/sa/api", false),
            ("spiffe:///ns/payments/sa/api", false),
            ("spiffe://cluster.local/ns/Payments/sa/api", false),
            ("spiffe://cluster.local/ns//sa/api", false),
        ];
        for (input, ok) in cases {
            let got = IdentityName::parse_spiffe(input, "linkerd");
            assert_eq!(got.is_ok(), *ok, "{input}: {got:?}");
            if let Ok(id) = got {
                assert_eq!(id.spiffe_id(), *input);
            }
        }
    }

    #[test]
    fn trust_domain_membership() {
        let td = TrustDomain::default();
        assert!(td.parse_identity(API).is_ok());
        let err = td
            .parse_identity("api.payments.serviceaccount.identity.other.cluster.local")
            .unwrap_err();
        assert!(matches!(err, NameError::WrongTrustDomain { .. }), "{err}");
        assert!(TrustDomain::new("linkerd", "").is_err());
        assert!(TrustDomain::new("Linkerd", "cluster.local").is_err());
    }
}
