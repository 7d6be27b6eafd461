//! The agent in process against an in-process controller, over a real Unix
//! socket: an attested caller gets an X.509-SVID that is the workload's
//! mesh certificate (DNS and spiffe:// SANs, chaining to the anchors) and
//! JWT-SVIDs the controller signed, that validate; a call without the security header is
//! InvalidArgument; an unattested caller is PermissionDenied with its
//! credentials named; an identity the controller does not assign to the
//! node is refused by the controller, whatever the agent's resources say;
//! an open FetchX509SVID stream receives the renewed SVID before expiry.

use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use ztmesh_agent::{Agent, AgentConfig};
use ztmesh_attestation::NodeTokenSigner;
use ztmesh_spiffe_api::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use ztmesh_spiffe_api::workload::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, X509BundlesRequest, X509svidRequest,
};
use ztmesh_test_support::TestPki;

const DEADLINE: Duration = Duration::from_secs(20);

fn resource(name: &str, ns: &str, sa: &str, nodes: &str, selectors: &[String]) -> String {
    format!(
        "apiVersion: ztmesh.io/v1alpha1\nkind: WorkloadAttestation\nmetadata: {{name: {name}}}\nspec:\n  namespace: {ns}\n  serviceAccount: {sa}\n  nodes: [{nodes}]\n  selectors: [{}]\n---\n",
        selectors.join(", ")
    )
}

/// This test process, as the agent sees it.
fn me() -> Vec<String> {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let exe = std::fs::read_link("/proc/self/exe").expect("/proc/self/exe");
    vec![
        format!("unix:uid:{}", uid.expect("/proc/self")),
        format!("unix:path:{}", exe.display()),
    ]
}

async fn client(socket: PathBuf) -> SpiffeWorkloadApiClient<Channel> {
    let channel = Endpoint::from_static("http://workload.api")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect to the agent's socket");
    SpiffeWorkloadApiClient::new(channel)
}

fn with_header<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("ascii"));
    req
}

struct Setup {
    pki: TestPki,
    _controller: ztmesh_controller::Running,
    agent: Agent,
    agent_resources: PathBuf,
    _tmp: tempfile::TempDir,
}

async fn setup(agent_text: &str, controller_text: &str) -> Setup {
    setup_with_ttl(agent_text, controller_text, Duration::from_secs(3600)).await
}

async fn setup_with_ttl(agent_text: &str, controller_text: &str, leaf_ttl: Duration) -> Setup {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let controller_resources = tmp.path().join("controller.yaml");
    std::fs::write(&controller_resources, controller_text).expect("write");
    let agent_resources = tmp.path().join("agent.yaml");
    std::fs::write(&agent_resources, agent_text).expect("write");
    let controller = ztmesh_controller::Builder::new(pki.dir())
        .identity_addr("127.0.0.1:0".parse().expect("addr"))
        .workload_attestations(&controller_resources)
        .identity_ttl(leaf_ttl)
        .spawn()
        .await
        .expect("controller starts");
    let signer = NodeTokenSigner::from_pem(
        &std::fs::read(pki.dir().join("token.key")).expect("token.key"),
        "token.key",
    )
    .expect("token key");
    let node_token = signer
        .sign(
            "node-a",
            Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .expect("node token");
    let anchors = ztmesh_identity::pem::certificates(&pki.anchors_pem(), "ca.crt")
        .expect("anchors")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let agent = Agent::spawn(AgentConfig {
        socket: tmp.path().join("agent.sock"),
        node: "node-a".into(),
        node_token: ztmesh_agent::NodeToken::Value(node_token.into()),
        controller_addr: controller.addrs().identity.to_string(),
        controller_name: controller.identity_name().to_string(),
        trust_anchors: anchors,
        attestations: agent_resources.clone(),
        trust: pki.trust_domain().clone(),

        proc_root: "/proc".into(),
    })
    .await
    .expect("agent starts");
    Setup {
        pki,
        _controller: controller,
        agent,
        agent_resources,
        _tmp: tmp,
    }
}

fn san_of(der: &[u8]) -> (Vec<String>, Vec<String>) {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).expect("leaf parses");
    let mut dns = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::URI(u) => uris.push(u.to_string()),
                _ => {}
            }
        }
    }
    (dns, uris)
}

/// Splits concatenated DER certificates.
fn split_der(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (rest, _) = x509_parser::parse_x509_certificate(bytes).expect("DER certificate");
        out.push(bytes[..bytes.len() - rest.len()].to_vec());
        bytes = rest;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_caller_gets_svids_and_others_are_refused() {
    let web = resource("web", "demo", "web", "node-a", &me());
    let s = setup(&web, &web).await;
    let mut c = client(s.agent.socket().to_path_buf()).await;

    // No security header: InvalidArgument, on every call.
    let err = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .expect_err("no header");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("security header"), "{err:?}");
    let err = c
        .validate_jwtsvid(ValidateJwtsvidRequest::default())
        .await
        .expect_err("no header");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // X.509-SVID: the mesh certificate of demo/web.
    let mut stream =
        tokio::time::timeout(DEADLINE, c.fetch_x509svid(with_header(X509svidRequest {})))
            .await
            .expect("in time")
            .expect("X.509-SVID stream")
            .into_inner();
    let first = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("in time")
        .expect("message")
        .expect("not ended");
    assert_eq!(first.svids.len(), 1);
    let svid = &first.svids[0];
    assert_eq!(svid.spiffe_id, "spiffe://cluster.local/ns/demo/sa/web");
    let chain = split_der(&svid.x509_svid);
    assert!(chain.len() >= 2, "leaf and issuer");
    let (dns, uris) = san_of(&chain[0]);
    // An SVID names the workload by its SPIFFE ID only (no mesh DNS name).
    assert!(dns.is_empty(), "an X.509-SVID carries no DNS SAN: {dns:?}");
    assert_eq!(
        uris,
        vec!["spiffe://cluster.local/ns/demo/sa/web".to_string()]
    );
    let anchors =
        ztmesh_identity::pem::certificates(&s.pki.anchors_pem(), "ca.crt").expect("anchors");
    assert_eq!(
        split_der(&svid.bundle),
        anchors.iter().map(|c| c.to_vec()).collect::<Vec<_>>()
    );
    assert!(!svid.x509_svid_key.is_empty());
    rcgen::KeyPair::try_from(svid.x509_svid_key.as_slice()).expect("PKCS#8 key");

    let bundles = c
        .fetch_x509_bundles(with_header(X509BundlesRequest {}))
        .await
        .expect("bundles")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("one");
    assert_eq!(bundles.bundles.get("cluster.local"), Some(&svid.bundle));

    // JWT-SVID: fetched, validated by the agent, and its JWKS is served.
    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest::default()))
        .await
        .expect_err("no audience");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let jwt = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["vault".into()],
            spiffe_id: String::new(),
        }))
        .await
        .expect("JWT-SVID")
        .into_inner();
    assert_eq!(
        jwt.svids[0].spiffe_id,
        "spiffe://cluster.local/ns/demo/sa/web"
    );
    let valid = c
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "vault".into(),
            svid: jwt.svids[0].svid.clone(),
        }))
        .await
        .expect("validates")
        .into_inner();
    assert_eq!(valid.spiffe_id, "spiffe://cluster.local/ns/demo/sa/web");
    assert!(valid.claims.expect("claims").fields.contains_key("aud"));
    let err = c
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "gateway".into(),
            svid: jwt.svids[0].svid.clone(),
        }))
        .await
        .expect_err("wrong audience");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["vault".into()],
            spiffe_id: "spiffe://cluster.local/ns/demo/sa/admin".into(),
        }))
        .await
        .expect_err("not its identity");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let jwks = c
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .expect("JWT bundles")
        .into_inner()
        .message()
        .await
        .expect("message")
        .expect("one");
    // The controller's key signed it: the bundle is jwt-svid.key's public half.
    let controller_key = ztmesh_attestation::JwtSigner::load_or_create(
        &s.pki.dir().join(ztmesh_attestation::jwt_svid::KEY_FILE),
        Duration::from_secs(60),
    )
    .expect("the controller made its JWT-SVID key");
    assert_eq!(jwks.bundles["cluster.local"], controller_key.jwks());
    ztmesh_attestation::JwtBundle::from_jwks("cluster.local", &jwks.bundles["cluster.local"])
        .expect("JWKS")
        .validate(&jwt.svids[0].svid, "vault")
        .expect("validates against the served bundle");

    // Unattested: the resources now select another uid (read at each call).
    std::fs::write(
        &s.agent_resources,
        resource("web", "demo", "web", "node-a", &["unix:uid:4242".into()]),
    )
    .expect("rewrite");
    let err = c
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .expect_err("unattested");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("matches no WorkloadAttestation"),
        "{err:?}"
    );
    assert!(err.message().contains("uid="), "{err:?}");
    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["vault".into()],
            spiffe_id: String::new(),
        }))
        .await
        .expect_err("unattested");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    drop(stream);
    s.agent.shutdown().await.expect("agent stops");
    assert!(
        !s.agent_resources.with_file_name("agent.sock").exists(),
        "socket removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_refuses_identities_not_assigned_to_the_node() {
    // The agent's resources claim demo/admin for this node; the
    // controller's assign it to node-b only.
    let agent = resource("admin", "demo", "admin", "node-a", &me());
    let controller = resource("admin", "demo", "admin", "node-b", &me());
    let s = setup(&agent, &controller).await;
    let mut c = client(s.agent.socket().to_path_buf()).await;
    let err = tokio::time::timeout(DEADLINE, c.fetch_x509svid(with_header(X509svidRequest {})))
        .await
        .expect("in time")
        .expect_err("refused by the controller");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message()
            .contains("node \"node-a\" may not be issued spiffe://cluster.local/ns/demo/sa/admin"),
        "{err:?}"
    );
    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["vault".into()],
            spiffe_id: String::new(),
        }))
        .await
        .expect_err("refused by the controller");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("may not be issued"), "{err:?}");
    s.agent.shutdown().await.expect("agent stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_push_the_renewed_svid_before_expiry() {
    let web = resource("web", "demo", "web", "node-a", &me());
    // 3s leaves: the agent renews at two thirds, about 2s in.
    let s = setup_with_ttl(&web, &web, Duration::from_secs(3)).await;
    let mut c = client(s.agent.socket().to_path_buf()).await;
    let mut stream = c
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .expect("X.509-SVID stream")
        .into_inner();
    let first = stream.message().await.expect("message").expect("one");
    let first_leaf = split_der(&first.svids[0].x509_svid).remove(0);
    let not_after = |der: &[u8]| {
        x509_parser::parse_x509_certificate(der)
            .expect("leaf")
            .1
            .validity()
            .not_after
            .timestamp()
    };
    let second = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("a renewed SVID within the deadline")
        .expect("message")
        .expect("stream open");
    let second_leaf = split_der(&second.svids[0].x509_svid).remove(0);
    assert_ne!(second_leaf, first_leaf, "a new certificate");
    assert_ne!(
        second.svids[0].x509_svid_key, first.svids[0].x509_svid_key,
        "a new key"
    );
    assert_eq!(second.svids[0].spiffe_id, first.svids[0].spiffe_id);
    // Pushed before the first one expired.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(now <= not_after(&first_leaf), "renewed only after expiry");
    assert!(not_after(&second_leaf) >= not_after(&first_leaf));
    drop(stream);
    s.agent.shutdown().await.expect("agent stops");
}
