//! One `GET` of a foreign bundle endpoint, `https_web` profile: the
//! endpoint's server certificate is verified for the URL's host against
//! the configured CA roots (or the system's), as a Web client would.

use http_body_util::{BodyExt, Empty, Limited};
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

/// A bundle document larger than this is refused.
const MAX_BODY: usize = 1 << 20;
/// The whole exchange's deadline.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{0:?} is not an https:// URL with a host")]
    Url(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Host, port and path of an `https://` URL.
fn split(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port, path.to_string()))
}

/// The client config for bundle endpoints: these roots, TLS 1.2 or 1.3.
pub(crate) fn client_tls(roots: Arc<rustls::RootCertStore>) -> Arc<rustls::ClientConfig> {
    ztmesh_tls::client_config(
        roots,
        None,
        ztmesh_tls::TlsVersions::AllowTls12,
        &[b"http/1.1"],
    )
    .expect("the provider supports TLS 1.2 and 1.3")
}

/// The system's CA roots (those that parse).
pub(crate) fn system_roots() -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, "system CA roots for bundle endpoints");
    Arc::new(roots)
}

pub(crate) async fn get(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, FetchError> {
    tokio::time::timeout(TIMEOUT, get_inner(url, tls))
        .await
        .map_err(|_| FetchError::Timeout(TIMEOUT))?
}

async fn get_inner(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, FetchError> {
    let (host, port, path) = split(url).ok_or_else(|| FetchError::Url(url.into()))?;
    let name = ServerName::try_from(host.clone()).map_err(|_| FetchError::Url(url.into()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| FetchError::Connect(format!("{host}:{port}"), e))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| FetchError::Tls(host.clone(), e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(
            "host",
            if port == 443 {
                host.clone()
            } else {
                format!("{host}:{port}")
            },
        )
        .header("accept", "application/json")
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let rsp = sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if rsp.status() != hyper::StatusCode::OK {
        return Err(FetchError::Status(rsp.status().as_u16()));
    }
    let body = Limited::new(rsp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_table() {
        let some = |h: &str, p: u16, path: &str| Some((h.to_string(), p, path.to_string()));
        let cases = [
            (
                "https://a.example/bundle",
                some("a.example", 443, "/bundle"),
            ),
            ("https://127.0.24.1:8443", some("127.0.24.1", 8443, "/")),
            ("https://[::1]:9/x", some("::1", 9, "/x")),
            ("http://a.example/", None),
            ("https:///x", None),
            ("https://u@a.example/", None),
            ("https://a.example:port/", None),
        ];
        for (url, want) in cases {
            assert_eq!(split(url), want, "{url}");
        }
    }
}
