//! Hostile clients against the real proxies (issue 11), explicit mode on
//! loopback, unprivileged:
//! - Linkerd's transport header over TLS without a client certificate, to
//!   every proxy port and to the app; with a certificate, to the proxy's
//!   own ports. Before the fix an anonymous client reached the admin port
//!   (`POST /shutdown` stopped the proxy) and the outbound port (requests
//!   went out with the workload's identity);
//! - forged `l5d-client-id` headers from a plaintext client and from a
//!   meshed impostor;
//! - the explicit outbound proxy asked to reach the host's loopback
//!   services (the controller's viz API, its identity port);
//! - a peer's `l5d-proxy-error` leaking to the client application.

use crate::support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ztmesh_proxy::transport_header::{ALPN, TransportHeader};

const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TAP: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

struct Setup {
    mesh: LocalMesh<Daemon>,
    server: String,
    client: String,
    _app: Daemon,
    server_proxy: Daemon,
    _client_proxy: Daemon,
    /// books: meshed, but not admitted by authors' policy.
    books: String,
    _books_proxy: Daemon,
}

/// authors behind its proxy (tap and /shutdown enabled: the ports an
/// attacker would aim at), webapp's proxy as the client; authors admits
/// only webapp on its app port.
fn setup(net: &str) -> Setup {
    let (client, server, books) = (format!("{net}.1"), format!("{net}.2"), format!("{net}.3"));
    let policy = format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: authors-http, namespace: booksapp}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: authors}}}}, port: 18400, proxyProtocol: HTTP/1}}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: webapp-only, namespace: booksapp}}\nspec: {{identities: [{WEBAPP}]}}\n---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: authors-webapp, namespace: booksapp}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: authors-http}}\n  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: webapp-only}}]\n"
    );
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: authors, namespace: booksapp}\nspec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}\n";
    let files = [
        booksapp_workload("authors", &server),
        booksapp_workload("webapp", &client),
        booksapp_workload("books", &books),
        service.to_string(),
        policy,
    ]
    .join("---\n");
    let mesh = LocalMesh::start_with(|m| std::fs::write(m.join("w.yaml"), files).unwrap(), &[]);
    let app = sample_app("authors", &format!("{server}:18400"));
    let server_proxy = explicit_proxy(
        &mesh.control_plane(),
        AUTHORS,
        &mesh.token("booksapp", "authors"),
        &format!("{server}:18400"),
        &[
            ("LINKERD2_PROXY_TAP_SVC_NAME", TAP),
            ("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true"),
            ("LINKERD2_PROXY_INBOUND_PORTS", "18400"),
            ("LINKERD2_PROXY_POLICY_SVC_ADDR", &mesh.policy),
            (
                "LINKERD2_PROXY_POLICY_SVC_NAME",
                "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
            ),
            (
                "LINKERD2_PROXY_POLICY_WORKLOAD",
                r#"{"ns":"booksapp","external_workload":"authors"}"#,
            ),
        ],
    );
    let client_proxy = explicit_proxy(
        &mesh.control_plane(),
        WEBAPP,
        &mesh.token("booksapp", "webapp"),
        &format!("{client}:9"),
        &[],
    );
    let books_proxy = explicit_proxy(
        &mesh.control_plane(),
        "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
        &mesh.token("booksapp", "books"),
        &format!("{books}:9"),
        &[],
    );
    Setup {
        mesh,
        server,
        client,
        _app: app,
        server_proxy,
        _client_proxy: client_proxy,
        books,
        _books_proxy: books_proxy,
    }
}

/// A certificate for `identity` from the controller, as a client's credentials.
fn credentials(s: &Setup, ns: &str, sa: &str) -> Arc<ztmesh_tls::CredentialsStore> {
    let out = s.mesh.tmp.path().join(format!("creds-{sa}"));
    let identity = format!("{sa}.{ns}.serviceaccount.identity.linkerd.cluster.local");
    run_ok(&mut certify(
        &s.mesh.identity,
        &identity,
        &s.mesh.token(ns, sa),
        &s.mesh.identity_dir.join("ca.crt"),
        &out,
    ));
    let read = |f: &str| std::fs::read(out.join(f)).unwrap();
    let mut chain = ztmesh_identity::pem::certificates(&read("leaf.pem"), "leaf").unwrap();
    chain.extend(ztmesh_identity::pem::certificates(&read("intermediates.pem"), "chain").unwrap());
    let key = ztmesh_identity::pem::private_key(&read("key.pem"), "key").unwrap();
    let store = ztmesh_tls::CredentialsStore::new();
    store.set(chain, key).unwrap();
    store
}

/// TLS to the server's inbound port with the transport header naming
/// `port`, then `request`; what came back before the proxy closed.
async fn via_header(
    s: &Setup,
    creds: Option<Arc<ztmesh_tls::CredentialsStore>>,
    port: u16,
    request: &[u8],
) -> String {
    let roots = ztmesh_tls::roots_from_pem(s.mesh.anchors.as_bytes()).unwrap();
    let config =
        ztmesh_tls::client_config(roots, creds, ztmesh_tls::TlsVersions::Tls13Only, &[ALPN])
            .unwrap();
    let tcp = TcpStream::connect(format!("{}:4143", s.server))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ztmesh_tls::server_name(AUTHORS).unwrap(), tcp)
        .await
        .expect("the TLS handshake itself succeeds");
    let header = TransportHeader {
        port,
        name: None,
        protocol: None,
    };
    let _ = header.write(&mut tls).await;
    let _ = tls.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .expect("an answer or a close within 5s");
    String::from_utf8_lossy(&out).into_owned()
}

fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-m", "5", "-D", "-"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_header_is_for_identified_clients_and_app_ports_only() {
    require_tool("curl");
    let s = setup("127.0.66");
    let shutdown = b"POST /shutdown HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n";
    let get = b"GET http://authors.booksapp.svc.cluster.local:7001/authors.json HTTP/1.1\r\nHost: authors.booksapp.svc.cluster.local:7001\r\nConnection: close\r\n\r\n";
    // No certificate: every target refused, the app's port included.
    for (port, request) in [
        (4191, &shutdown[..]),
        (4140, &get[..]),
        (4143, &get[..]),
        (4190, &get[..]),
        (18400, &get[..]),
    ] {
        let answer = via_header(&s, None, port, request).await;
        assert_eq!(answer, "", "anonymous header to {port}: {answer:?}");
    }
    // A meshed client may not name the proxy's own ports either.
    let webapp = credentials(&s, "booksapp", "webapp");
    for (port, request) in [(4191, &shutdown[..]), (4140, &get[..]), (4190, &get[..])] {
        let answer = via_header(&s, Some(webapp.clone()), port, request).await;
        assert_eq!(answer, "", "meshed header to proxy port {port}: {answer:?}");
    }
    // The legitimate use: a meshed client, the app's port, its policy.
    let ok = via_header(
        &s,
        Some(webapp),
        18400,
        b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // ... and another identity is held to the same policy.
    let books = credentials(&s, "booksapp", "books");
    let denied = via_header(
        &s,
        Some(books),
        18400,
        b"GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    // The proxy is still up, and said why it refused.
    let live = curl(&[&format!("http://{}:4191/live", s.server)]);
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let log = s.server_proxy.output();
    assert!(log.contains("without a mesh identity is refused"), "{log}");
    assert!(log.contains("one of the proxy's own ports"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_client_ids_and_peer_errors_stop_at_the_proxies() {
    require_tool("curl");
    let s = setup("127.0.67");
    let forged = "l5d-client-id: admin.booksapp.serviceaccount.identity.linkerd.cluster.local";
    // Plaintext straight to authors' proxy: the forged header is removed
    // (and the policy, which admits webapp only, refuses it anyway).
    let plain = curl(&[
        "-H",
        forged,
        &format!("http://{}:4143/authors.json", s.server),
    ]);
    assert!(!plain.contains("x-seen-l5d-client-id"), "{plain}");
    // Through webapp's proxy (mTLS): the app sees webapp's verified identity only.
    let meshed = curl(&[
        "-H",
        forged,
        "-x",
        &format!("http://{}:4140", s.client),
        "http://authors.booksapp.svc.cluster.local:7001/authors.json",
    ]);
    assert!(meshed.starts_with("HTTP/1.1 200"), "{meshed}");
    assert!(
        meshed.contains(&format!("x-seen-l5d-client-id: {WEBAPP}\r\n")),
        "{meshed}"
    );
    // books is meshed but not admitted: authors' proxy answers 403 with
    // its reason in l5d-proxy-error for books' proxy, which keeps it from
    // the application (it names peers' addresses).
    let denied = curl(&[
        "-x",
        &format!("http://{}:4140", s.books),
        "http://authors.booksapp.svc.cluster.local:7001/authors.json",
    ]);
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(
        !denied.to_ascii_lowercase().contains("l5d-proxy-error"),
        "{denied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_outbound_does_not_relay_to_local_services() {
    require_tool("curl");
    let s = setup("127.0.68");
    let proxy = format!("http://{}:4140", s.client);
    // The controller's viz API and identity port, on this host's loopback.
    for target in [
        format!(
            "http://{}/stat?namespace=booksapp",
            s.mesh.viz.as_deref().unwrap()
        ),
        format!("http://{}/", s.mesh.identity),
    ] {
        let rsp = curl(&["-x", &proxy, &target]);
        assert!(rsp.starts_with("HTTP/1.1 403"), "{target}: {rsp}");
        assert!(rsp.contains("loopback address outside the mesh"), "{rsp}");
        let tunnel = curl(&["-p", "-x", &proxy, &target]);
        assert!(
            tunnel.starts_with("HTTP/1.1 403"),
            "CONNECT {target}: {tunnel}"
        );
    }
}
