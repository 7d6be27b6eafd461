//! Stage: where an accepted connection may go.
//!
//! Two checks, both failing closed:
//! - the address the client dialed must be one of the pod's own
//!   (`LINKERD2_PROXY_INBOUND_IPS`, when set), as linkerd2-proxy requires;
//! - Linkerd's opaque transport header (ALPN `transport.l5d.io/v1`) names a
//!   port on the workload's address. It is honoured only from a client that
//!   proved a mesh identity (direct connections must be mutually
//!   authenticated, as in Linkerd), and never for the proxy's own ports
//!   (inbound, outbound, admin, control): otherwise an anonymous client
//!   could bounce through the workload's outbound proxy, taking its
//!   identity, or reach the admin port. The named port is then authorized
//!   with its own inbound policy by the later stages, like any connection.

use super::tls::ClientId;
use crate::transport_header::{HeaderError, TransportHeader};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncRead;

/// What this stage needs to know.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The pod's addresses; empty: any address is accepted.
    pub inbound_ips: Vec<IpAddr>,
    /// Ports the proxy itself listens on: never a transport header's target.
    pub own_ports: BTreeSet<u16>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0} is not one of this pod's addresses (LINKERD2_PROXY_INBOUND_IPS)")]
    NotInboundIp(IpAddr),
    #[error(
        "a transport header from a client without a mesh identity is refused: direct connections must be mutually authenticated"
    )]
    HeaderWithoutIdentity,
    #[error("the transport header names port {0}, one of the proxy's own ports; refused")]
    OwnPort(u16),
    #[error("no transport header within {0:?}")]
    Timeout(Duration),
    #[error("transport header: {0}")]
    Header(#[from] HeaderError),
}

impl Targets {
    /// The dialed address must be the pod's.
    pub(crate) fn check_dialed(&self, dialed: SocketAddr) -> Result<(), TargetError> {
        if self.inbound_ips.is_empty() || self.inbound_ips.contains(&dialed.ip()) {
            Ok(())
        } else {
            Err(TargetError::NotInboundIp(dialed.ip()))
        }
    }

    /// Reads the transport header (within `timeout`) and returns the target
    /// it names: the same address, the header's port.
    pub(crate) async fn read_header<R: AsyncRead + Unpin>(
        &self,
        stream: &mut R,
        client_id: Option<&ClientId>,
        target: SocketAddr,
        timeout: Duration,
    ) -> Result<SocketAddr, TargetError> {
        // Refused before a byte of the header is read.
        if client_id.is_none() {
            return Err(TargetError::HeaderWithoutIdentity);
        }
        let header = tokio::time::timeout(timeout, TransportHeader::read(stream))
            .await
            .map_err(|_| TargetError::Timeout(timeout))??;
        self.check_port(header.port)?;
        Ok(SocketAddr::new(target.ip(), header.port))
    }

    fn check_port(&self, port: u16) -> Result<(), TargetError> {
        if self.own_ports.contains(&port) {
            Err(TargetError::OwnPort(port))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        Targets {
            inbound_ips: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            own_ports: [4143, 4140, 4191, 4190].into(),
        }
    }

    #[test]
    fn dialed_addresses_table() {
        let t = targets();
        for (dialed, ok) in [
            ("10.0.0.5:8080", true),
            ("[fd00::5]:8080", true),
            ("10.0.0.6:8080", false),
            ("127.0.0.1:8080", false),
        ] {
            let r = t.check_dialed(dialed.parse().unwrap());
            assert_eq!(r.is_ok(), ok, "{dialed}: {r:?}");
        }
        assert!(
            Targets::default()
                .check_dialed("1.2.3.4:1".parse().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn headers_table() {
        let t = targets();
        let target: SocketAddr = "10.0.0.5:4143".parse().unwrap();
        let header = |port| {
            TransportHeader {
                port,
                name: None,
                protocol: None,
            }
            .encode()
        };
        let web = ClientId::new("web.ns.serviceaccount.identity.linkerd.cluster.local".into());
        let id = Some(&web);
        let cases: Vec<(Vec<u8>, Option<&ClientId>, Result<u16, &str>)> = vec![
            (header(8080), id, Ok(8080)),
            (header(8080), None, Err("without a mesh identity")),
            (header(4140), id, Err("proxy's own ports")),
            (header(4191), id, Err("proxy's own ports")),
            (header(4190), id, Err("proxy's own ports")),
            (header(4143), id, Err("proxy's own ports")),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                id,
                Err("preface"),
            ),
        ];
        for (bytes, client, want) in cases {
            let got = t
                .read_header(&mut &bytes[..], client, target, Duration::from_secs(1))
                .await;
            match (got, want) {
                (Ok(addr), Ok(port)) => assert_eq!(addr, SocketAddr::new(target.ip(), port)),
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{e}"),
                (got, want) => panic!("{got:?}, want {want:?}"),
            }
        }
    }
}
