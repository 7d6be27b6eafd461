//! Accepting gRPC C-core clients (py-spiffe, C++, Ruby) on the socket.
//!
//! gRPC's C core sends a `unix:` target's path, percent-encoded, as the
//! HTTP/2 `:authority` (`tmp%2Fagent.sock`); the Rust HTTP/2 stack (h2)
//! accepts `%` only in an authority's userinfo, so it resets such a stream
//! as malformed before the service sees it. [`AuthorityFix`] sits between
//! the socket and the server: it passes every byte through except the
//! header blocks of the client's HEADERS frames (with their CONTINUATIONs),
//! which it decodes (HPACK, following the client's dynamic table), and
//! re-encodes for the server with an `:authority` containing `%` replaced
//! by `localhost` (what Go and Rust clients send). Padding is dropped; a
//! priority block is kept. The server's direction is untouched, so the
//! HPACK state of that direction stays the two ends' own.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::{Connected, UdsConnectInfo};

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The server's SETTINGS_MAX_FRAME_SIZE is at least this (RFC 9113 4.2).
const MAX_FRAME: usize = 16_384;

/// A header block being reassembled: stream, HEADERS flags (minus the
/// ones this rewrites), priority bytes, fragments so far.
struct Pending {
    stream: [u8; 4],
    flags: u8,
    priority: Vec<u8>,
    block: Vec<u8>,
}

/// The rewriting state of one connection's client-to-server bytes.
pub(crate) struct Rewriter {
    preface_left: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    pending: Option<Pending>,
    decoder: hpack::Decoder<'static>,
    encoder: hpack::Encoder<'static>,
    broken: bool,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            preface_left: PREFACE_LEN,
            input: Vec::new(),
            output: Vec::new(),
            pending: None,
            decoder: hpack::Decoder::new(),
            encoder: hpack::Encoder::new(),
            broken: false,
        }
    }
}

impl Rewriter {
    /// Takes bytes from the client; what may go to the server is in `output`.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            self.output.extend_from_slice(bytes);
            return;
        }
        self.input.extend_from_slice(bytes);
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.input.len());
            self.output.extend(self.input.drain(..n));
            self.preface_left -= n;
        }
        while self.preface_left == 0 && self.input.len() >= FRAME_HEADER_LEN {
            let h = &self.input[..FRAME_HEADER_LEN];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if self.input.len() < FRAME_HEADER_LEN + len {
                return;
            }
            let frame: Vec<u8> = self.input.drain(..FRAME_HEADER_LEN + len).collect();
            self.frame(frame);
        }
    }

    fn frame(&mut self, frame: Vec<u8>) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream: [u8; 4] = frame[5..9].try_into().expect("9-byte header");
        let payload = &frame[FRAME_HEADER_LEN..];
        match kind {
            HEADERS => {
                let mut body = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    let Some((&p, rest)) = body.split_first() else {
                        return self.give_up(frame);
                    };
                    pad = usize::from(p);
                    body = rest;
                }
                let mut priority = Vec::new();
                if flags & PRIORITY != 0 {
                    if body.len() < 5 {
                        return self.give_up(frame);
                    }
                    priority = body[..5].to_vec();
                    body = &body[5..];
                }
                if body.len() < pad {
                    return self.give_up(frame);
                }
                let block = body[..body.len() - pad].to_vec();
                self.pending = Some(Pending {
                    stream,
                    flags: flags & !(PADDED | END_HEADERS),
                    priority,
                    block,
                });
                if flags & END_HEADERS != 0 {
                    self.finish();
                }
            }
            CONTINUATION if self.pending.is_some() => {
                if let Some(p) = &mut self.pending {
                    p.block.extend_from_slice(payload);
                }
                if flags & END_HEADERS != 0 {
                    self.finish();
                }
            }
            _ => self.output.extend_from_slice(&frame),
        }
    }

    /// Re-encodes the complete block of the pending HEADERS.
    fn finish(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let Ok(mut headers) = self.decoder.decode(&p.block) else {
            // Let the server see (and refuse) what the client sent.
            self.broken = true;
            let mut original = p.priority.clone();
            original.extend_from_slice(&p.block);
            let flags = p.flags | END_HEADERS | if p.priority.is_empty() { 0 } else { PRIORITY };
            self.emit(HEADERS, flags, p.stream, &original);
            return;
        };
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority" && value.contains(&b'%') {
                *value = b"localhost".to_vec();
            }
        }
        let mut block = p.priority.clone();
        block.extend(
            self.encoder
                .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))),
        );
        let first_len = block.len().min(MAX_FRAME);
        let (first, mut rest) = block.split_at(first_len);
        let end = if rest.is_empty() { END_HEADERS } else { 0 };
        self.emit(HEADERS, p.flags | end, p.stream, first);
        while !rest.is_empty() {
            let n = rest.len().min(MAX_FRAME);
            let end = if n == rest.len() { END_HEADERS } else { 0 };
            self.emit(CONTINUATION, end, p.stream, &rest[..n]);
            rest = &rest[n..];
        }
    }

    fn emit(&mut self, kind: u8, flags: u8, stream: [u8; 4], payload: &[u8]) {
        let len = payload.len();
        self.output.extend_from_slice(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
        ]);
        self.output.extend_from_slice(&stream);
        self.output.extend_from_slice(payload);
    }

    /// A frame this cannot read: pass it and everything after unchanged.
    fn give_up(&mut self, frame: Vec<u8>) {
        self.broken = true;
        self.output.extend_from_slice(&frame);
        let rest: Vec<u8> = self.input.drain(..).collect();
        self.output.extend_from_slice(&rest);
    }

    pub(crate) fn take_output(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.output.len());
        self.output.drain(..n).collect()
    }
}

/// A Unix-socket connection whose client headers pass through [`Rewriter`].
pub struct AuthorityFix {
    inner: UnixStream,
    rewriter: Rewriter,
}

impl AuthorityFix {
    pub fn new(inner: UnixStream) -> Self {
        Self {
            inner,
            rewriter: Rewriter::default(),
        }
    }
}

impl Connected for AuthorityFix {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for AuthorityFix {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.rewriter.output.is_empty() {
                let out = this.rewriter.take_output(buf.remaining());
                buf.put_slice(&out);
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 8192];
            let mut read = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.rewriter.feed(read.filled()),
                other => return other,
            }
        }
    }
}

impl AsyncWrite for AuthorityFix {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Splits the server-bound bytes (after the preface) into frames.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = (usize::from(bytes[0]) << 16)
                | (usize::from(bytes[1]) << 8)
                | usize::from(bytes[2]);
            out.push((bytes[3], bytes[4], bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    #[test]
    fn rewrites_a_percent_authority_and_passes_the_rest() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut client = hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":authority", b"tmp%2Fagent.sock"),
            (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
            (b"workload.spiffe.io", b"true"),
        ];
        let block = client.encode(headers.clone());
        let (a, b) = block.split_at(block.len() / 2);
        // (case, client bytes) -> the server sees these headers
        let settings = frame(0x4, 0, 0, &[]);
        let mut padded = vec![3u8];
        padded.extend_from_slice(&client.encode(headers.clone()));
        padded.extend_from_slice(&[0, 0, 0]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("one HEADERS", frame(HEADERS, END_HEADERS, 1, &block)),
            (
                "HEADERS + CONTINUATION",
                [
                    frame(HEADERS, 0, 1, a),
                    frame(CONTINUATION, END_HEADERS, 1, b),
                ]
                .concat(),
            ),
            (
                "padded, dynamic table reused",
                frame(HEADERS, END_HEADERS | PADDED, 3, &padded),
            ),
        ];
        let mut r = Rewriter::default();
        let mut server = hpack::Decoder::new();
        let mut sent = preface.to_vec();
        sent.extend_from_slice(&settings);
        // Fed one byte at a time: frames split across reads.
        for b in &sent {
            r.feed(std::slice::from_ref(b));
        }
        let out = r.take_output(usize::MAX);
        assert_eq!(&out[..24], preface);
        assert_eq!(&out[24..], &settings[..], "other frames pass unchanged");
        for (case, bytes) in cases {
            for chunk in bytes.chunks(7) {
                r.feed(chunk);
            }
            let out = r.take_output(usize::MAX);
            let fs = frames(&out);
            let block: Vec<u8> = fs.iter().flat_map(|(_, _, p)| p.clone()).collect();
            assert_eq!(fs[0].0, HEADERS, "{case}");
            assert_eq!(
                fs.last().map(|f| f.1 & END_HEADERS),
                Some(END_HEADERS),
                "{case}"
            );
            let got = server.decode(&block).expect("server decodes");
            let authority = got
                .iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| v.clone());
            assert_eq!(authority.as_deref(), Some(&b"localhost"[..]), "{case}");
            assert!(
                got.iter()
                    .any(|(n, v)| n == b"workload.spiffe.io" && v == b"true"),
                "{case}"
            );
            assert_eq!(got.len(), 4, "{case}");
        }
    }

    #[test]
    fn a_plain_authority_is_kept() {
        let mut r = Rewriter {
            preface_left: 0,
            ..Rewriter::default()
        };
        let block = hpack::Encoder::new().encode(vec![(&b":authority"[..], &b"localhost:1"[..])]);
        r.feed(&frame(HEADERS, END_HEADERS, 1, &block));
        let out = r.take_output(usize::MAX);
        let got = hpack::Decoder::new()
            .decode(&frames(&out)[0].2)
            .expect("decodes");
        assert_eq!(got, vec![(b":authority".to_vec(), b"localhost:1".to_vec())]);
    }
}
