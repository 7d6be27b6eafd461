//! Plain-HTTP GETs for `viz`: a proxy's `/metrics`, the controller's viz
//! API, a Prometheus server's query API. One hyper-util client (HTTP/1.1,
//! keep-alive pool) per process; every request bounded in time.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::OnceLock;
use std::time::Duration;

/// Why a GET gave no body.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("http://{addr}{path} is not a valid URL: {source}")]
    Url {
        addr: String,
        path: String,
        source: http::uri::InvalidUri,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {source}")]
    Request {
        addr: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("{addr}: reading the answer: {source}")]
    Body { addr: String, source: hyper::Error },
    #[error("{addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: http::StatusCode,
        body: String,
    },
}

fn client() -> &'static Client<HttpConnector, Empty<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Empty<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http()
    })
}

/// GET `http://addr{path}` within `timeout`: the body of a 200 (lossily
/// UTF-8), else an error naming the status and what the server said.
pub async fn get_text(addr: &str, path: &str, timeout: Duration) -> Result<String, GetError> {
    let uri: http::Uri =
        format!("http://{addr}{path}")
            .parse()
            .map_err(|source| GetError::Url {
                addr: addr.into(),
                path: path.into(),
                source,
            })?;
    let work = async {
        let rsp = client()
            .get(uri)
            .await
            .map_err(|source| GetError::Request {
                addr: addr.into(),
                source,
            })?;
        let status = rsp.status();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map_err(|source| GetError::Body {
                addr: addr.into(),
                source,
            })?
            .to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if status != http::StatusCode::OK {
            return Err(GetError::Status {
                addr: addr.into(),
                status,
                body: body.trim().to_string(),
            });
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| GetError::Timeout {
            addr: addr.into(),
            timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot server answering every request with `status` and `body`.
    async fn server(status: u16, body: &'static str) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(move |_req| async move {
                    let rsp = http::Response::builder()
                        .status(status)
                        .body(http_body_util::Full::new(Bytes::from(body)))
                        .expect("a valid response");
                    Ok::<_, std::convert::Infallible>(rsp)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc),
                );
            }
        });
        addr
    }

    #[tokio::test]
    async fn bodies_and_errors() {
        let ok = server(200, "up 1\n").await;
        let bad = server(422, "bad_data: parse error\n").await;
        let t = Duration::from_secs(5);
        assert_eq!(
            get_text(&ok.to_string(), "/metrics", t).await.unwrap(),
            "up 1\n"
        );
        let err = get_text(&bad.to_string(), "/q", t).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{bad} answered 422 Unprocessable Entity: bad_data: parse error")
        );
        // Nothing listens on port 1.
        let err = get_text("127.0.0.1:1", "/", t).await.unwrap_err();
        assert!(matches!(err, GetError::Request { .. }), "{err}");
        let err = get_text("127.0.0.1:1", "/ x", t).await.unwrap_err();
        assert!(matches!(err, GetError::Url { .. }), "{err}");
    }
}
