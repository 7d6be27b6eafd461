//! Serving HTTP/1: a request head gets a bounded time from its first byte,
//! and an idle kept-alive connection is never closed.
//!
//! hyper's `header_read_timeout` also runs while a kept-alive connection
//! sits idle between requests, so clients' pools raced with it and lost
//! requests. As linkerd2-proxy does, it is turned off; instead the
//! connection's reads are watched ([`HeadTimed`]): the first byte read
//! while the connection is idle starts the clock, the request reaching
//! the service stops it, and the response's body ending makes the
//! connection idle again. A slowloris head is still cut off. Upgraded
//! connections (WebSocket, CONNECT) are never timed.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const REQUEST: u8 = 2;
const UPGRADED: u8 = 3;

/// Where one connection is between requests; shared by its IO and its
/// service.
#[derive(Clone, Default)]
pub(crate) struct HeadClock(Arc<AtomicU8>);

impl HeadClock {
    /// The service got a request: its head is complete.
    pub(crate) fn request(&self) {
        self.0.store(REQUEST, Ordering::Relaxed);
    }

    /// A CONNECT tunnel was opened: the connection is no longer HTTP.
    pub(crate) fn upgraded(&self) {
        self.0.store(UPGRADED, Ordering::Relaxed);
    }

    fn idle(&self) {
        let _ = self
            .0
            .compare_exchange(REQUEST, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The response to send on a connection with a clock (HTTP/1) or without
/// one (HTTP/2, whose heads hyper bounds itself).
pub(crate) fn respond<B>(
    clock: Option<&HeadClock>,
    rsp: http::Response<B>,
) -> http::Response<IdleOnEnd<B>> {
    let clock = clock.and_then(|c| {
        if rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            c.upgraded();
            None
        } else {
            Some(c.clone())
        }
    });
    rsp.map(|inner| IdleOnEnd { inner, clock })
}

/// The connection's IO, timing request heads.
pub(crate) struct HeadTimed<I> {
    io: I,
    clock: HeadClock,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> HeadTimed<I> {
    pub(crate) fn new(io: I, clock: HeadClock, limit: Duration) -> Self {
        Self {
            io,
            clock,
            limit,
            deadline: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for HeadTimed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        let phase = this.clock.0.load(Ordering::Relaxed);
        if phase != HEAD {
            this.deadline = None;
        }
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before && phase == IDLE => {
                this.clock.0.store(HEAD, Ordering::Relaxed);
                this.deadline = Some(Box::pin(tokio::time::sleep(this.limit)));
                Poll::Ready(Ok(()))
            }
            Poll::Pending if phase == HEAD => {
                let limit = this.limit;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "request head timeout: the head did not arrive within {limit:?} of its first byte"
                        ),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadTimed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves one HTTP/1 connection the proxy's way: request heads timed
/// from their first byte (`limit`), idle never; half-close and upgrades
/// supported; closed gracefully when `drain` fires. `clock` must be the
/// one the service reports to.
pub(crate) async fn serve_http1<I, S>(
    io: I,
    clock: HeadClock,
    limit: Duration,
    service: S,
    drain: crate::drain::Watch,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = hyper_util::rt::TokioIo::new(HeadTimed::new(io, clock, limit));
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    crate::drain::serve(conn, drain, |c| c.graceful_shutdown()).await
}

/// A response body that makes its connection idle when it ends.
pub(crate) struct IdleOnEnd<B> {
    inner: B,
    clock: Option<HeadClock>,
}

impl<B> Drop for IdleOnEnd<B> {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.idle();
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for IdleOnEnd<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(clock) = self.clock.take()
        {
            clock.idle();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_is_untimed_and_heads_are_timed_from_their_first_byte() {
        let limit = Duration::from_secs(10);
        let (mut client, server) = tokio::io::duplex(1024);
        let clock = HeadClock::default();
        let mut io = HeadTimed::new(server, clock.clone(), limit);
        let mut buf = [0u8; 64];
        // Idle for an hour: no timeout.
        let idle = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle connection is never timed");
        // A first byte starts the clock; a complete head within it is fine.
        client.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_secs(9)).await;
        client.write_all(b"ET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        clock.request();
        // While the request is served, reads (its body) are not timed.
        let body = tokio::time::timeout(Duration::from_secs(60), io.read(&mut buf)).await;
        assert!(body.is_err());
        // The response ends: idle again, untimed.
        let rsp = respond(
            Some(&clock),
            http::Response::new(http_body_util::Empty::<Bytes>::new()),
        );
        drop(rsp);
        let idle = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buf)).await;
        assert!(idle.is_err());
        // A slowloris head: cut off at the limit after its first byte.
        client.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        let started = tokio::time::Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn upgraded_connections_are_never_timed() {
        let (mut client, server) = tokio::io::duplex(1024);
        let clock = HeadClock::default();
        let mut io = HeadTimed::new(server, clock.clone(), Duration::from_secs(1));
        clock.request();
        let rsp = http::Response::builder()
            .status(101)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        drop(respond(Some(&clock), rsp));
        let mut buf = [0u8; 8];
        client.write_all(b"x").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        let quiet = tokio::time::timeout(Duration::from_secs(60), io.read(&mut buf)).await;
        assert!(quiet.is_err(), "no timeout on an upgraded connection");
    }
}
