//! Stage: terminate mesh TLS and learn who the client is.
//!
//! The server asks for a client certificate but admits clients without one
//! (TLS without identity); a presented certificate must chain to the trust
//! anchors. The client's identity is its leaf's first DNS SAN.
//!
//! What this stage learns is one [`ClientTls`] value per connection:
//! terminated (with the client's identity, if it proved one), passed
//! through (TLS for another name), or plaintext (and why). The
//! authorization client ([`ClientTls::authz_client`]) and the metric labels
//! ([`ClientTls::metric_label`]) are both derived from it.

use crate::metrics::TlsLabel;
use crate::prefixed::PrefixedIo;
use crate::transport_header;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub(crate) type ServerTlsStream = tokio_rustls::server::TlsStream<PrefixedIo<TcpStream>>;

/// Bound on the whole handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's verified mesh identity (its certificate's first DNS SAN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientId(String);

impl ClientId {
    pub(crate) fn new(id: String) -> Self {
        Self(id)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the TLS stage learned about an inbound connection's client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientTls {
    /// This proxy terminated mesh TLS; the client's identity, when it
    /// presented a certificate.
    Terminated { client_id: Option<ClientId> },
    /// TLS for another server name (or none), passed on undecrypted.
    Passthrough { sni: Option<String> },
    /// No TLS.
    Plaintext(NoTlsReason),
}

/// Why a connection is not TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoTlsReason {
    /// The first bytes were not a TLS ClientHello.
    NotTls,
    /// The client sent nothing within the detect timeout (a protocol in
    /// which the server speaks first).
    Silent,
}

impl ClientTls {
    /// The verified identity, if any.
    pub(crate) fn client_id(&self) -> Option<&ClientId> {
        self.identity_or_reason().ok()
    }

    /// The client as the authorization decision sees it: TLS only when
    /// this proxy terminated it (passed-through TLS proves nothing).
    pub(crate) fn authz_client(&self, ip: std::net::IpAddr) -> ztmesh_authz::Client<'_> {
        ztmesh_authz::Client {
            ip,
            tls: matches!(self, Self::Terminated { .. }),
            identity: self.client_id().map(ClientId::as_str),
        }
    }

    /// The identified client, or Linkerd's `no_tls_reason` for one
    /// without an identity.
    fn identity_or_reason(&self) -> Result<&ClientId, &'static str> {
        match self {
            Self::Terminated {
                client_id: Some(id),
            } => Ok(id),
            Self::Terminated { client_id: None } => Err("no_client_certificate"),
            Self::Passthrough { .. } => Err("passthru"),
            Self::Plaintext(NoTlsReason::NotTls | NoTlsReason::Silent) => Err("no_tls_from_remote"),
        }
    }

    /// The label set metrics carry: `tls="true",client_id=...` for an
    /// identified client, else `tls="no_identity",no_tls_reason=...`.
    pub(crate) fn metric_label(&self) -> TlsLabel {
        match self.identity_or_reason() {
            Ok(id) => TlsLabel::Identified {
                client_id: id.as_str().to_string(),
            },
            Err(reason) => TlsLabel::NoIdentity { reason },
        }
    }
}

impl std::fmt::Display for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Terminated {
                client_id: Some(id),
            } => write!(f, "mTLS from {}", id.as_str()),
            Self::Terminated { client_id: None } => f.write_str("TLS without a client certificate"),
            Self::Passthrough { sni: Some(sni) } => write!(f, "TLS for {sni}, passed through"),
            Self::Passthrough { sni: None } => f.write_str("TLS without SNI, passed through"),
            Self::Plaintext(NoTlsReason::NotTls) => f.write_str("plaintext"),
            Self::Plaintext(NoTlsReason::Silent) => f.write_str("plaintext (client silent)"),
        }
    }
}

pub(crate) struct Terminated {
    pub(crate) stream: ServerTlsStream,
    /// The client's mesh identity, when it presented a certificate.
    pub(crate) client_id: Option<ClientId>,
    /// The client negotiated Linkerd's opaque transport (a header follows).
    pub(crate) transport_header: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake did not complete within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

pub(crate) async fn terminate(
    acceptor: &TlsAcceptor,
    trust: Option<&ztmesh_tls::Trust>,
    io: PrefixedIo<TcpStream>,
) -> Result<Terminated, TlsError> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
        .await
        .map_err(|_| TlsError::Timeout)?
        .map_err(TlsError::Handshake)?;
    let (_, conn) = stream.get_ref();
    let client_id = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| match trust {
            Some(trust) => trust.peer_identity(leaf),
            None => ztmesh_tls::peer_identity(leaf),
        })
        .map(ClientId::new);
    let transport_header = conn.alpn_protocol() == Some(transport_header::ALPN);
    Ok(Terminated {
        stream,
        client_id,
        transport_header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label values viz and alert rules read: they must not change.
    #[test]
    fn client_tls_table() {
        let web = "web.ns.serviceaccount.identity.linkerd.cluster.local";
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let id = |reason| TlsLabel::NoIdentity { reason };
        let cases = [
            (
                ClientTls::Terminated {
                    client_id: Some(ClientId::new(web.into())),
                },
                TlsLabel::Identified {
                    client_id: web.into(),
                },
                (true, Some(web)),
            ),
            (
                ClientTls::Terminated { client_id: None },
                id("no_client_certificate"),
                (true, None),
            ),
            (
                ClientTls::Passthrough {
                    sni: Some("other.example".into()),
                },
                id("passthru"),
                (false, None),
            ),
            (
                ClientTls::Plaintext(NoTlsReason::NotTls),
                id("no_tls_from_remote"),
                (false, None),
            ),
            (
                ClientTls::Plaintext(NoTlsReason::Silent),
                id("no_tls_from_remote"),
                (false, None),
            ),
        ];
        for (tls, label, (terminated, identity)) in cases {
            assert_eq!(tls.metric_label(), label, "{tls}");
            let client = tls.authz_client(ip);
            assert_eq!(
                (client.tls, client.identity),
                (terminated, identity),
                "{tls}"
            );
            assert_eq!(client.ip, ip);
        }
    }
}
