//! Stage: is the first flight a TLS ClientHello, and for which server name?
//!
//! The accept stage reads the connection's first bytes into a buffer that
//! is replayed before the rest of the stream ([`crate::prefixed`]), so
//! nothing is lost; this parses just enough of a ClientHello to read its
//! SNI. Mesh TLS is recognised (by the accept stage) when the SNI is this
//! proxy's own identity; anything else (plaintext, TLS for another name,
//! garbage) is passed on untouched. The parser is total: any
//! input yields an answer, never a panic.

/// What the first bytes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    /// A complete ClientHello; its SNI, if it sent one.
    ClientHello { sni: Option<String> },
    /// Not TLS at all.
    NotTls,
    /// Could be TLS, but more bytes are needed to tell.
    NeedMore,
}

/// The most a ClientHello may occupy before detection gives up (a hybrid
/// post-quantum key share makes them ~1.5 KiB; this leaves ample room).
pub const MAX_PEEK: usize = 16 * 1024;

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0x0000;

pub fn detect(buf: &[u8]) -> Detected {
    // TLS record header: type 0x16, version 3.x, u16 length.
    let Some(&first) = buf.first() else {
        return Detected::NeedMore;
    };
    if first != HANDSHAKE {
        return Detected::NotTls;
    }
    if buf.len() >= 2 && buf[1] != 0x03 {
        return Detected::NotTls;
    }
    if buf.len() < 5 {
        return Detected::NeedMore;
    }
    let record_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if record_len == 0 {
        return Detected::NotTls;
    }
    let Some(record) = buf.get(5..5 + record_len) else {
        return if 5 + record_len > MAX_PEEK {
            Detected::NotTls
        } else {
            Detected::NeedMore
        };
    };
    // Handshake header: type, u24 length. A ClientHello larger than one
    // record is legal but not produced by any mesh client; treat the first
    // record's bytes as all there is.
    let mut r = Reader(record);
    if r.u8() != Some(CLIENT_HELLO) {
        return Detected::NotTls;
    }
    match client_hello_sni(&mut r) {
        Some(sni) => Detected::ClientHello { sni },
        None => Detected::NotTls,
    }
}

/// Parses a ClientHello body (after the handshake type); `None` if malformed.
fn client_hello_sni(r: &mut Reader<'_>) -> Option<Option<String>> {
    let _len = r.u24()?;
    r.skip(2)?; // legacy_version
    r.skip(32)?; // random
    let session_id = r.u8()? as usize;
    r.skip(session_id)?;
    let suites = r.u16()? as usize;
    r.skip(suites)?;
    let compression = r.u8()? as usize;
    r.skip(compression)?;
    if r.is_empty() {
        return Some(None); // no extensions at all
    }
    let ext_len = r.u16()? as usize;
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.is_empty() {
        let kind = exts.u16()?;
        let len = exts.u16()? as usize;
        let mut body = Reader(exts.take(len)?);
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let list_len = body.u16()? as usize;
        let mut list = Reader(body.take(list_len)?);
        while !list.is_empty() {
            let name_type = list.u8()?;
            let name_len = list.u16()? as usize;
            let name = list.take(name_len)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                return Some(Some(name.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<u32> {
        self.take(3)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
}
