//! The original destination of a connection that iptables REDIRECTed to the
//! proxy (`SO_ORIGINAL_DST`, IPv4 and IPv6; the system call is in
//! [`crate::sys`]).

use std::net::SocketAddr;
use std::os::fd::AsFd;

pub(crate) fn original_dst(tcp: &tokio::net::TcpStream) -> std::io::Result<SocketAddr> {
    let ipv6 = tcp.local_addr()?.is_ipv6();
    crate::sys::original_dst(tcp.as_fd(), ipv6)
}
