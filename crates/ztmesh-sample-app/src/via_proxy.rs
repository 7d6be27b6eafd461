//! Sending HTTP requests through an HTTP proxy (explicit mode's outbound
//! proxy): every connection goes to the proxy, and the requests keep their
//! absolute-form URI (`GET http://host:port/path`), which tells the proxy
//! where each one goes.

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Dials the proxy, whatever the URI says.
#[derive(Clone, Copy, Debug)]
pub struct ProxyConnector {
    pub proxy: SocketAddr,
}

/// A connection to the proxy: the client sends absolute-form on it.
pub struct ProxiedIo(TokioIo<TcpStream>);

impl Connection for ProxiedIo {
    fn connected(&self) -> Connected {
        Connected::new().proxy(true)
    }
}

impl hyper::rt::Read for ProxiedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxiedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tower::Service<http::Uri> for ProxyConnector {
    type Response = ProxiedIo;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = std::io::Result<ProxiedIo>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let proxy = self.proxy;
        Box::pin(async move {
            let tcp = TcpStream::connect(proxy).await?;
            let _ = tcp.set_nodelay(true);
            Ok(ProxiedIo(TokioIo::new(tcp)))
        })
    }
}
