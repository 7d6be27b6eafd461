//! SPIFFE federation between two meshes, with the real binaries: two
//! controllers with different trust domains (a.example, b.example) and
//! different anchors, each serving its bundle at a SPIFFE bundle endpoint
//! (https_web, a serving certificate from a test Web CA both trust) and
//! writing the bundles it federates for its proxies. api runs in
//! a.example and admits exactly `spiffe://b.example/ns/demo/sa/web`; web
//! and other run in b.example and reach api through an ExternalWorkload
//! that names api's SPIFFE ID.
//!
//! Steps: before b.example federates a.example, web's proxy refuses api's
//! certificate and says why; once a ClusterFederatedTrustDomain is added
//! (no restart), web is admitted by name and api's metrics name it by its
//! SPIFFE ID, while other (federated, not named) is refused by policy;
//! removing a.example's ClusterFederatedTrustDomain for b.example
//! (no restart) makes api refuse new handshakes from b.example, with the
//! reason in its log, and no longer count web's identity on its
//! established connection (403).

use crate::support;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use support::*;

const NS: &str = "demo";
const PORT: u16 = 18_240;
const A_ENDPOINT: &str = "127.0.24.1:18241";
const B_ENDPOINT: &str = "127.0.24.2:18242";
const API_IP: &str = "127.0.24.10";
const WEB_IP: &str = "127.0.24.20";
const OTHER_IP: &str = "127.0.24.21";
const LATE_IP: &str = "127.0.24.22";
const API_DNS: &str = "api.demo.serviceaccount.identity.linkerd.a.example";
const API_ID: &str = "spiffe://a.example/ns/demo/sa/api";
const WEB_ID: &str = "spiffe://b.example/ns/demo/sa/web";
const LATE_ID: &str = "spiffe://b.example/ns/demo/sa/late";

/// A test Web CA and, under it, a serving certificate for each endpoint IP.
struct WebPki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl WebPki {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "federation test web CA");
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes cert and key for `ip` as NAME.crt / NAME.key in `dir`.
    fn serving(&self, dir: &Path, name: &str, ip: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip.parse().unwrap())];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn cftd(name: &str, domain: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: spire.spiffe.io/v1alpha1\nkind: ClusterFederatedTrustDomain\nmetadata: {{name: {name}}}\nspec:\n  trustDomain: {domain}\n  bundleEndpointURL: https://{endpoint}/\n  bundleEndpointProfile: {{type: https_web}}\n"
    )
}

/// A workload `name` at `ip` with `identity`, and its Service.
fn workload(name: &str, ip: &str, identity: &str, server_name: &str) -> String {
    format!(
        "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {{name: {name}, namespace: {NS}, labels: {{app: {name}}}, annotations: {{config.ztmesh.io/proxy-mode: explicit}}}}\nspec:\n  meshTLS: {{identity: \"{identity}\", serverName: {server_name}}}\n  workloadIPs: [{{ip: {ip}}}]\n  ports: [{{port: {PORT}, name: http}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 7001, targetPort: {PORT}}}]}}\n---\n"
    )
}

/// a.example: api, admitting web and late of b.example by name.
fn a_manifests(m: &Path) {
    let policy = format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: api, namespace: {NS}}}\nspec: {{externalWorkloadSelector: {{matchLabels: {{app: api}}}}, port: {PORT}, proxyProtocol: HTTP/1}}\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: api, namespace: {NS}}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: api}}\n  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: api}}]\n---\n\
apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: api, namespace: {NS}}}\nspec: {{identities: [\"{WEB_ID}\", \"{LATE_ID}\"]}}\n"
    );
    std::fs::write(
        m.join("api.yaml"),
        workload("api", API_IP, API_DNS, API_DNS) + &policy,
    )
    .unwrap();
    std::fs::write(
        m.join("federation.yaml"),
        cftd("b", "b.example", B_ENDPOINT),
    )
    .unwrap();
}

/// b.example: api as an ExternalWorkload proving its SPIFFE ID (no
/// federation yet).
fn b_manifests(m: &Path) {
    std::fs::write(m.join("api.yaml"), workload("api", API_IP, API_ID, API_DNS)).unwrap();
}

/// (status line, body) of a GET to api through the proxy on `ip`.
fn get(ip: &str) -> (String, String) {
    let Ok(mut s) = std::net::TcpStream::connect(format!("{ip}:4140")) else {
        return ("no connection".into(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let host = format!("api.{NS}.svc.cluster.local:7001");
    let req =
        format!("GET http://{host}/hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return ("write failed".into(), String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().into(), body.into())
}

fn federated_domains(file: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return vec![];
    };
    let mut domains: Vec<String> = text
        .split('"')
        .filter(|w| w.ends_with(".example"))
        .map(String::from)
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

#[test]
fn two_trust_domains_federate_by_name_and_unfederate_live() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = shared.path();
    let web = WebPki::new();
    std::fs::write(dir.join("web-ca.crt"), &web.ca_pem).unwrap();
    web.serving(dir, "a-endpoint", "127.0.24.1");
    web.serving(dir, "b-endpoint", "127.0.24.2");
    let path = |name: &str| dir.join(name).display().to_string();
    let (a_file, b_file) = (path("a-federated.json"), path("b-federated.json"));
    let args = |domain: &str, endpoint: &str, name: &str, file: &str| -> Vec<String> {
        [
            "--trust-domain",
            domain,
            "--bundle-endpoint-addr",
            endpoint,
            "--bundle-endpoint-cert",
            &path(&format!("{name}.crt")),
            "--bundle-endpoint-key",
            &path(&format!("{name}.key")),
            "--bundle-endpoint-refresh-hint",
            "1s",
            "--federation-ca",
            &path("web-ca.crt"),
            "--federated-bundles-file",
            file,
            "--no-context",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a_args = args("a.example", A_ENDPOINT, "a-endpoint", &a_file);
    let b_args = args("b.example", B_ENDPOINT, "b-endpoint", &b_file);
    let a = LocalMesh::start_with(
        a_manifests,
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let b = LocalMesh::start_with(
        b_manifests,
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_ne!(a.anchors, b.anchors, "two meshes, two anchors");

    let mut daemons = vec![sample_app("api", &format!("{API_IP}:{PORT}"))];
    let policy_env = [
        ("LINKERD2_PROXY_POLICY_SVC_ADDR", a.policy.clone()),
        (
            "LINKERD2_PROXY_POLICY_SVC_NAME",
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.a.example".into(),
        ),
        (
            "LINKERD2_PROXY_POLICY_WORKLOAD",
            format!(r#"{{"ns":"{NS}","external_workload":"api"}}"#),
        ),
        ("LINKERD2_PROXY_INBOUND_PORTS", PORT.to_string()),
        (
            "ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE",
            a_file.clone(),
        ),
    ];
    let env: Vec<(&str, &str)> = policy_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    daemons.push(explicit_proxy(
        &a.control_plane(),
        API_DNS,
        &a.token(NS, "api"),
        &format!("{API_IP}:{PORT}"),
        &env,
    ));
    let b_env = [(
        "ZTMESH_PROXY_IDENTITY_FEDERATED_BUNDLES_FILE",
        b_file.as_str(),
    )];
    let b_proxy = |name: &str, ip: &str| {
        explicit_proxy(
            &b.control_plane(),
            &format!("{name}.{NS}.serviceaccount.identity.linkerd.b.example"),
            &b.token(NS, name),
            &format!("{ip}:9"),
            &b_env,
        )
    };
    daemons.push(b_proxy("web", WEB_IP));
    daemons.push(b_proxy("other", OTHER_IP));
    let logs = |d: &[Daemon]| {
        format!(
            "api's proxy:\n{}\nweb's proxy:\n{}",
            d[1].output(),
            d[2].output()
        )
    };

    step("a.example follows b.example's bundle endpoint", || {
        eventually(
            Duration::from_secs(20),
            "a's bundle set names b.example",
            || {
                let d = federated_domains(Path::new(&a_file));
                check(d == ["a.example", "b.example"], d)
            },
        );
        let d = federated_domains(Path::new(&b_file));
        assert_eq!(d, ["b.example"], "b federates nothing yet");
    });
    step(
        "b.example does not federate a.example: web's proxy refuses api, saying why",
        || {
            eventually(
                Duration::from_secs(20),
                "web refused with the reason",
                || {
                    let (status, body) = get(WEB_IP);
                    let reason = "trust domain \"a.example\" is not federated with \"b.example\"";
                    check(
                        status.starts_with("HTTP/1.1 502") && body.contains(reason),
                        (status, body),
                    )
                },
            );
        },
    );
    step(
        "federating a.example in b (a ClusterFederatedTrustDomain, no restart)",
        || {
            std::fs::write(
                b.manifests.join("federation.yaml"),
                cftd("a", "a.example", A_ENDPOINT),
            )
            .unwrap();
            eventually(Duration::from_secs(20), "web admitted by name", || {
                let (status, body) = get(WEB_IP);
                check(
                    status.starts_with("HTTP/1.1 200"),
                    (status, body, logs(&daemons)),
                )
            });
            let metrics = http_get(&format!("{API_IP}:4191"), "/metrics").unwrap();
            assert!(
                metrics.contains(&format!("client_id=\"{WEB_ID}\"")),
                "api names web by its SPIFFE ID: {}",
                metrics
                    .lines()
                    .filter(|l| l.contains("client_id"))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        },
    );
    step(
        "other (federated, not named by api's policy) is refused by policy",
        || {
            eventually(Duration::from_secs(20), "other refused", || {
                let (status, body) = get(OTHER_IP);
                check(status.starts_with("HTTP/1.1 403"), (status, body))
            });
        },
    );
    step(
        "un-federating b.example in a (no restart): new handshakes refused",
        || {
            let unfederated = |d: &[Daemon]| {
                d[1].output()
                    .matches("trust_domain=a.example federated=[]")
                    .count()
            };
            let before = unfederated(&daemons);
            std::fs::remove_file(a.manifests.join("federation.yaml")).unwrap();
            eventually(
                Duration::from_secs(20),
                "a's bundle set drops b.example",
                || {
                    let d = federated_domains(Path::new(&a_file));
                    check(d == ["a.example"], d)
                },
            );
            // api's proxy applies it (one more bundle set without b.example).
            eventually(
                Duration::from_secs(10),
                "api's proxy drops b.example",
                || {
                    let n = unfederated(&daemons);
                    check(n > before, n)
                },
            );
            // web's open connection: its identity no longer counts.
            let (status, body) = get(WEB_IP);
            assert!(
                status.starts_with("HTTP/1.1 403"),
                "web on its established connection: {status} {body}"
            );
            // A client api's policy names, connecting for the first time.
            daemons.push(b_proxy("late", LATE_IP));
            eventually(
                Duration::from_secs(20),
                "late refused at the handshake",
                || {
                    let (status, body) = get(LATE_IP);
                    check(
                        status.starts_with("HTTP/1.1 502"),
                        (status, body, logs(&daemons)),
                    )
                },
            );
            eventually(Duration::from_secs(10), "api's proxy says why", || {
                let log = daemons[1].output();
                let reason = "trust domain \"b.example\" is not federated with \"a.example\"";
                check(log.contains(reason), log)
            });
        },
    );
}
