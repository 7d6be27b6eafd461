//! The listening TCP sockets of this host's network namespace, from
//! `/proc/net/tcp` and `/proc/net/tcp6`: what `no-bypass` probes for an
//! explicit-mode workload (every port bound to its address, not only the
//! ports its manifest declares).

use std::net::IpAddr;

/// The kernel's state number for LISTEN.
const LISTEN: &str = "0A";

/// The ports listening on exactly `ip` in `text` (the content of
/// `/proc/net/tcp` or `/proc/net/tcp6`), sorted, without repeats.
pub(crate) fn listening_on(ip: IpAddr, text: &str) -> Vec<u16> {
    let mut out: Vec<u16> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            (state == LISTEN).then_some(())?;
            let (addr, port) = local.split_once(':')?;
            (parse_addr(addr)? == ip).then_some(())?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// `/proc/net/tcp{,6}`'s address: the IP's 32-bit words in host (little
/// endian) byte order, as hex.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    match words[..] {
        [w] => Some(IpAddr::from(w.to_le_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

/// The ports listening on `ip` in this host's namespace (empty when
/// `/proc` can't be read).
pub(crate) fn listening(ip: IpAddr) -> Vec<u16> {
    let mut out: Vec<u16> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| listening_on(ip, &t))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_by_address() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0209007F:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n\
   1: 0209007F:102F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0\n\
   2: 0209007F:1B59 0409007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0\n\
   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0\n\
   4: 0309007F:1B5A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0\n";
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
   0: 0000000000000000FFFF00000209007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000\n\
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000\n";
        let authors: IpAddr = "127.0.9.2".parse().unwrap();
        // (text, ip, want): a LISTEN on the address, not an established
        // connection, not another address nor the wildcard.
        let cases = [
            (tcp, authors, vec![4143, 7001]),
            (tcp, "127.0.9.3".parse().unwrap(), vec![7002]),
            (tcp, "127.0.9.9".parse().unwrap(), vec![]),
            (tcp6, authors, vec![8080]),
            (tcp6, "::1".parse().unwrap(), vec![80]),
        ];
        for (text, ip, want) in cases {
            assert_eq!(listening_on(ip, text), want, "{ip}");
        }
    }
}
