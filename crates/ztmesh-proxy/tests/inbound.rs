//! The inbound stack on loopback, in front of a real application, reached
//! by real rustls clients: mTLS with and without identity, plaintext, the
//! opaque transport header, silence, garbage and the default policies.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ztmesh_proxy::inbound::DefaultPolicy;
use ztmesh_proxy::transport_header::{ALPN, TransportHeader};
use ztmesh_test_support::TestPki;

#[tokio::test]
async fn mtls_plaintext_and_tls_without_identity() {
    let pki = TestPki::new();
    let (app_addr, _) = app("app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;

    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let tls = client_tls(&pki, Some(WEB), &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        exchange(tls, b"hello over mtls").await,
        "app:hello over mtls"
    );

    let plain = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(exchange(plain, b"plain hello").await, "app:plain hello");

    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let anon = client_tls(&pki, None, &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(exchange(anon, b"anon").await, "app:anon");

    // TLS for another name is passed through untouched (the app sees a ClientHello).
    // The app answers only after EOF, so the handshake cannot complete: bound it.
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let other = tokio::time::timeout(
        Duration::from_millis(500),
        client_tls(&pki, None, &[]).connect(ztmesh_tls::server_name("example.org").unwrap(), tcp),
    )
    .await;
    assert!(
        !matches!(other, Ok(Ok(_))),
        "no handshake with an app that does not speak TLS"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = metrics_text(&p).await;
    let target = format!(
        "target_addr=\"{app_addr}\",target_ip=\"{}\",target_port=\"{}\"",
        app_addr.ip(),
        app_addr.port()
    );
    // The server's labels follow the TLS labels, as in linkerd2-proxy.
    let srv = format!(
        "srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{}\"",
        app_addr.port()
    );
    assert!(m.contains(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"true\",client_id=\"{WEB}\",{srv}}} 1")), "{m}");
    assert!(m.contains(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\",{srv}}} 1")), "{m}");
    assert!(
        m.contains(&format!(
            "no_tls_reason=\"no_client_certificate\",{srv}}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!("no_tls_reason=\"passthru\",{srv}}} 1")),
        "{m}"
    );
    assert!(m.contains(&format!("tcp_write_bytes_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"true\",client_id=\"{WEB}\",{srv}}} 19")), "{m}");
}

#[tokio::test]
async fn transport_header_names_the_target_port() {
    let pki = TestPki::new();
    let (app_addr, _) = app("default").await;
    let (other_app, _) = app("other").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut tls = client_tls(&pki, Some(WEB), &[ALPN])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    TransportHeader {
        port: other_app.port(),
        name: None,
        protocol: None,
    }
    .write(&mut tls)
    .await
    .unwrap();
    assert_eq!(exchange(tls, b"via header").await, "other:via header");
}

#[tokio::test]
async fn opaque_ports_skip_protocol_detection() {
    let pki = TestPki::new();
    let greeter = greeter().await;
    // A meshed client of a server-speaks-first app: with detection, the
    // greeting waits for the detect timeout; on an opaque port it does not.
    for (opaque, greeted_within_a_second) in [(vec![], false), (vec![greeter.port()], true)] {
        let p = proxy_with_opaque_ports(
            &pki,
            greeter,
            DefaultPolicy::AllUnauthenticated,
            Duration::from_secs(3),
            &opaque,
        )
        .await;
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let mut tls = client_tls(&pki, Some(WEB), &[])
            .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
            .await
            .unwrap();
        let mut line = [0u8; 11];
        let read = tokio::time::timeout(Duration::from_secs(1), tls.read_exact(&mut line)).await;
        assert_eq!(
            read.is_ok(),
            greeted_within_a_second,
            "opaque ports {opaque:?}"
        );
        if greeted_within_a_second {
            assert_eq!(&line, b"220 hello\r\n");
        }
    }
}

#[tokio::test]
async fn silence_is_forwarded_as_opaque_and_garbage_does_no_harm() {
    let pki = TestPki::new();
    let p = proxy(
        &pki,
        greeter().await,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_millis(200),
    )
    .await;
    // A server-speaks-first protocol: after the detect timeout the client gets the greeting.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut line = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&line, b"220 hello\r\n");

    let (app_addr, _) = app("app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_millis(300),
    )
    .await;
    for garbage in [
        &b"\x16\x03\x01\xff\xff\x01\x02"[..],
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
        b"\x00\xff\x13\x37",
    ] {
        let s = TcpStream::connect(p.addr).await.unwrap();
        let _ = exchange(s, garbage).await;
    }
    // Still serving.
    let s = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(exchange(s, b"still here").await, "app:still here");
}

#[tokio::test]
async fn default_policies_decide_before_the_app_is_reached() {
    let pki = TestPki::new();
    // deny: nothing reaches the app.
    let (app_addr, accepted) = app("app").await;
    let p = proxy(&pki, app_addr, DefaultPolicy::Deny, Duration::from_secs(2)).await;
    let s = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(
        exchange(s, b"let me in").await,
        "",
        "closed without an answer"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // all-authenticated: plaintext refused, mTLS admitted.
    let (app_addr, accepted) = app("app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllAuthenticated,
        Duration::from_secs(2),
    )
    .await;
    let s = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(exchange(s, b"plain").await, "");
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let tls = client_tls(&pki, Some(WEB), &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(exchange(tls, b"mtls").await, "app:mtls");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// A denied request is answered by the proxy and counted only in the
/// authorization families, as linkerd2-proxy's authorization layer sits
/// in front of its request metrics: the success rate stays the
/// application's, and denials are read from `inbound_http_authz_deny_total`.
#[tokio::test]
async fn denied_requests_are_not_requests() {
    let pki = TestPki::new();
    let (app_addr, _) = ztmesh_test_support::apps::echo_or_http("127.0.0.1:0", "app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllAuthenticated,
        Duration::from_secs(2),
    )
    .await;
    let plain = TcpStream::connect(p.addr).await.unwrap();
    let rsp = exchange(
        plain,
        b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(rsp.starts_with("HTTP/1.1 403"), "{rsp}");
    let mut m = String::new();
    p.http.encode(&mut m);
    for family in [
        "request_total{",
        "response_total{",
        "response_latency_ms_bucket{",
    ] {
        assert!(!m.contains(family), "{family} counts a denial:\n{m}");
    }
}

#[tokio::test]
async fn http_requests_are_counted_with_identities() {
    let pki = TestPki::new();
    let (app_addr, _) = ztmesh_test_support::apps::echo_or_http("127.0.0.1:0", "app").await;
    let p = proxy(
        &pki,
        app_addr,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut tls = client_tls(&pki, Some(WEB), &[])
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    // Two requests on one kept-alive connection.
    for path in ["/authors.json", "/authors/1"] {
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: authors.booksapp\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with(&format!("app:GET {path}")),
            "{text}"
        );
    }
    drop(tls);
    // No application behind the port: 502 with the reason.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let p2 = proxy(
        &pki,
        dead,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
    )
    .await;
    let plain = TcpStream::connect(p2.addr).await.unwrap();
    let rsp = exchange(
        plain,
        b"GET / HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        rsp.starts_with("HTTP/1.1 502") && rsp.contains("l5d-proxy-error: the application at"),
        "{rsp}"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut m = String::new();
    p.http.encode(&mut m);
    // The permit's labels follow the TLS labels: server, route (the
    // default one, no routes here) and authorization, as in linkerd2-proxy;
    // no authority (linkerd2-proxy's default: clients choose it).
    let labels = format!(
        "direction=\"inbound\",target_addr=\"{app_addr}\",target_ip=\"{}\",target_port=\"{}\",tls=\"true\",client_id=\"{WEB}\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{}\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"\",authz_kind=\"default\",authz_name=\"all-unauthenticated\"",
        app_addr.ip(),
        app_addr.port(),
        app_addr.port()
    );
    assert!(m.contains(&format!("request_total{{{labels}}} 2")), "{m}");
    assert!(
        m.contains(&format!(
            "response_total{{{labels},status_code=\"200\",classification=\"success\",grpc_status=\"\",error=\"\"}} 2"
        )),
        "{m}"
    );
    let mut m2 = String::new();
    p2.http.encode(&mut m2);
    assert!(
        m2.contains(
            "status_code=\"502\",classification=\"failure\",grpc_status=\"\",error=\"\"} 1"
        ),
        "{m2}"
    );
}

/// An OTLP trace collector in process: what it receives goes to `tx`.
#[derive(Clone)]
struct Collector(
    tokio::sync::mpsc::UnboundedSender<ztmesh_proxy::trace::otlp::ExportTraceServiceRequest>,
);

impl tonic::server::NamedService for Collector {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Collector {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        use ztmesh_proxy::trace::otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse};
        struct Export(tokio::sync::mpsc::UnboundedSender<ExportTraceServiceRequest>);
        impl tonic::server::UnaryService<ExportTraceServiceRequest> for Export {
            type Response = ExportTraceServiceResponse;
            type Future = BoxFuture<Result<tonic::Response<Self::Response>, tonic::Status>>;
            fn call(&mut self, req: tonic::Request<ExportTraceServiceRequest>) -> Self::Future {
                let _ = self.0.send(req.into_inner());
                Box::pin(async { Ok(tonic::Response::new(ExportTraceServiceResponse::default())) })
            }
        }
        let tx = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Export(tx), req).await)
        })
    }
}

/// An application that answers with the traceparent it received.
async fn echo_traceparent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let seen = req
                            .headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_string();
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(seen)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn traced_requests_get_a_span_and_continue_the_trace() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Collector(tx))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{collector}"))
        .unwrap()
        .connect_lazy();
    let tracer = Arc::new(ztmesh_proxy::trace::Tracer::new(
        channel,
        AUTHORS.into(),
        1.0,
    ));
    let pki = TestPki::new();
    let p = proxy_with(
        &pki,
        echo_traceparent().await,
        DefaultPolicy::AllUnauthenticated,
        Duration::from_secs(2),
        &[],
        Some(tracer),
    )
    .await;
    let get = |traceparent: Option<&'static str>| async move {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        let header = traceparent
            .map(|t| format!("traceparent: {t}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!("GET /books HTTP/1.1\r\nHost: authors\r\n{header}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out.split_once("\r\n\r\n").unwrap().1.to_string()
    };
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    // A sampled context continues: same trace, this proxy's span as the parent.
    let seen = get(Some(incoming)).await;
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts.len(), 4, "{seen}");
    assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(
        parts[2], "b7ad6b7169203331",
        "the app's parent is the proxy's span"
    );
    assert_eq!(parts[3], "01");
    let proxy_span = parts[2].to_string();
    // No context: one is started (sample rate 1).
    let started = get(None).await;
    assert!(
        started.starts_with("00-") && started.ends_with("-01"),
        "{started}"
    );
    // Not sampled: passed on untouched, no span.
    let unsampled = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00";
    assert_eq!(get(Some(unsampled)).await, unsampled);

    // The collector receives two spans.
    let mut spans = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while spans.len() < 2 {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("spans within 5s")
            .unwrap();
        for rs in batch.resource_spans {
            let service = &rs.resource.as_ref().unwrap().attributes[0];
            assert_eq!(
                ztmesh_proxy::trace::otlp::string_value(service),
                Some(AUTHORS)
            );
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(spans.len(), 2, "{spans:?}");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let continued = spans
        .iter()
        .find(|s| hex(&s.trace_id) == "0af7651916cd43dd8448eb211c80319c")
        .expect("the continued trace's span");
    assert_eq!(hex(&continued.parent_span_id), "b7ad6b7169203331");
    assert_eq!(hex(&continued.span_id), proxy_span);
    assert_eq!(continued.name, "inbound GET /books");
    assert_eq!(continued.kind, 2);
    assert!(continued.end_time_unix_nano >= continued.start_time_unix_nano);
    assert!(
        continued
            .attributes
            .iter()
            .any(|a| a.key == "http.status_code"
                && ztmesh_proxy::trace::otlp::string_value(a) == Some("200"))
    );
    let fresh = spans
        .iter()
        .find(|s| s.parent_span_id.is_empty())
        .expect("the new trace's span");
    assert!(started.contains(&hex(&fresh.trace_id)), "{started}");
}
