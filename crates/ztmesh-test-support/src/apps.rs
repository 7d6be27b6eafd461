//! Applications for tests: real TCP servers on a given address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `tag` on `bind` (port 0 for any). An HTTP/1 request gets a
/// `200` whose body is `{tag}:{METHOD} {path}` (keep-alive, any number of
/// requests); anything else is echoed as `{tag}:{bytes}` once the client
/// half-closes. Returns the address and a count of accepted connections.
pub async fn echo_or_http(bind: &str, tag: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind)
        .await
        .expect("bind the test application");
    let addr = listener.local_addr().expect("local address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(n) => n,
                        Err(_) => return,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let first_line = buf.windows(2).position(|w| w == b"\r\n").map(|i| &buf[..i]);
                    let is_http = first_line
                        .is_some_and(|l| l.ends_with(b" HTTP/1.1") || l.ends_with(b" HTTP/1.0"));
                    if is_http {
                        // Answer every complete request head in the buffer.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let line = head.lines().next().unwrap_or_default();
                            let mut parts = line.split(' ');
                            let body = format!(
                                "{tag}:{} {}",
                                parts.next().unwrap_or(""),
                                parts.next().unwrap_or("")
                            );
                            let rsp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(rsp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        if n == 0 {
                            return;
                        }
                    } else if n == 0 {
                        let _ = s
                            .write_all(
                                format!("{tag}:{}", String::from_utf8_lossy(&buf)).as_bytes(),
                            )
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}
