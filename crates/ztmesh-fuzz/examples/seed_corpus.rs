//! Writes the first seeds of every corpus from real inputs: ClientHellos
//! that rustls sends, the proxy's own CSR, tokens that `ztmesh token create`
//! signs, transport headers and tap requests as the proxy encodes them, the
//! seed manifests. `cargo run -p ztmesh-fuzz --example seed_corpus [DIR]`
//! (DIR defaults to `fuzz/corpus`); existing files are overwritten.

use base64::Engine;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("fuzz/corpus"));
    let put = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("seed-{name}")), bytes)?;
        Ok(())
    };
    let cat = |parts: &[&[u8]]| parts.concat();

    // client_hello (and detect_protocol: TLS is opaque to it).
    for (name, hello) in client_hellos()? {
        put("client_hello", &name, &hello)?;
        if name == "tls13-sni-alpn" {
            put("detect_protocol", "tls-client-hello", &hello)?;
        }
    }

    // transport_header
    use ztmesh_proxy::transport_header::{SessionProtocol, TransportHeader};
    let headers = [
        ("port-only", 8080, None, None),
        (
            "name-h2",
            7001,
            Some("authors.booksapp.svc.cluster.local"),
            Some(SessionProtocol::Http2),
        ),
        ("h1", 5432, None, Some(SessionProtocol::Http1)),
    ];
    for (name, port, n, protocol) in headers {
        let h = TransportHeader {
            port,
            name: n.map(String::from),
            protocol,
        };
        put("transport_header", name, &h.encode())?;
    }
    let h = TransportHeader {
        port: 9090,
        name: None,
        protocol: None,
    };
    put(
        "transport_header",
        "then-payload",
        &cat(&[&h.encode(), b"GET / HTTP/1.1\r\n\r\n"]),
    )?;

    // detect_protocol
    let streams: &[(&str, &[u8])] = &[
        (
            "http1-get",
            b"GET /authors.json HTTP/1.1\r\nHost: authors:7001\r\n\r\n",
        ),
        (
            "http10-post",
            b"POST /books HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        ),
        (
            "h2-preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        ),
        ("ssh", b"SSH-2.0-OpenSSH_9.6\r\n"),
        ("redis", b"*1\r\n$4\r\nPING\r\n"),
    ];
    for (name, bytes) in streams {
        put("detect_protocol", name, bytes)?;
    }

    // manifest: the seed fixtures (the repository's own copy of the seeds' YAML) and the demo's.
    let seeds = root.join("fixtures/seeds");
    for entry in std::fs::read_dir(&seeds)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            put("manifest", &name, &std::fs::read(&path)?)?;
        }
    }
    put(
        "manifest",
        "booksapp.yaml",
        &std::fs::read(root.join("crates/ztmesh/src/demo/booksapp.yaml"))?,
    )?;

    // csr: the proxy's own request, as DER and as PEM, and for another name.
    use ztmesh_fuzz::REQUESTED_IDENTITY;
    use ztmesh_proxy::identity::Documents;
    let der = Documents::generate(REQUESTED_IDENTITY)?.csr_der;
    put("csr", "proxy-der", &cat(&[&[0], &der]))?;
    let pem = ztmesh_identity::pem::encode("CERTIFICATE REQUEST", &der);
    put("csr", "proxy-pem", &cat(&[&[0], pem.as_bytes()]))?;
    let other =
        Documents::generate("books.booksapp.serviceaccount.identity.linkerd.cluster.local")?;
    put("csr", "other-name", &cat(&[&[0], &other.csr_der]))?;
    // Made requests: key, CA bit, CN, SAN count, SANs (see src/csr.rs).
    let spiffe = b"spiffe://cluster.local/ns/booksapp/sa/web";
    let made: &[(&str, Vec<u8>)] = &[
        ("made-valid", vec![1, 0, 0, 0, 1, 0]),
        ("made-cn-identity-explicit-no-ca", vec![1, 0, 1, 2, 1, 0]),
        ("made-p384", vec![1, 1, 0, 0, 1, 0]),
        ("made-ca", vec![1, 0, 2, 0, 1, 0]),
        (
            "made-uri-san",
            cat(&[&[1, 0, 0, 0, 2, 0, 2, spiffe.len() as u8], spiffe]),
        ),
        ("made-ip-san", vec![1, 0, 0, 0, 2, 0, 3, 0, 10]),
    ];
    for (name, bytes) in made {
        put("csr", name, bytes)?;
    }

    // token: one that `ztmesh token create` signs with the fuzz key.
    use ztmesh_identity::token::{ServiceAccount, TokenSigner};
    let signer = TokenSigner::from_pem(ztmesh_fuzz::FUZZ_KEY_PEM.as_bytes(), "fuzz key")?;
    let sa = ServiceAccount {
        namespace: "booksapp".into(),
        name: "web".into(),
    };
    let token = signer.sign(&sa, Duration::from_secs(86400), ztmesh_fuzz::now())?;
    put("token", "signed", &cat(&[&[0], token.as_bytes()]))?;
    let expired = signer.sign(
        &sa,
        Duration::from_secs(60),
        ztmesh_fuzz::now() - Duration::from_secs(3600),
    )?;
    put("token", "expired", &cat(&[&[0], expired.as_bytes()]))?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<Vec<u8>> = token
        .split('.')
        .take(2)
        .map(|p| b64.decode(p))
        .collect::<std::result::Result<_, _>>()?;
    put("token", "parts", &cat(&[&[1], &parts[0], &[0], &parts[1]]))?;
    put(
        "token",
        "parts-flipped",
        &cat(&[&[2, 200], &parts[0], &[0], &parts[1]]),
    )?;

    // tap_observe: the filter `ztmesh viz tap` sends, and one the proxy refuses.
    use linkerd2_proxy_api::http_types::{HttpMethod, http_method};
    use linkerd2_proxy_api::tap::observe_request::r#match::{self as m, http};
    use linkerd2_proxy_api::tap::{ObserveRequest, observe_request::Match};
    let string = |s: &str, prefix: bool| http::StringMatch {
        r#match: Some(if prefix {
            http::string_match::Match::Prefix(s.into())
        } else {
            http::string_match::Match::Exact(s.into())
        }),
    };
    let on = |h: http::Match| Match {
        r#match: Some(m::Match::Http(m::Http { r#match: Some(h) })),
    };
    let get = HttpMethod {
        r#type: Some(http_method::Type::Registered(
            http_method::Registered::Get as i32,
        )),
    };
    let filters = [
        (
            "all-get-books",
            Match {
                r#match: Some(m::Match::All(m::Seq {
                    matches: vec![
                        on(http::Match::Method(get)),
                        on(http::Match::Path(string("/books", true))),
                    ],
                })),
            },
        ),
        (
            "not-authority",
            Match {
                r#match: Some(m::Match::Not(Box::new(on(http::Match::Authority(string(
                    "authors:7001",
                    false,
                )))))),
            },
        ),
        (
            "source-refused",
            Match {
                r#match: Some(m::Match::Source(m::Tcp::default())),
            },
        ),
    ];
    for (name, filter) in filters {
        let req = ObserveRequest {
            limit: 100,
            r#match: Some(filter),
            extract: None,
        }
        .encode_to_vec();
        let len = u16::try_from(req.len())?.to_be_bytes();
        let http = b"GET http://books:7002/books/1\nbooks:7002";
        put("tap_observe", name, &cat(&[&len, &req, http]))?;
    }

    // admin_http: flags (loopback, shutdown enabled, identity, policy), then the bytes.
    let admin: &[(&str, u8, &[u8])] = &[
        (
            "live",
            0,
            b"GET /live HTTP/1.1\r\nHost: localhost:4191\r\n\r\n",
        ),
        (
            "ready",
            0xc,
            b"GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        (
            "metrics",
            0,
            b"GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n",
        ),
        (
            "shutdown",
            3,
            b"POST /shutdown HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "pipelined",
            1,
            b"GET /live HTTP/1.1\r\n\r\nGET /ready?x=1 HTTP/1.1\r\n\r\nGET /nope HTTP/1.0\r\n\r\n",
        ),
        (
            "chunked",
            1,
            b"POST /shutdown HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
    ];
    for (name, flags, bytes) in admin {
        put("admin_http", name, &cat(&[&[*flags], bytes]))?;
    }
    println!("seeds written under {}", dir.display());
    Ok(())
}

/// ClientHellos as rustls writes them: TLS 1.3 and 1.2, with and without
/// SNI, with the transport header's ALPN.
fn client_hellos() -> Result<Vec<(String, Vec<u8>)>> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let name = "web.booksapp.serviceaccount.identity.linkerd.cluster.local";
    let cases: &[(&str, &[&rustls::SupportedProtocolVersion], &str, bool)] = &[
        ("tls13-sni-alpn", &[&rustls::version::TLS13], name, true),
        (
            "tls12-and-13-sni",
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            name,
            false,
        ),
        ("tls12-only-sni", &[&rustls::version::TLS12], name, false),
        ("ip-no-sni", &[&rustls::version::TLS13], "10.0.0.9", false),
    ];
    let mut out = Vec::new();
    for (case, versions, server, alpn) in cases {
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        if *alpn {
            config.alpn_protocols = vec![ztmesh_proxy::transport_header::ALPN.to_vec()];
        }
        let server = ServerName::try_from(server.to_string())?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server)?;
        let mut hello = Vec::new();
        conn.write_tls(&mut hello)?;
        out.push((case.to_string(), hello));
    }
    Ok(out)
}
