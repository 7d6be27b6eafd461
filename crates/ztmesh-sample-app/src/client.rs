//! Clients that exercise the sample app (or any server speaking the same),
//! each bounded in time and checking what comes back.

use crate::SERVED_BY;
use crate::websocket::{OP_CLOSE, OP_TEXT, accept_key, read_frame, write_frame};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer from {0} within {TIMEOUT:?}")]
    Timeout(String),
    #[error("HTTP/2 with {0}: {1}")]
    Http(String, hyper::Error),
    #[error("{0}")]
    Unexpected(String),
    #[error("I/O with {0}: {1}")]
    Io(String, std::io::Error),
}

/// What a gRPC-style call got back.
#[derive(Debug)]
pub struct GrpcReply {
    pub message: Vec<u8>,
    pub grpc_status: String,
    pub served_by: Option<String>,
}

/// A unary gRPC-style call over HTTP/2 with prior knowledge: POST `path`
/// with one length-prefixed message, then the reply and its trailers.
pub async fn grpc_call(addr: &str, path: &str, message: &[u8]) -> Result<GrpcReply, ClientError> {
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr.into(), e))?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .map_err(|e| ClientError::Http(addr.into(), e))?;
        tokio::spawn(conn);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        let req = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(framed)))
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        let rsp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(addr.into(), e))?;
        if rsp.status() != http::StatusCode::OK {
            return Err(ClientError::Unexpected(format!(
                "HTTP status {} (l5d-proxy-error: {:?})",
                rsp.status(),
                rsp.headers().get("l5d-proxy-error")
            )));
        }
        let collected = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(addr.into(), e))?;
        let trailers = collected
            .trailers()
            .cloned()
            .ok_or_else(|| ClientError::Unexpected("the reply ended without trailers".into()))?;
        let mut body = collected.to_bytes();
        if body.len() < 5 {
            return Err(ClientError::Unexpected(format!(
                "a reply of {} bytes is not a gRPC message",
                body.len()
            )));
        }
        body.advance(1);
        let len = body.get_u32() as usize;
        let header = |name: &str| {
            trailers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        Ok(GrpcReply {
            message: body.slice(..len.min(body.len())).to_vec(),
            grpc_status: header("grpc-status")
                .ok_or_else(|| ClientError::Unexpected("no grpc-status trailer".into()))?,
            served_by: header(SERVED_BY),
        })
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| ClientError::Timeout(addr.into()))?
}

/// Opens a WebSocket to `addr` (GET `path`), sends `message` as one text
/// frame and returns the echoed text, after checking the handshake.
pub async fn websocket_echo(addr: &str, path: &str, message: &str) -> Result<String, ClientError> {
    let io_err = |e| ClientError::Io(addr.into(), e);
    let work = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr.into(), e))?;
        let key = "ztmesh-sample-key==";
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.map_err(io_err)?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let b = tcp.read_u8().await.map_err(io_err)?;
            head.push(b);
            if head.len() > 16 * 1024 {
                return Err(ClientError::Unexpected("an endless response head".into()));
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(ClientError::Unexpected(format!(
                "the upgrade was refused: {head}"
            )));
        }
        let expected = accept_key(key);
        if !head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("sec-websocket-accept:") && l.ends_with(&expected)
        }) {
            return Err(ClientError::Unexpected(format!(
                "no Sec-WebSocket-Accept: {expected} in {head}"
            )));
        }
        write_frame(
            &mut tcp,
            OP_TEXT,
            message.as_bytes(),
            Some([0x11, 0x22, 0x33, 0x44]),
        )
        .await
        .map_err(io_err)?;
        let frame = read_frame(&mut tcp)
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))?;
        let _ = write_frame(&mut tcp, OP_CLOSE, &[], Some([1, 2, 3, 4])).await;
        Ok(String::from_utf8_lossy(&frame.payload).into_owned())
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| ClientError::Timeout(addr.into()))?
}

/// Sends `message`, half-closes, and returns everything the server sent.
pub async fn tcp_echo(addr: &str, message: &[u8]) -> Result<Vec<u8>, ClientError> {
    let io_err = |e| ClientError::Io(addr.into(), e);
    let work = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr.into(), e))?;
        tcp.write_all(message).await.map_err(io_err)?;
        tcp.shutdown().await.map_err(io_err)?;
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.map_err(io_err)?;
        Ok(out)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| ClientError::Timeout(addr.into()))?
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: u64,
    /// Responses by status code.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// Requests that got no response (connection errors, client timeouts).
    pub errors: u64,
    /// Latencies of the responses, sorted, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Responses by the instance that served them (`x-served-by`).
    pub served_by: std::collections::BTreeMap<String, u64>,
}

impl LoadReport {
    pub fn ok(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (200..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Open-loop load: `rps` requests per second for `duration` (at most
/// `rps x duration` requests, each bounded by [`TIMEOUT`]), over a shared
/// keep-alive HTTP/1.1 pool, whatever the answers; through an HTTP proxy
/// (absolute-form) when one is given.
pub async fn load(
    url: &str,
    method: http::Method,
    rps: u32,
    duration: Duration,
    proxy: Option<std::net::SocketAddr>,
) -> Result<LoadReport, ClientError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ClientError::Unexpected(format!("{url:?} is not a URL: {e}")))?;
    let builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    match proxy {
        Some(proxy) => {
            let connector = crate::via_proxy::ProxyConnector { proxy };
            load_with(builder.build(connector), uri, method, rps, duration).await
        }
        None => {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            load_with(builder.build(connector), uri, method, rps, duration).await
        }
    }
}

async fn load_with<C>(
    client: hyper_util::client::legacy::Client<C, Full<Bytes>>,
    uri: http::Uri,
    method: http::Method,
    rps: u32,
    duration: Duration,
) -> Result<LoadReport, ClientError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let total = (f64::from(rps.max(1)) * duration.as_secs_f64()).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..total {
        tick.tick().await;
        let (client, tx, uri, method) = (client.clone(), tx.clone(), uri.clone(), method.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let req = http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .expect("a valid request");
            let result = tokio::time::timeout(TIMEOUT, async {
                let rsp = client.request(req).await?;
                let status = rsp.status().as_u16();
                let by = rsp
                    .headers()
                    .get(SERVED_BY)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let _ = rsp.into_body().collect().await;
                Ok::<_, hyper_util::client::legacy::Error>((status, by))
            })
            .await;
            let _ = tx.send((result.ok().and_then(|r| r.ok()), started.elapsed()));
        });
    }
    drop(tx);
    let mut report = LoadReport {
        sent: total,
        ..Default::default()
    };
    while let Some((answer, latency)) = rx.recv().await {
        match answer {
            Some((s, by)) => {
                *report.statuses.entry(s).or_default() += 1;
                if let Some(by) = by {
                    *report.served_by.entry(by).or_default() += 1;
                }
                report.latencies_us.push(latency.as_micros() as u64);
            }
            None => report.errors += 1,
        }
    }
    report.latencies_us.sort_unstable();
    Ok(report)
}
