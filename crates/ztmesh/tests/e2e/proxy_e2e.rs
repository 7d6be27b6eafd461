//! `ztmesh proxy` in explicit mode on its own loopback address, with the
//! real controller: readiness follows identity, an mTLS client's identity
//! is learned and counted, a plaintext client is labelled as such.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const IP: &str = "127.0.1.21";

/// HTTP/1.0 GET on the admin port: (status, body).
async fn admin_get(path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(format!("{IP}:4191"))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    ))
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> String {
    s.write_all(req).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("answer within 5s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The controller, the application, and authors' proxy in front of it.
struct Authors {
    proxy: Daemon,
    app_addr: SocketAddr,
    identity_addr: String,
    d: std::path::PathBuf,
    _controller: InProcessController,
    tmp: tempfile::TempDir,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_mode_inbound_mtls_with_the_real_controller() {
    let mut p = step_async("start the controller, the app and the proxy", start()).await;
    step_async("ready once the certificate is held", ready(&p)).await;
    step_async("a meshed client's identity is learned", meshed_client(&p)).await;
    step_async("an unmeshed client is served", unmeshed_client()).await;
    step_async("the metrics count both clients", metrics_count_both(&p)).await;
    step_async(
        "graceful shutdown through the admin endpoint",
        shutdown(&mut p),
    )
    .await;
}

/// The proxy warns about a setting it does not support.
async fn start() -> Authors {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let (_controller, identity_addr) = in_process_controller(&d);
    let authors_token = tmp.path().join("authors.token");
    token_file(&d, "booksapp", "authors", &authors_token);

    // The application: answers "app:" + request after the client half-closes.
    let app = tokio::net::TcpListener::bind(format!("{IP}:0"))
        .await
        .unwrap();
    let app_addr: SocketAddr = app.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = app.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                if s.read_to_end(&mut req).await.is_ok() {
                    let _ = s
                        .write_all(format!("app:{}", String::from_utf8_lossy(&req)).as_bytes())
                        .await;
                }
            });
        }
    });

    let mut cmd = ztmesh();
    cmd.arg("proxy")
        .env(
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            std::fs::read_to_string(d.join("ca.crt")).unwrap(),
        )
        .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", &authors_token)
        .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", &identity_addr)
        .env(
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
        )
        .env("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", AUTHORS)
        .env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true")
        .env(
            "LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH",
            "/var/run/linkerd/podinfo/labels",
        )
        .env("ZTMESH_PROXY_MODE", "explicit")
        .env("ZTMESH_PROXY_APP_ADDR", app_addr.to_string());
    let mut proxy = Daemon::spawn(cmd);
    proxy.wait_for("ztmesh-proxy listening", Duration::from_secs(20));
    assert!(
        proxy.output().contains(
            "LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH is set but not supported by ztmesh-proxy yet; ignored"
        ),
        "{}",
        proxy.output()
    );

    Authors {
        proxy,
        app_addr,
        identity_addr,
        d,
        _controller,
        tmp,
    }
}

async fn ready(p: &Authors) {
    let body = eventually_async(Duration::from_secs(10), "/ready answering 200", || async {
        match admin_get("/ready").await {
            Some((200, body)) => Ok(body),
            answer => Err((answer, p.proxy.output())),
        }
    })
    .await;
    assert_eq!(body, "ready\n");
}

/// A meshed client: a webapp certificate from the controller, via the CLI.
async fn meshed_client(p: &Authors) {
    let (d, tmp, identity_addr) = (&p.d, &p.tmp, &p.identity_addr);
    let webapp_token = tmp.path().join("webapp.token");
    token_file(d, "booksapp", "webapp", &webapp_token);
    let certs = tmp.path().join("webapp");
    run_ok(&mut certify(
        identity_addr,
        WEBAPP,
        &webapp_token,
        &d.join("ca.crt"),
        &certs,
    ));
    let mut chain =
        ztmesh_identity::pem::certificates(&std::fs::read(certs.join("leaf.pem")).unwrap(), "leaf")
            .unwrap();
    chain.extend(
        ztmesh_identity::pem::certificates(
            &std::fs::read(certs.join("intermediates.pem")).unwrap(),
            "chain",
        )
        .unwrap(),
    );
    let key =
        ztmesh_identity::pem::private_key(&std::fs::read(certs.join("key.pem")).unwrap(), "key")
            .unwrap();
    let store = ztmesh_tls::CredentialsStore::new();
    store.set(chain, key).unwrap();
    let roots = ztmesh_tls::roots_from_pem(&std::fs::read(d.join("ca.crt")).unwrap()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(
        ztmesh_tls::client_config(roots, Some(store), ztmesh_tls::TlsVersions::Tls13Only, &[])
            .unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(format!("{IP}:4143"))
        .await
        .unwrap();
    let tls = connector
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(exchange(tls, b"hello authors").await, "app:hello authors");
}

/// An unmeshed client.
async fn unmeshed_client() {
    let plain = tokio::net::TcpStream::connect(format!("{IP}:4143"))
        .await
        .unwrap();
    assert_eq!(exchange(plain, b"plain").await, "app:plain");
}

async fn metrics_count_both(p: &Authors) {
    let app_addr = p.app_addr;
    let srv = format!(
        "srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{}\"",
        app_addr.port()
    );
    let target = format!(
        "target_addr=\"{app_addr}\",target_ip=\"{}\",target_port=\"{}\"",
        app_addr.ip(),
        app_addr.port()
    );
    // The plaintext connection is the last counted.
    let plain_open = format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\",{srv}}} 1"
    );
    let (status, metrics) = eventually_async(Duration::from_secs(5), &plain_open, || async {
        let answer = admin_get("/metrics").await;
        let counted = answer
            .as_ref()
            .is_some_and(|(_, metrics)| metrics.contains(&plain_open));
        check(counted, answer)
    })
    .await
    .expect("an answer");
    assert_eq!(status, 200);
    assert!(metrics.contains(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"true\",client_id=\"{WEBAPP}\",{srv}}} 1")), "{metrics}");
    assert!(metrics.contains(&format!("tcp_open_total{{direction=\"inbound\",peer=\"src\",{target},tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\",{srv}}} 1")), "{metrics}");
    assert!(
        metrics.contains("control_identity_cert_refreshes_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}

/// Graceful shutdown through the admin endpoint.
async fn shutdown(p: &mut Authors) {
    let proxy = &mut p.proxy;
    let mut s = tokio::net::TcpStream::connect(format!("{IP}:4191"))
        .await
        .unwrap();
    s.write_all(b"POST /shutdown HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    proxy.wait_for("shutdown requested; shutting down", Duration::from_secs(5));
}

/// Configuration errors exit 64 naming what is wrong; logs are plain text
/// by default and one JSON object per line with `LINKERD2_PROXY_LOG_FORMAT=json`.
#[test]
fn configuration_errors_and_log_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let anchors = std::fs::read_to_string(d.join("ca.crt")).unwrap();
    let token = tmp.path().join("authors.token");
    token_file(&d, "booksapp", "authors", &token);
    // A whole, valid configuration (the identity service is never
    // reached), plus a Linkerd setting this proxy does not support.
    let proxy = |env: &[(&str, &str)]| {
        let mut cmd = ztmesh();
        cmd.arg("proxy").env_clear().envs([
            ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", anchors.as_str()),
            (
                "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
                token.to_str().unwrap(),
            ),
            ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "127.0.1.22:1"),
            (
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
            ),
            ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", AUTHORS),
            ("ZTMESH_PROXY_MODE", "explicit"),
            ("ZTMESH_PROXY_APP_ADDR", "127.0.1.22:8080"),
            ("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10s"),
        ]);
        cmd.envs(env.iter().copied());
        cmd
    };

    // Missing settings and a bad log format: exit 64, each named.
    let out = ztmesh().arg("proxy").env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"),
        "{err}"
    );
    let out = proxy(&[("LINKERD2_PROXY_LOG_FORMAT", "yaml")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("LINKERD2_PROXY_LOG_FORMAT=\"yaml\": expected plain or json"),
        "{}",
        describe(&out)
    );

    // json: the warning about the unsupported setting is a JSON object;
    // LOG_FORMAT itself (plain, as Linkerd's injector sets it) is no warning.
    for (format, json) in [("json", true), ("plain", false)] {
        let mut daemon = Daemon::spawn(proxy(&[("LINKERD2_PROXY_LOG_FORMAT", format)]));
        let line = daemon.wait_for(
            "LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE",
            Duration::from_secs(10),
        );
        let parsed = serde_json::from_str::<serde_json::Value>(&line);
        if json {
            let v = parsed.unwrap_or_else(|e| panic!("{format}: not JSON ({e}): {line}"));
            assert_eq!(v["level"], "WARN", "{line}");
            assert!(
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not supported")),
                "{line}"
            );
        } else {
            assert!(parsed.is_err() && line.contains("WARN"), "{line}");
        }
        assert!(
            !daemon.output().contains("LINKERD2_PROXY_LOG_FORMAT"),
            "{}",
            daemon.output()
        );
    }
}
