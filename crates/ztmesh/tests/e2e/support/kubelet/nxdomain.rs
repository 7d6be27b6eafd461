//! The node's DNS server, which knows no names: every query is answered
//! NXDOMAIN at once, on UDP at the node's address, port 53. Pods name it in
//! their `resolv.conf`, so that a resolver which asks DNS before reading
//! `/etc/hosts` (linkerd2-proxy looks up SRV records for the control
//! plane's addresses first) hears "no such name" instead of waiting for a
//! server that never answers. Stops when dropped.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct NxDomain {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The answer to `query`: its header and question with QR, RA and
/// RCODE 3 (NXDOMAIN) set and no records; None for what is not a query.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut out = query.to_vec();
    // QR=1, keep opcode and RD; RA=1, RCODE=3.
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | 0x03;
    // Answer, authority and additional counts: none (an EDNS OPT record
    // in the query's additional section is dropped with them).
    out[6..12].fill(0);
    let question_end = question_end(query)?;
    out.truncate(question_end);
    Some(out)
}

/// Where the (single) question of a query ends.
fn question_end(query: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        at += len;
    }
    let end = at + 4;
    (end <= query.len()).then_some(end)
}

impl NxDomain {
    pub fn start(ip: Ipv4Addr) -> Self {
        let socket = UdpSocket::bind(SocketAddr::from((ip, 53))).expect("UDP port 53 on the node");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NxDomain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_queries_nxdomain_and_ignores_the_rest() {
        // id 0x1234, RD, one question: "a.b" SRV IN, one additional record.
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        query.extend([1, b'a', 1, b'b', 0, 0, 33, 0, 1]);
        query.extend([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
        let reply = answer(&query).expect("a reply");
        assert_eq!(&reply[..4], &[0x12, 0x34, 0x81, 0x83]);
        assert_eq!(&reply[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&reply[12..], &query[12..21]);
        // (input, why there is no reply)
        for (input, why) in [
            (&reply[..], "a response"),
            (&query[..11], "shorter than a header"),
            (&query[..15], "a cut question"),
        ] {
            assert_eq!(answer(input), None, "{why}");
        }
    }
}
