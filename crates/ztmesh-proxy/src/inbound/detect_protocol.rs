//! Stage: which protocol does the (decrypted) stream speak?
//!
//! HTTP/2 with prior knowledge is recognised by its connection preface,
//! HTTP/1.x by a request line (`METHOD SP target SP HTTP/1.x`); anything
//! else is opaque TCP. `None` means "need more bytes"; the caller bounds
//! the wait (linkerd2-proxy's detect timeout, 10s by default) and treats
//! a timeout as opaque.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Opaque,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest request line we wait for before calling the stream opaque.
pub(crate) const MAX_REQUEST_LINE: usize = 8 * 1024;

pub fn detect_protocol(buf: &[u8]) -> Option<Protocol> {
    if buf.is_empty() {
        return None;
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (buf.len() >= H2_PREFACE.len()).then_some(Protocol::Http2);
    }
    // The answer must not depend on how the bytes were split into reads:
    // what a prefix already decided (a 16-letter method, a request line
    // longer than MAX_REQUEST_LINE: opaque) stands for the whole.
    // Method: uppercase token, then one space; no HTTP method is 16 letters long.
    let method_len = buf.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method_len >= 16 {
        return Some(Protocol::Opaque);
    }
    if method_len == buf.len() {
        return None; // still inside the method
    }
    if method_len == 0 || buf[method_len] != b' ' {
        return Some(Protocol::Opaque);
    }
    // The request line ends at CRLF (or LF); it must end in " HTTP/1.x".
    match buf.iter().take(MAX_REQUEST_LINE).position(|&b| b == b'\n') {
        Some(end) => {
            let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
            let http1 = line.len() > 9
                && line[line.len() - 9..].starts_with(b" HTTP/1.")
                && line[line.len() - 1].is_ascii_digit();
            Some(if http1 {
                Protocol::Http1
            } else {
                Protocol::Opaque
            })
        }
        None if buf.len() >= MAX_REQUEST_LINE => Some(Protocol::Opaque),
        None => None,
    }
}
