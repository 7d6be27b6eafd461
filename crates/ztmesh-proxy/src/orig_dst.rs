//! The original destination of a connection that iptables REDIRECTed to the
//! proxy (`SO_ORIGINAL_DST`, IPv4 and IPv6).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

const SO_ORIGINAL_DST: libc::c_int = 80;
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;

pub fn original_dst(tcp: &tokio::net::TcpStream) -> std::io::Result<SocketAddr> {
    let fd = tcp.as_raw_fd();
    let local = tcp.local_addr()?;
    // SAFETY: getsockopt writes at most `len` bytes into a properly sized,
    // zeroed sockaddr buffer owned by this frame.
    unsafe {
        if local.is_ipv4() {
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::SOL_IP,
                SO_ORIGINAL_DST,
                &mut addr as *mut _ as *mut libc::c_void,
                &mut len,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Ok(SocketAddr::new(ip.into(), u16::from_be(addr.sin_port)))
        } else {
            let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::SOL_IPV6,
                IP6T_SO_ORIGINAL_DST,
                &mut addr as *mut _ as *mut libc::c_void,
                &mut len,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let ip = std::net::Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Ok(SocketAddr::new(ip.into(), u16::from_be(addr.sin6_port)))
        }
    }
}
