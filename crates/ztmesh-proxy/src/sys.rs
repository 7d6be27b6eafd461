//! The proxy's only `unsafe` code: the few system calls std does not wrap,
//! each behind a safe function, each block with its `SAFETY:` argument.
//! The crate root denies `unsafe_code`; this module alone allows it.
//!
//! - [`original_dst`]: `getsockopt(SO_ORIGINAL_DST)`, where iptables'
//!   REDIRECT keeps a connection's original destination;
//! - [`sock_diag_exchange`]: one request and one answer over a
//!   `NETLINK_SOCK_DIAG` socket (who owns a local socket);
//! - [`raise_open_files_limit`]: `getrlimit` / `setrlimit(RLIMIT_NOFILE)`;
//! - [`page_size`] and [`malloc_trim`]: for giving memory back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SO_ORIGINAL_DST` (IPv4) and `IP6T_SO_ORIGINAL_DST` (IPv6): both 80.
const SO_ORIGINAL_DST: libc::c_int = 80;

/// The original destination of a REDIRECTed TCP socket.
pub(crate) fn original_dst(fd: BorrowedFd<'_>, ipv6: bool) -> io::Result<SocketAddr> {
    if ipv6 {
        let addr: libc::sockaddr_in6 = getsockopt(fd, libc::SOL_IPV6, SO_ORIGINAL_DST)?;
        let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
        Ok(SocketAddr::new(ip.into(), u16::from_be(addr.sin6_port)))
    } else {
        let addr: libc::sockaddr_in = getsockopt(fd, libc::SOL_IP, SO_ORIGINAL_DST)?;
        let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        Ok(SocketAddr::new(ip.into(), u16::from_be(addr.sin_port)))
    }
}

/// A socket option whose value is a plain C struct (`T` is only ever a
/// `libc::sockaddr_*`, for which all-zero bytes are a valid value).
fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    // SAFETY: T is a libc sockaddr struct (plain integers and arrays), for
    // which the all-zero bit pattern is a valid value.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `fd` is a live descriptor for the duration of the borrow;
    // the kernel writes at most `len` bytes into `value`, which is owned
    // by this frame and exactly `len` bytes long.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Sends `request` to the kernel over a new `NETLINK_SOCK_DIAG` socket and
/// reads one answer into `answer`; the length of the answer.
pub(crate) fn sock_diag_exchange(request: &[u8], answer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: socket() takes no pointers; the descriptor it returns is
    // checked, then owned (and closed) by `fd` below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid sockaddr_nl (pid 0, groups 0: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and the address are valid for the lengths passed
    // and outlive the call; `fd` is open.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `answer` is writable for `answer.len()` bytes; `fd` is open.
    let n = unsafe { libc::recv(fd.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Raises the soft limit on open files to the hard one: (before, after),
/// or `None` when it already was there.
pub(crate) fn raise_open_files_limit() -> io::Result<Option<(u64, u64)>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct passed, owned by this frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(None);
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit only reads the struct passed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some((before, limit.rlim_cur)))
}

/// The size of a memory page.
pub(crate) fn page_size() -> Option<u64> {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok()
}

/// glibc's `malloc_trim(0)`: returns the free pages of every arena to the
/// kernel; whether any memory was released.
#[cfg(target_env = "gnu")]
pub(crate) fn malloc_trim() -> bool {
    // SAFETY: malloc_trim only releases memory the allocator holds free;
    // any pad value is valid.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators keep their own counsel.
#[cfg(not(target_env = "gnu"))]
pub(crate) fn malloc_trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_never_redirected_has_no_original_destination() {
        use std::os::fd::AsFd;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        // Without a REDIRECT (or without the conntrack module) the kernel
        // answers with an error, never with garbage.
        if let Ok(addr) = original_dst(client.as_fd(), false) {
            assert_eq!(addr, listener.local_addr().unwrap());
        }
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        let page = page_size().unwrap();
        assert!(page >= 4096 && page.is_power_of_two(), "{page}");
    }

    #[test]
    fn the_open_files_limit_ends_at_its_hard_limit() {
        let first = raise_open_files_limit().unwrap();
        if let Some((before, after)) = first {
            assert!(after > before);
        }
        assert_eq!(raise_open_files_limit().unwrap(), None);
    }
}
