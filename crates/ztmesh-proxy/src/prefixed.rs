//! An IO whose first bytes were already read (by detection) and are
//! replayed before the rest of the stream, and [`read_until`], which reads
//! them (up to a limit, or until a detector has seen enough).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct PrefixedIo<I> {
    prefix: Vec<u8>,
    pos: usize,
    inner: I,
}

impl<I> PrefixedIo<I> {
    pub(crate) fn new(prefix: Vec<u8>, inner: I) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PrefixedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<I> {
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

/// Reads from `io` into `buf` until `done(buf)` says enough, `limit` bytes
/// were read, or the stream ends. Returns whether the stream ended.
pub(crate) async fn read_until<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut Vec<u8>,
    limit: usize,
    mut done: impl FnMut(&[u8]) -> bool,
) -> io::Result<bool> {
    use tokio::io::AsyncReadExt;
    // Read straight into `buf`, growing it as bytes arrive: a connection
    // that sends nothing costs no buffer (10,000 idle ones stay cheap).
    while !done(buf) && buf.len() < limit {
        let want = (limit - buf.len()).min(4096);
        if !buf.is_empty() {
            // Bytes are flowing: read the rest in larger steps.
            buf.reserve(want.min(1024));
        }
        let n = (&mut *io).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}
