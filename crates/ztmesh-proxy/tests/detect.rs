//! Inbound detection stages against real and hostile first flights.

use std::sync::Arc;
use ztmesh_proxy::inbound::detect_protocol::{Protocol, detect_protocol};
use ztmesh_proxy::inbound::detect_tls::{Detected, detect};

/// The first flight a real rustls client sends for `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let roots = Arc::new(rustls::RootCertStore::empty());
    let config =
        ztmesh_tls::client_config(roots, None, ztmesh_tls::TlsVersions::Tls13Only, &[b"h2"])
            .unwrap();
    let mut conn =
        rustls::ClientConnection::new(config, ztmesh_tls::server_name(sni).unwrap()).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn a_real_client_hello_names_its_server() {
    let name = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
    let hello = client_hello(name);
    assert!(
        hello.len() > 1000,
        "the hybrid key share makes it large: {}",
        hello.len()
    );
    assert_eq!(
        detect(&hello),
        Detected::ClientHello {
            sni: Some(name.into())
        }
    );
    // Every strict prefix asks for more bytes; none panics.
    for n in 0..hello.len() {
        assert_eq!(detect(&hello[..n]), Detected::NeedMore, "prefix {n}");
    }
}

#[test]
fn plaintext_and_garbage_are_not_tls() {
    let cases: &[(&[u8], Detected)] = &[
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Detected::NotTls),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Detected::NotTls),
        (b"\x16\x01garbage", Detected::NotTls),
        (b"\x16\x03\x01\x00\x00", Detected::NotTls),
        (
            b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
            Detected::NotTls,
        ),
        (b"\x16\x03\x01\x00\x04\x01\x00\x00\xff", Detected::NotTls),
        (b"\x16\x03\x01\xff\xff", Detected::NotTls),
        (b"", Detected::NeedMore),
        (b"\x16", Detected::NeedMore),
    ];
    for (input, want) in cases {
        assert_eq!(&detect(input), want, "{input:?}");
    }
    // Pseudo-random inputs, some starting like TLS: an answer, never a panic.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..5_000 {
        let len = (i % 300) + 1;
        let mut buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if i % 2 == 0 {
            buf[0] = 0x16;
            if len > 1 {
                buf[1] = 0x03;
            }
        }
        let _ = detect(&buf);
        let _ = detect_protocol(&buf);
    }
}

#[test]
fn protocol_detection_table() {
    let cases: &[(&[u8], Option<Protocol>)] = &[
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Protocol::Http2)),
        (b"PRI * HTTP/2.0\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Some(Protocol::Http1)),
        (b"POST /api/orders HTTP/1.0\r\n", Some(Protocol::Http1)),
        (b"CONNECT a:443 HTTP/1.1\r\n", Some(Protocol::Http1)),
        (b"GET / HTT", None),
        (b"GET /", None),
        (b"SSH-2.0-OpenSSH_9.2\r\n", Some(Protocol::Opaque)),
        (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", Some(Protocol::Opaque)),
        (b"get / HTTP/1.1\r\n", Some(Protocol::Opaque)),
        (b"GET / SMTP/1.1\r\n", Some(Protocol::Opaque)),
        (b"", None),
    ];
    for (input, want) in cases {
        assert_eq!(
            detect_protocol(input),
            *want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
