//! Linkerd's opaque transport header (ALPN `transport.l5d.io/v1`).
//!
//! When a client proxy cannot rely on iptables to carry the target port to
//! the peer (explicit mode, opaque ports), it dials the peer's inbound port
//! and, inside the mTLS session, first writes this header naming the target:
//! the preface `transport.l5d.io/v1\r\n\r\n`, a big-endian u32 length, then a
//! protobuf `Header { int32 port = 1; string name = 2; SessionProtocol
//! session_protocol = 3; }`, as linkerd2-proxy writes it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const ALPN: &[u8] = b"transport.l5d.io/v1";
const PREFACE: &[u8] = b"transport.l5d.io/v1\r\n\r\n";
/// A header is a port and a name: anything larger is refused, not buffered.
pub(crate) const MAX_HEADER_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportHeader {
    pub port: u16,
    pub name: Option<String>,
    pub protocol: Option<SessionProtocol>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionProtocol {
    Http1,
    Http2,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Header {
    #[prost(int32, tag = "1")]
    port: i32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, optional, tag = "3")]
    session_protocol: Option<Session>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Session {
    #[prost(oneof = "SessionKind", tags = "1, 2")]
    kind: Option<SessionKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum SessionKind {
    #[prost(message, tag = "1")]
    Http1(Empty),
    #[prost(message, tag = "2")]
    Http2(Empty),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the transport header preface is missing")]
    NoPreface,
    #[error("the transport header is {0} bytes; at most 4096 are accepted")]
    TooLong(usize),
    #[error("the transport header is malformed: {0}")]
    Malformed(String),
    #[error("port {0} in the transport header is not a TCP port")]
    BadPort(i32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl TransportHeader {
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        let header = Header {
            port: self.port.into(),
            name: self.name.clone().unwrap_or_default(),
            session_protocol: self.protocol.map(|p| Session {
                kind: Some(match p {
                    SessionProtocol::Http1 => SessionKind::Http1(Empty {}),
                    SessionProtocol::Http2 => SessionKind::Http2(Empty {}),
                }),
            }),
        };
        let body = header.encode_to_vec();
        let mut out = Vec::with_capacity(PREFACE.len() + 4 + body.len());
        out.extend_from_slice(PREFACE);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    pub async fn write(&self, io: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        io.write_all(&self.encode()).await
    }

    /// Reads exactly one header (and nothing after it) from `io`.
    pub async fn read(io: &mut (impl AsyncRead + Unpin)) -> Result<Self, HeaderError> {
        let mut preface = [0u8; PREFACE.len()];
        io.read_exact(&mut preface).await?;
        check_preface(&preface)?;
        let len = check_len(io.read_u32().await?)?;
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        Self::from_body(&body)
    }

    /// [`read`](Self::read) over a buffer, with the same checks in the same
    /// order (a short buffer is `read`'s `UnexpectedEof`): the header at the
    /// start of `buf` and how many bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), HeaderError> {
        let mut rest = buf;
        let mut take = |n: usize| {
            let (head, tail) = rest
                .split_at_checked(n)
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            rest = tail;
            Ok::<_, std::io::Error>(head)
        };
        check_preface(take(PREFACE.len())?)?;
        let len = check_len(u32::from_be_bytes(take(4)?.try_into().expect("four bytes")))?;
        let header = Self::from_body(take(len)?)?;
        Ok((header, PREFACE.len() + 4 + len))
    }

    fn from_body(body: &[u8]) -> Result<Self, HeaderError> {
        use prost::Message;
        let h = Header::decode(body).map_err(|e| HeaderError::Malformed(e.to_string()))?;
        let port = u16::try_from(h.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(HeaderError::BadPort(h.port))?;
        Ok(Self {
            port,
            name: (!h.name.is_empty()).then_some(h.name),
            protocol: h.session_protocol.and_then(|s| s.kind).map(|k| match k {
                SessionKind::Http1(_) => SessionProtocol::Http1,
                SessionKind::Http2(_) => SessionProtocol::Http2,
            }),
        })
    }
}

fn check_preface(preface: &[u8]) -> Result<(), HeaderError> {
    if preface != PREFACE {
        return Err(HeaderError::NoPreface);
    }
    Ok(())
}

fn check_len(len: u32) -> Result<usize, HeaderError> {
    let len = len as usize;
    if len > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_refusals() {
        let h = TransportHeader {
            port: 7001,
            name: Some("authors.booksapp.svc.cluster.local".into()),
            protocol: Some(SessionProtocol::Http2),
        };
        let bytes = h.encode();
        assert!(bytes.starts_with(PREFACE));
        let mut with_payload = bytes.clone();
        with_payload.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut r = &with_payload[..];
        assert_eq!(TransportHeader::read(&mut r).await.unwrap(), h);
        assert_eq!(
            r, b"GET / HTTP/1.1\r\n",
            "nothing after the header is consumed"
        );

        let mut bad = &b"transport.l5d.io/v2\r\n\r\n\x00\x00\x00\x00"[..];
        assert!(matches!(
            TransportHeader::read(&mut bad).await,
            Err(HeaderError::NoPreface)
        ));
        let mut huge = [PREFACE, &[0xff, 0xff, 0xff, 0xff]].concat();
        huge.extend_from_slice(&[0; 8]);
        assert!(matches!(
            TransportHeader::read(&mut &huge[..]).await,
            Err(HeaderError::TooLong(_))
        ));
        let zero_port = TransportHeader {
            port: 0,
            name: None,
            protocol: None,
        }
        .encode();
        assert!(matches!(
            TransportHeader::read(&mut &zero_port[..]).await,
            Err(HeaderError::BadPort(0))
        ));
        let truncated = &bytes[..bytes.len() - 2];
        assert!(matches!(
            TransportHeader::read(&mut &truncated[..]).await,
            Err(HeaderError::Io(_))
        ));
    }
}
