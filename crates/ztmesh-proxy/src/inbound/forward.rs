//! Stage: hand the stream to the application.
//!
//! A TCP connection to the target, the already-read bytes first, then a
//! bidirectional copy that propagates half-close (EOF one way shuts down
//! that direction only), so request/response protocols that close their
//! write side early still get their answer.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("connecting to the application at {target}: {error}")]
    Connect {
        target: SocketAddr,
        error: std::io::Error,
    },
    #[error("the application at {target} did not accept within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout { target: SocketAddr },
    #[error("copying: {0}")]
    Copy(std::io::Error),
}

/// Bytes copied: (client to app, app to client).
pub(crate) async fn forward<I: AsyncRead + AsyncWrite + Unpin>(
    client: &mut I,
    target: SocketAddr,
) -> Result<(u64, u64), ForwardError> {
    let mut app = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| ForwardError::ConnectTimeout { target })?
        .map_err(|error| ForwardError::Connect { target, error })?;
    let _ = app.set_nodelay(true);
    let copied = tokio::io::copy_bidirectional(client, &mut app)
        .await
        .map_err(ForwardError::Copy)?;
    let _ = app.shutdown().await;
    Ok(copied)
}
