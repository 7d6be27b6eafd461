//! The controller's policy side: with the real binary, manifests on disk,
//! a WatchPort stream that follows edits, refusals (in its log), and
//! `--check`; in process, Destination and OutboundPolicies.

use crate::support;

use futures::StreamExt;
use linkerd2_proxy_api::destination::destination_client::DestinationClient;
use linkerd2_proxy_api::destination::{GetDestination, update::Update};
use linkerd2_proxy_api::inbound::PortSpec;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use linkerd2_proxy_api::outbound::outbound_policies_client::OutboundPoliciesClient;
use linkerd2_proxy_api::outbound::{TrafficSpec, traffic_spec::Target};
use std::time::Duration;
use support::*;

const AUTHORS: &str = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: authors, namespace: booksapp}\nspec: {podSelector: {matchLabels: {app: authors}}, port: 7001, proxyProtocol: HTTP/1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: authors, namespace: booksapp, labels: {app: authors}}\nspec:\n  serviceAccountName: authors\n  containers: [{name: app, image: authors, ports: [{name: http, containerPort: 7001}]}]\n";

fn seeds() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(
        dir.is_dir(),
        "seed fixtures expected at {} (the repository's own copy of the seeds' YAML)",
        dir.display()
    );
    dir
}

/// The identities allowed on the authors route, from a proto Server.
fn route_identities(server: &linkerd2_proxy_api::inbound::Server) -> Vec<String> {
    use linkerd2_proxy_api::inbound::authn::{Permit, permit_mesh_tls::Clients};
    use linkerd2_proxy_api::inbound::proxy_protocol::Kind;
    let Some(Kind::Http1(h)) = server.protocol.as_ref().and_then(|p| p.kind.clone()) else {
        panic!("HTTP/1 expected: {server:?}")
    };
    let authz = &h.routes[0].authorizations[0];
    assert_eq!(authz.labels["name"], "authors-get-policy");
    match authz.authentication.as_ref().and_then(|a| a.permit.clone()) {
        Some(Permit::MeshTls(m)) => match m.clients {
            Some(Clients::Identities(ids)) => ids.identities.into_iter().map(|i| i.name).collect(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// A controller watching a manifests directory, and a WatchPort stream
/// for authors' port 7001.
struct Watch {
    stream: tonic::Streaming<linkerd2_proxy_api::inbound::Server>,
    client: InboundServerPoliciesClient<tonic::transport::Channel>,
    controller: Daemon,
    m: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn spec(workload: &str, port: u32) -> PortSpec {
    PortSpec {
        workload: workload.into(),
        port,
    }
}

#[tokio::test]
async fn watch_port_follows_manifest_edits() {
    let mut w = step_async("the stream starts with the seed's policy", start_watching()).await;
    step_async(
        "an edit on disk reaches the stream within 2s",
        edit_reaches_the_stream(&mut w),
    )
    .await;
    step_async("a bad edit is refused and logged", bad_edit_refused(&mut w)).await;
    step_async(
        "deleting the Server falls back to the default",
        server_deleted(&mut w),
    )
    .await;
    step_async("GetPort answers and refuses", get_port(&mut w)).await;
}

async fn start_watching() -> Watch {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let m = tmp.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    for f in [
        "seed003-booksapp-authors.yaml",
        "seed002-server-authorization.yaml",
    ] {
        std::fs::copy(seeds().join(f), m.join(f)).unwrap();
    }
    std::fs::write(m.join("authors.yaml"), AUTHORS).unwrap();

    let mut cmd = ztmesh();
    cmd.args([
        "controller",
        "--identity-addr",
        "127.0.0.1:0",
        "--policy-addr",
        "127.0.0.1:0",
        "--viz-addr",
        "127.0.0.1:0",
        "--identity-dir",
    ])
    .arg(&d)
    .arg("--manifests")
    .arg(&m);
    let mut controller = Daemon::spawn(cmd);
    let policy_addr = controller.listening_addr("policy service");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{policy_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = InboundServerPoliciesClient::new(channel);
    let mut stream = client
        .watch_port(spec(r#"{"ns":"booksapp","pod":"authors"}"#, 7001))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.labels["name"], "authors");
    assert_eq!(first.labels["kind"], "server");
    assert_eq!(
        route_identities(&first),
        vec![
            "books.booksapp.serviceaccount.identity.linkerd.cluster.local",
            "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local"
        ]
    );

    Watch {
        stream,
        client,
        controller,
        m,
        _tmp: tmp,
    }
}

/// Edit the MeshTLSAuthentication on disk: the stream delivers the change.
async fn edit_reaches_the_stream(w: &mut Watch) {
    let Watch { stream, m, .. } = w;
    let f = m.join("seed003-booksapp-authors.yaml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("webapp.booksapp", "reviews.booksapp");
    std::fs::write(&f, text).unwrap();
    let started = tokio::time::Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("an update within 2s")
        .unwrap()
        .unwrap();
    assert!(
        route_identities(&second).contains(
            &"reviews.booksapp.serviceaccount.identity.linkerd.cluster.local".to_string()
        )
    );
    eprintln!(
        "edit reached the WatchPort stream in {:?}",
        started.elapsed()
    );
}

/// A bad edit is refused: no update, the error is logged with its field.
async fn bad_edit_refused(w: &mut Watch) {
    let Watch {
        stream,
        controller,
        m,
        ..
    } = w;
    std::fs::write(
        m.join("authors.yaml"),
        AUTHORS.replace("port: 7001,", "port: 7001, colour: red,"),
    )
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stream.next())
            .await
            .is_err(),
        "no update for a refused file"
    );
    assert!(
        controller
            .output()
            .contains("spec.colour: unknown field `colour`"),
        "{}",
        controller.output()
    );
}

/// Deleting the Server falls back to the default policy.
async fn server_deleted(w: &mut Watch) {
    let Watch { stream, m, .. } = w;
    std::fs::write(
        m.join("authors.yaml"),
        AUTHORS.split("---\n").nth(1).unwrap(),
    )
    .unwrap();
    let third = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("an update")
        .unwrap()
        .unwrap();
    assert_eq!(
        (third.labels["kind"].as_str(), third.labels["name"].as_str()),
        ("default", "all-unauthenticated")
    );
}

/// GetPort: the seed's legacy authorization, and the error codes.
async fn get_port(w: &mut Watch) {
    let Watch { client, m, .. } = w;
    let api = {
        std::fs::write(m.join("api.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: my-app, labels: {app: my-api}}\nspec: {containers: [{name: c, image: x}]}\n").unwrap();
        let client = &*client;
        eventually_async(
            Duration::from_secs(10),
            "GetPort finding pod my-app/api",
            || {
                let mut client = client.clone();
                let port = spec("my-app:api", 8080);
                async move {
                    match client.get_port(port).await {
                        Ok(answer) => Ok(answer.into_inner()),
                        Err(status) => Err(status),
                    }
                }
            },
        )
        .await
    };
    assert_eq!(api.labels["name"], "api-server");
    assert_eq!(api.authorizations[0].labels["kind"], "serverauthorization");
    assert!(
        !api.authorizations[0].networks.is_empty(),
        "the proxy needs at least one network per authorization"
    );
    let err = client
        .get_port(spec("my-app:nobody", 8080))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = client
        .get_port(spec("not a workload", 8080))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = client
        .get_port(spec("my-app:api", 70000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

#[test]
fn check_validates_manifests() {
    let out = run_ok(
        ztmesh()
            .args(["controller", "--check", "--manifests"])
            .arg(seeds()),
    );
    assert!(
        out.contains("ok: 7 resource(s) valid, 3 warning(s)"),
        "{out}"
    );
    assert!(
        out.contains("change apiVersion to policy.linkerd.io/v1beta1"),
        "{out}"
    );

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.yaml"),
        AUTHORS.replace("podSelector", "podSelecter"),
    )
    .unwrap();
    let out = ztmesh()
        .args(["controller", "--check", "--manifests"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bad.yaml document 1 (Server booksapp/authors) spec.podSelecter: unknown field `podSelecter`"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 error(s)"),
        "{}",
        describe(&out)
    );
}

/// A controller serving destination for a Service with one workload, and
/// a Get stream for the Service.
struct Destinations {
    stream: tonic::Streaming<linkerd2_proxy_api::destination::Update>,
    client: DestinationClient<tonic::transport::Channel>,
    controller: InProcessController,
    m: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn dst(path: &str) -> GetDestination {
    GetDestination {
        scheme: "k8s".into(),
        path: path.into(),
        context_token: String::new(),
    }
}

#[tokio::test]
async fn destination_streams_endpoints_and_profiles() {
    let mut d = step_async("the first update adds the workload", start_destinations()).await;
    step_async(
        "a second workload joins, then leaves",
        join_and_leave(&mut d),
    )
    .await;
    step_async("profiles by name and by address", profiles(&mut d)).await;
    step_async(
        "OutboundPolicies on the policy port",
        outbound_policies(&mut d),
    )
    .await;
}

async fn start_destinations() -> Destinations {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("identity");
    run_ok(ztmesh().args(["install", "--dir"]).arg(&d));
    let m = tmp.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    std::fs::copy(
        seeds().join("seed002-service-profile.yaml"),
        m.join("profile.yaml"),
    )
    .unwrap();
    std::fs::write(
        m.join("api.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: api-server, namespace: my-app}\nspec: {selector: {app: api-server}, ports: [{port: 8080}]}\n---\napiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {name: api-1, namespace: my-app, labels: {app: api-server}, annotations: {config.ztmesh.io/proxy-mode: explicit}}\nspec:\n  meshTLS: {identity: api-server.my-app.serviceaccount.identity.linkerd.cluster.local, serverName: api-server.my-app.serviceaccount.identity.linkerd.cluster.local}\n  workloadIPs: [{ip: 127.0.1.1}]\n  ports: [{port: 8080}]\n",
    )
    .unwrap();
    let controller = InProcessController::with_manifests(&d, &m);
    let addr = controller.addrs().destination.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = DestinationClient::new(channel);
    let mut stream = client
        .get(dst("api-server.my-app.svc.cluster.local:8080"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    let Some(Update::Add(set)) = first.update else {
        panic!("{first:?}")
    };
    let ep = &set.addrs[0];
    assert_eq!(
        std::net::SocketAddr::try_from(ep.addr.unwrap())
            .unwrap()
            .to_string(),
        "127.0.1.1:8080"
    );
    assert_eq!(
        ep.protocol_hint
            .as_ref()
            .unwrap()
            .opaque_transport
            .as_ref()
            .unwrap()
            .inbound_port,
        4143
    );
    assert_eq!(set.metric_labels["service"], "api-server");

    Destinations {
        stream,
        client,
        controller,
        m,
        _tmp: tmp,
    }
}

/// A second workload joins, then leaves.
async fn join_and_leave(d: &mut Destinations) {
    let Destinations { stream, m, .. } = d;
    let second = "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {name: api-2, namespace: my-app, labels: {app: api-server}}\nspec:\n  meshTLS: {identity: api-server.my-app.serviceaccount.identity.linkerd.cluster.local, serverName: api-server.my-app.serviceaccount.identity.linkerd.cluster.local}\n  workloadIPs: [{ip: 127.0.1.2}]\n  ports: [{port: 8080}]\n";
    std::fs::write(m.join("api-2.yaml"), second).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(Update::Add(set)) = next.update else {
        panic!("{next:?}")
    };
    assert_eq!(set.addrs.len(), 1);
    std::fs::remove_file(m.join("api-2.yaml")).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(next.update, Some(Update::Remove(ref r)) if r.addrs.len() == 1),
        "{next:?}"
    );
}

async fn profiles(d: &mut Destinations) {
    let client = &mut d.client;
    let mut profiles = client
        .get_profile(dst("api-server.my-app.svc.cluster.local:8080"))
        .await
        .unwrap()
        .into_inner();
    let profile = profiles.next().await.unwrap().unwrap();
    assert_eq!(
        profile.fully_qualified_name,
        "api-server.my-app.svc.cluster.local"
    );
    let names: Vec<_> = profile
        .routes
        .iter()
        .map(|r| {
            (
                r.metrics_labels["route"].clone(),
                r.is_retryable,
                r.timeout.unwrap().seconds,
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("GET /api/users".to_string(), true, 5),
            ("POST /api/orders".to_string(), false, 10)
        ]
    );
    // By the workload's address: the endpoint and its identity.
    let mut by_ip = client
        .get_profile(dst("127.0.1.1:8080"))
        .await
        .unwrap()
        .into_inner();
    let p = by_ip.next().await.unwrap().unwrap();
    let ep = p.endpoint.expect("a known endpoint");
    assert!(ep.tls_identity.is_some());
    let err = client.get(dst("not-a-service")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

/// OutboundPolicies on the policy port: the default route to the Service,
/// and NOT_FOUND for what is not a Service port (the proxy falls back).
async fn outbound_policies(d: &mut Destinations) {
    let policy_addr = d.controller.addrs().policy.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{policy_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut outbound = OutboundPoliciesClient::new(channel);
    let spec = |authority: &str| TrafficSpec {
        source_workload: "my-app:client".into(),
        target: Some(Target::Authority(authority.into())),
    };
    let policy = outbound
        .get(spec("api-server.my-app.svc.cluster.local:8080"))
        .await
        .unwrap()
        .into_inner();
    let Some(linkerd2_proxy_api::outbound::proxy_protocol::Kind::Detect(detect)) =
        policy.protocol.and_then(|p| p.kind)
    else {
        panic!("detect expected")
    };
    let routes = detect.http1.unwrap().routes;
    assert_eq!(routes.len(), 1);
    let err = outbound
        .get(spec("nothing.my-app.svc.cluster.local:80"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
