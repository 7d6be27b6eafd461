//! The sample workload's listeners.

use crate::websocket::{OP_CLOSE, accept_key, read_frame, write_frame};
use crate::{HTTP_VERSION, SEEN_CLIENT_ID, SERVED_BY};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Largest request body the app reads.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Named in every answer.
    pub name: String,
    /// Share of plain HTTP requests answered 500 (0.0 to 1.0).
    pub fail_rate: f64,
    /// Wait before answering plain HTTP requests.
    pub delay: Duration,
    /// Answer plain HTTP requests 500 while this file exists.
    pub fail_while: Option<std::path::PathBuf>,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves HTTP/1.1 and HTTP/2 on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, behaviour: Behaviour) {
    let behaviour = Arc::new(behaviour);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let behaviour = behaviour.clone();
                async move { Ok::<_, Infallible>(answer(req, &behaviour).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Echoes each connection's bytes back, prefixed with `{name}:`, once the
/// client half-closes.
pub async fn serve_tcp_echo(listener: TcpListener, name: String) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut limited = (&mut tcp).take(MAX_BODY as u64);
            let read = limited.read_to_end(&mut buf);
            if tokio::time::timeout(Duration::from_secs(30), read)
                .await
                .is_ok()
            {
                let _ = tcp.write_all(format!("{name}:").as_bytes()).await;
                let _ = tcp.write_all(&buf).await;
                let _ = tcp.shutdown().await;
            }
        });
    }
}

/// Binds and serves; returns the bound addresses.
pub async fn start(
    http: SocketAddr,
    tcp: Option<SocketAddr>,
    behaviour: Behaviour,
) -> std::io::Result<(SocketAddr, Option<SocketAddr>)> {
    let listener = TcpListener::bind(http).await?;
    let http_addr = listener.local_addr()?;
    let tcp_addr = match tcp {
        Some(addr) => {
            let l = TcpListener::bind(addr).await?;
            let bound = l.local_addr()?;
            tokio::spawn(serve_tcp_echo(l, behaviour.name.clone()));
            Some(bound)
        }
        None => None,
    };
    tokio::spawn(serve_http(listener, behaviour));
    Ok((http_addr, tcp_addr))
}

async fn answer(mut req: Request<Incoming>, b: &Behaviour) -> Response<Body> {
    let served_by = HeaderValue::from_str(&b.name).unwrap_or(HeaderValue::from_static("app"));
    if let Some(key) = req.headers().get("sec-websocket-key").cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                websocket_echo(TokioIo::new(upgraded)).await;
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header(
                "sec-websocket-accept",
                accept_key(key.to_str().unwrap_or_default()),
            )
            .header(SERVED_BY, served_by)
            .body(empty())
            .expect("a valid response");
    }
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
    };
    if grpc {
        // A unary echo: the request's message back, then grpc-status.
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static(""));
        trailers.insert(SERVED_BY, served_by);
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(body)),
            Ok(Frame::trailers(trailers)),
        ];
        return Response::builder()
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(StreamBody::new(futures::stream::iter(frames)).boxed())
            .expect("a valid response");
    }
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    let seen: Vec<&str> = parts
        .headers
        .get_all("l5d-client-id")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let seen = (!seen.is_empty())
        .then(|| HeaderValue::from_str(&seen.join(",")).ok())
        .flatten();
    let line = format!("{}:{} {}", b.name, parts.method, parts.uri.path());
    let version = HeaderValue::from_str(&format!("{:?}", parts.version)).expect("a version");
    let failing = b.fail_while.as_ref().is_some_and(|f| f.exists())
        || (b.fail_rate > 0.0 && fastrand::f64() < b.fail_rate);
    let mut rsp = if failing {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{line} failed\n"),
        )
    } else {
        text(StatusCode::OK, line)
    };
    rsp.headers_mut().insert(SERVED_BY, served_by);
    rsp.headers_mut().insert(HTTP_VERSION, version);
    if let Some(seen) = seen {
        rsp.headers_mut().insert(SEEN_CLIENT_ID, seen);
    }
    rsp
}

async fn websocket_echo<I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: I) {
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(60), read_frame(&mut io)).await {
            Ok(Ok(f)) => f,
            _ => return,
        };
        if write_frame(&mut io, frame.opcode, &frame.payload, None)
            .await
            .is_err()
            || frame.opcode == OP_CLOSE
        {
            return;
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a valid response")
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}
