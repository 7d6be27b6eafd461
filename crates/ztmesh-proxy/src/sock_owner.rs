//! Who owns the other end of a local TCP connection: the uid the kernel
//! reports for a socket through `NETLINK_SOCK_DIAG` (an exact
//! `SOCK_DIAG_BY_FAMILY` lookup by the connection's four-tuple, not a dump
//! of every socket; the socket calls are in [`crate::sys`]).
//!
//! The outbound proxy uses it to serve only the workload's own processes
//! (`ZTMESH_PROXY_APP_UID`): on a shared host any local process could
//! otherwise send requests with the workload's identity.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("sock_diag: {0}")]
    Io(#[from] std::io::Error),
    #[error("sock_diag: no local socket {0} -> {1} (not a connection from this host)")]
    NotFound(SocketAddr, SocketAddr),
    #[error("sock_diag: {0} and {1} are of different address families")]
    Families(SocketAddr, SocketAddr),
    #[error("sock_diag: a malformed answer ({0} bytes)")]
    Malformed(usize),
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const HEADER_LEN: usize = 16;
const REQUEST_LEN: usize = 56;
/// `inet_diag_msg`: the uid's offset in it.
const UID_OFFSET: usize = 64;

/// The uid owning the socket whose local address is `peer` and whose
/// remote address is `local`: the client end of a connection this process
/// accepted from `peer` on `local`.
pub(crate) fn peer_uid(peer: SocketAddr, local: SocketAddr) -> Result<u32, OwnerError> {
    let request = request(peer, local)?;
    let mut answer = [0u8; 512];
    let n = crate::sys::sock_diag_exchange(&request, &mut answer)?;
    parse(&answer[..n], peer, local)
}

fn request(peer: SocketAddr, local: SocketAddr) -> Result<Vec<u8>, OwnerError> {
    let family = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(OwnerError::Families(peer, local)),
    };
    let mut m = Vec::with_capacity(HEADER_LEN + REQUEST_LEN);
    // nlmsghdr: length, type, flags (NLM_F_REQUEST), sequence, port id.
    m.extend_from_slice(&((HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, extensions, pad, states (all).
    m.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&u32::MAX.to_ne_bytes());
    // inet_diag_sockid: the socket's own (source) side is `peer`.
    m.extend_from_slice(&peer.port().to_be_bytes());
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&address(peer.ip()));
    m.extend_from_slice(&address(local.ip()));
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    Ok(m)
}

fn address(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

fn parse(answer: &[u8], peer: SocketAddr, local: SocketAddr) -> Result<u32, OwnerError> {
    let malformed = || OwnerError::Malformed(answer.len());
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(answer.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(answer.get(at..at + 4)?.try_into().ok()?))
    };
    match u16_at(4).ok_or_else(malformed)? {
        SOCK_DIAG_BY_FAMILY => u32_at(HEADER_LEN + UID_OFFSET).ok_or_else(malformed),
        NLMSG_ERROR => {
            let errno = i32::from_ne_bytes(
                answer
                    .get(HEADER_LEN..HEADER_LEN + 4)
                    .ok_or_else(malformed)?
                    .try_into()
                    .map_err(|_| malformed())?,
            );
            if errno == -libc::ENOENT {
                Err(OwnerError::NotFound(peer, local))
            } else {
                Err(std::io::Error::from_raw_os_error(-errno).into())
            }
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_the_owner_of_a_local_client() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = tokio::net::TcpListener::bind(bind).await else {
                assert!(bind.starts_with('['), "IPv4 loopback must work");
                continue;
            };
            let local = listener.local_addr().unwrap();
            let _client = tokio::net::TcpStream::connect(local).await.unwrap();
            let (_server, peer) = listener.accept().await.unwrap();
            // This process's uid, without a system call of our own.
            let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
            assert_eq!(peer_uid(peer, local).unwrap(), me, "{bind}");
            // A four-tuple no socket has.
            let ghost = SocketAddr::new(peer.ip(), 1);
            assert!(matches!(
                peer_uid(ghost, local),
                Err(OwnerError::NotFound(..))
            ));
        }
        assert!(matches!(
            peer_uid("127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()),
            Err(OwnerError::Families(..))
        ));
    }

    #[test]
    fn malformed_answers_are_errors() {
        let (p, l) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert!(matches!(parse(&[], p, l), Err(OwnerError::Malformed(0))));
        let mut short = vec![0u8; 20];
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert!(matches!(
            parse(&short, p, l),
            Err(OwnerError::Malformed(20))
        ));
    }
}
