//! Pods injected as Linkerd's injector injects them, run by the test as
//! kubelet (`support::kubelet`) against `ztmesh controller --kubernetes`
//! and a real API server (`ZTMESH_TEST_KUBECONFIG`, from
//! `scripts/test-kube`): the CRDs and the control plane's identity objects
//! from `ztmesh install`, the controller on the node (as the install's
//! Deployment runs it, listening on the node's pod-network address), the
//! booksapp's authors, webapp and traffic (fixtures/kube-booksapp.yaml:
//! webapp's and traffic's proxies as native sidecars, the injector's
//! default, authors' as a plain container) with the seed's authors
//! policy. webapp's GET of authors goes through
//! both proxies over mTLS with both identities; traffic, whose service
//! account the policy does not name, is refused.
//!
//! The proxies are `ztmesh proxy`; with `LINKERD2_PROXY_BIN` naming a
//! linkerd2-proxy binary, the pods `LINKERD2_PROXY_PODS` lists (comma
//! separated app names; all three by default) run it instead, behind
//! what Linkerd's proxy image runs first (`support::kubelet::images`).

use crate::support::kubelet::spec::Pod;
use crate::support::kubelet::{Images, Kube, Kubelet, Program, ProxyBin, RunningPod};
use crate::support::{Daemon, check, eventually, netns, run_ok, step, ztmesh};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

const FIXTURE: &str = include_str!("fixtures/kube-booksapp.yaml");
const PLAIN: &str = include_str!("fixtures/kube-booksapp-plain.yaml");
const SEED: &str = include_str!("../../../../fixtures/seeds/seed003-booksapp-authors.yaml");
const AUTHORS: &str = "authors.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TRAFFIC: &str = "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local";
/// The node's address on the pod network is `SUBNET.1`.
const SUBNET: [u8; 3] = [10, 240, 0];
/// Where the controller's admin and viz servers listen on the host.
const HOST_LOOPBACK: &str = "127.0.22.1";

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .collect()
}

fn yaml(doc: &serde_json::Value) -> String {
    serde_json::to_string(doc).expect("JSON is YAML")
}

/// Deletes the booksapp namespace (and with it the Deployments) and the
/// webhook configurations the test applied on drop (the enforcing one
/// would refuse pods in other tests' labelled namespaces once this
/// test's controller is gone).
struct Namespace(Kube);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_run(&["delete", "namespace", "booksapp", "--wait=false"], None);
        let _ = self.0.try_run(
            &[
                "delete",
                "--ignore-not-found",
                "mutatingwebhookconfiguration/linkerd-proxy-injector-webhook-config",
                "validatingwebhookconfiguration/ztmesh-injection-enforcement",
            ],
            None,
        );
    }
}

/// The install's CRDs, Established.
fn apply_crds(kube: &Kube) {
    let crds = run_ok(ztmesh().args(["install", "--crds"]));
    kube.run(&["apply", "-f", "-"], Some(&crds));
    eventually(Duration::from_secs(60), "the CRDs Established", || {
        kube.try_run(
            &[
                "wait",
                "--for=condition=established",
                "--timeout=5s",
                "crd",
                "--all",
            ],
            None,
        )
    });
}

/// `ztmesh install --kubernetes`'s documents (with `install_args`); the
/// namespace, service accounts, RBAC, Services, trust roots, issuer and
/// the webhook's Secret applied (not the Deployment, whose pods nobody
/// would run, nor the webhook configurations: [`apply_webhooks`] applies
/// them once the controller serves them).
fn apply_control_plane(kube: &Kube, install_args: &[&str]) -> Vec<serde_json::Value> {
    let docs = documents(&run_ok(
        ztmesh()
            .args(["install", "--kubernetes"])
            .args(install_args),
    ));
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "Deployment"
                | "PodDisruptionBudget"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
        ) {
            kube.run(&["apply", "-f", "-"], Some(&yaml(doc)));
        }
    }
    docs
}

/// The install's webhook configurations (made with `--webhook-url` on
/// the host's loopback, where the API server reaches the controller).
fn apply_webhooks(kube: &Kube, docs: &[serde_json::Value]) {
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind.ends_with("WebhookConfiguration") {
            kube.run(&["apply", "-f", "-"], Some(&yaml(doc)));
        }
    }
}

/// The controller on the host, with the install Deployment's arguments:
/// its gRPC servers on the node's pod-network address, admin and viz on
/// a host loopback address, its directories in `dir`.
fn controller(docs: &[serde_json::Value], kube: &Kube, host: Ipv4Addr, dir: &Path) -> Daemon {
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the controller Deployment");
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    let mut out: Vec<String> = Vec::new();
    let mut flag = "";
    for arg in args.iter().map(|a| a.as_str().expect("a string")) {
        let value = match flag {
            "--identity-addr" | "--destination-addr" | "--policy-addr" => {
                let port = arg.rsplit(':').next().expect("a port");
                format!("{host}:{port}")
            }
            "--admin-addr" | "--viz-addr" | "--webhook-addr" => {
                let port = arg.rsplit(':').next().expect("a port");
                format!("{HOST_LOOPBACK}:{port}")
            }
            "--webhook-tls-dir" => {
                // The injector's Secret, as the Deployment mounts it.
                let d = dir.join("webhook-tls");
                std::fs::create_dir_all(&d).expect("the webhook's directory");
                let secret = docs
                    .iter()
                    .find(|d| {
                        d["kind"] == "Secret"
                            && d["metadata"]["name"] == "linkerd-proxy-injector-k8s-tls"
                    })
                    .expect("the injector's Secret");
                use base64::Engine;
                for file in ["tls.crt", "tls.key"] {
                    let pem = base64::engine::general_purpose::STANDARD
                        .decode(secret["data"][file].as_str().expect("data"))
                        .expect("base64");
                    std::fs::write(d.join(file), pem).expect("write");
                }
                d.display().to_string()
            }
            "--identity-dir" | "--state-dir" => {
                let d = dir.join(flag.trim_start_matches("--"));
                std::fs::create_dir_all(&d).expect("the controller's directory");
                d.display().to_string()
            }
            _ => arg.to_string(),
        };
        flag = if arg.starts_with("--") { arg } else { "" };
        out.push(value);
    }
    let mut cmd = ztmesh();
    cmd.args(&out)
        .env("KUBECONFIG", &kube.kubeconfig)
        .env("POD_NAME", "ztmesh-controller-on-the-node");
    let mut d = Daemon::spawn(cmd);
    for service in ["identity service", "destination service", "policy service"] {
        let addr = d.listening_addr(service);
        assert!(addr.starts_with(&host.to_string()), "{service} on {addr}");
    }
    d
}

/// The fixture with the trust anchors the injector would inline, and
/// their digest.
fn fixture(anchors: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, anchors.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let line = FIXTURE
        .lines()
        .find(|l| l.trim() == "__TRUST_ANCHORS__")
        .expect("the anchors placeholder");
    let indent = &line[..line.len() - line.trim_start().len()];
    let pem: Vec<String> = anchors
        .trim()
        .lines()
        .map(|l| format!("{indent}{l}"))
        .collect();
    FIXTURE
        .replace(line, &pem.join("\n"))
        .replace("__TRUST_ROOT_SHA256__", &hex)
}

/// The proxy binary each app's pod runs.
fn proxy_for(app: &str) -> ProxyBin {
    let Some(bin) = std::env::var_os("LINKERD2_PROXY_BIN") else {
        return ProxyBin::Ztmesh;
    };
    let pods =
        std::env::var("LINKERD2_PROXY_PODS").unwrap_or_else(|_| "authors,webapp,traffic".into());
    if pods.split(',').any(|p| p.trim() == app) {
        ProxyBin::Linkerd2(bin.into())
    } else {
        ProxyBin::Ztmesh
    }
}

/// `curl URL` by the app of the pod in `netns` (as nobody, the sample
/// app's user, whose traffic proxy-init redirects): (status, body).
fn app_get(netns: &str, url: &str) -> Result<(u16, String), String> {
    let out = netns::Net::unprivileged(netns, "curl")
        .args(["-sS", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    match code.trim().parse() {
        Ok(code) if code != 0 => Ok((code, body.to_string())),
        _ => Err(format!("{}{}", text, String::from_utf8_lossy(&out.stderr))),
    }
}

fn metrics(ip: Ipv4Addr) -> String {
    crate::support::http_get(&format!("{ip}:4191"), "/metrics").unwrap_or_default()
}

/// How the booksapp's pods get their proxies.
pub(crate) enum Injection {
    /// Deployments already injected as Linkerd's injector would store
    /// them (fixtures/kube-booksapp.yaml).
    Linkerd,
    /// Plain Deployments in a namespace annotated for injection and
    /// labelled to enforce it (fixtures/kube-booksapp-plain.yaml): the
    /// API server calls the controller's webhook, which injects them.
    Webhook,
}

#[test]
#[ignore = "needs ZTMESH_TEST_KUBECONFIG and root: run scripts/test-kube"]
fn injected_booksapp_pods_run_against_the_kubernetes_controller() {
    booksapp_over_the_mesh(Injection::Linkerd, |_, _| ());
}

/// The webhook's port on the host's loopback: the Deployment's (under the e2e lock).
const WEBHOOK_PORT: u16 = 8443;

/// The API server reaches the controller's webhook by URL on the host.
pub(crate) fn webhook_url() -> String {
    format!("https://{HOST_LOOPBACK}:{WEBHOOK_PORT}")
}

/// The booksapp's pods, injected as `injection` says, run by the test as
/// kubelet against the controller: mTLS with both identities, the seed's
/// policy enforced; then `then`, with the cluster and the running pods
/// (by app name), before everything is taken down.
pub(crate) fn booksapp_over_the_mesh(
    injection: Injection,
    then: impl FnOnce(&Kube, &[(&str, &RunningPod)]),
) {
    let kubeconfig = std::env::var_os("ZTMESH_TEST_KUBECONFIG")
        .expect("ZTMESH_TEST_KUBECONFIG names the API server's kubeconfig (scripts/test-kube)");
    netns::require_root_and_tools(&[
        "ip",
        "unshare",
        "nsenter",
        "mount",
        "setpriv",
        "curl",
        "iptables-nft",
    ]);
    let kube = Kube { kubeconfig };
    if kube
        .try_run(&["get", "namespace", "booksapp"], None)
        .is_ok()
    {
        kube.run(&["delete", "namespace", "booksapp", "--timeout=120s"], None);
    }
    if std::env::var_os("ZTMESH_TEST_SKIP_CRDS").is_none() {
        step("the CRDs applied", || apply_crds(&kube));
    }
    let url = webhook_url();
    let install_args: &[&str] = match injection {
        Injection::Linkerd => &[],
        Injection::Webhook => &["--webhook-url", &url],
    };
    let docs = step("the control plane's objects applied", || {
        apply_control_plane(&kube, install_args)
    });
    let anchors = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["ca-bundle.crt"].as_str())
        .expect("the trust roots")
        .to_string();
    let images = Images::linkerd()
        .with("ztmesh", Program::Ztmesh)
        .with("buoyantio/booksapp", Program::SampleApp)
        .with("buoyantio/booksapp-traffic", Program::SampleApp);
    let mut kubelet = Kubelet::new(kube.clone(), SUBNET, images);
    let _namespace = Namespace(kube.clone());
    let dir = tempfile::tempdir().unwrap();
    let controller = step("the controller on the node", || {
        controller(&docs, &kube, kubelet.host_ip(), dir.path())
    });
    step("booksapp and the seed's policy applied", || {
        match injection {
            Injection::Linkerd => {
                kube.run(&["apply", "-f", "-"], Some(&fixture(&anchors)));
            }
            Injection::Webhook => {
                apply_webhooks(&kube, &docs);
                kube.run(&["apply", "-f", "-"], Some(PLAIN));
            }
        }
        kube.run(&["apply", "-f", "-"], Some(SEED));
    });
    if let Injection::Webhook = injection {
        step("the webhook injected the stored pods", || {
            for app in ["authors", "webapp", "traffic"] {
                let pod: Pod = kubelet.wait_for_pod("booksapp", &format!("app={app}"));
                let json = kube.json(&["get", "pod", "-n", "booksapp", &pod.metadata.name]);
                let created = json["metadata"]["annotations"]["linkerd.io/created-by"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    created.starts_with("ztmesh/proxy-injector"),
                    "{app}: {json}"
                );
                let names: Vec<&str> = json["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                assert_eq!(names, [app, "linkerd-proxy"], "{app}");
                println!("{app}: {} stored with {names:?}", pod.metadata.name);
            }
            // Enforcement: a pod that opts out of injection is refused.
            let refused = kube
                .try_run(
                    &[
                        "run",
                        "plain",
                        "-n",
                        "booksapp",
                        "--image=buoyantio/booksapp:v0.0.5",
                        "--annotations=linkerd.io/inject=disabled",
                    ],
                    None,
                )
                .expect_err("an uninjected pod refused");
            assert!(refused.contains("enforces proxy injection"), "{refused}");
            println!("kubectl run plain (inject disabled): {}", refused.trim());
        });
    }
    let host = kubelet.host_ip().to_string();
    for name in [
        "linkerd-identity",
        "linkerd-identity-headless",
        "linkerd-dst",
        "linkerd-dst-headless",
        "linkerd-policy",
    ] {
        kubelet.map_host(&format!("{name}.linkerd.svc.cluster.local"), &host);
    }
    let services = kube.json(&["get", "services", "-n", "booksapp"]);
    for svc in services["items"].as_array().expect("items") {
        let name = svc["metadata"]["name"].as_str().expect("name");
        let ip = svc["spec"]["clusterIP"].as_str().expect("a cluster IP");
        kubelet.map_host(&format!("{name}.booksapp.svc.cluster.local"), ip);
    }
    for app in ["authors", "webapp", "traffic"] {
        let pod: Pod = kubelet.wait_for_pod("booksapp", &format!("app={app}"));
        let proxy = proxy_for(app);
        step(&format!("{app} run by the kubelet ({proxy:?})"), || {
            kubelet.run_pod(&pod, &proxy);
        });
    }
    let (authors, webapp, traffic) = (
        kubelet.pod_by_app("authors"),
        kubelet.pod_by_app("webapp"),
        kubelet.pod_by_app("traffic"),
    );
    let logs = || {
        format!(
            "{}{}{}--- controller:\n{}",
            authors.logs(),
            webapp.logs(),
            traffic.logs(),
            controller.output()
        )
    };
    step(
        "the proxies as the spec says: user, env, projected token",
        || {
            // webapp's proxy is a native sidecar, authors' a plain container.
            for (pod, id) in [(webapp, WEBAPP), (authors, AUTHORS)] {
                assert_eq!(pod.container("linkerd-proxy").uid(), 2102, "runAsUser");
                let env = pod.environ("linkerd-proxy");
                let local = env
                    .iter()
                    .find(|(k, _)| k == "LINKERD2_PROXY_IDENTITY_LOCAL_NAME");
                assert_eq!(local.map(|(_, v)| &v[..]), Some(id));
            }
            let env = authors.environ("linkerd-proxy");
            let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("LINKERD2_PROXY_IDENTITY_LOCAL_NAME"), Some(AUTHORS));
            assert_eq!(
                get("LINKERD2_PROXY_INBOUND_IPS"),
                Some(&authors.ip.to_string()[..])
            );
            let workload = format!("{{\"ns\":\"booksapp\", \"pod\":\"{}\"}}\n", authors.name);
            assert_eq!(get("LINKERD2_PROXY_POLICY_WORKLOAD"), Some(&workload[..]));
            let token_file = get("LINKERD2_PROXY_IDENTITY_TOKEN_FILE").expect("the token file");
            let token = authors
                .read("linkerd-proxy", token_file)
                .expect("the projected token");
            let claims = token.split('.').nth(1).expect("a JWT");
            use base64::Engine;
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .expect("base64url");
            let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
            assert_eq!(claims["aud"], serde_json::json!(["identity.l5d.io"]));
            assert_eq!(claims["sub"], "system:serviceaccount:booksapp:authors");
            assert_eq!(claims["kubernetes.io"]["pod"]["name"], &authors.name[..]);
            println!(
                "authors' proxy: uid 2102, {} env vars, token {token_file} (aud identity.l5d.io, bound to the pod)",
                env.len()
            );
        },
    );
    step("authors' EndpointSlice lists its pod, ready", || {
        eventually(Duration::from_secs(30), "authors' endpoint", || {
            let slices = kube.json(&[
                "get",
                "endpointslices",
                "-n",
                "booksapp",
                "-l",
                "kubernetes.io/service-name=authors",
            ]);
            let ready = slices["items"].as_array().into_iter().flatten().any(|s| {
                s["endpoints"].as_array().into_iter().flatten().any(|e| {
                    e["addresses"][0] == authors.ip.to_string() && e["conditions"]["ready"] == true
                })
            });
            check(ready, slices)
        });
    });
    let url = "http://authors.booksapp.svc.cluster.local:7001/authors.json";
    step("webapp GETs authors through both proxies", || {
        let (code, body) = eventually(Duration::from_secs(30), "webapp's GET", || {
            app_get(webapp.netns(), url).and_then(|r| {
                if r.0 == 200 {
                    Ok(r)
                } else {
                    Err(format!("{r:?}"))
                }
            })
        });
        assert_eq!(code, 200);
        assert!(body.contains("authors"), "{body}\n{}", logs());
        println!("webapp -> {url}: {code} {}", body.trim());
    });
    step("over mTLS with both identities", || {
        let inbound = format!("tls=\"true\",client_id=\"{WEBAPP}\"");
        let outbound = format!("tls=\"true\",server_id=\"{AUTHORS}\"");
        let line = |m: &str, needle: &str| m.lines().find(|l| l.contains(needle)).map(String::from);
        let (a, w) = eventually(
            Duration::from_secs(10),
            "the identities in the metrics",
            || {
                let (a, w) = (metrics(authors.ip), metrics(webapp.ip));
                match (line(&a, &inbound), line(&w, &outbound)) {
                    (Some(a), Some(w)) => Ok((a, w)),
                    _ => Err(logs()),
                }
            },
        );
        println!("authors' proxy: {a}");
        println!("webapp's proxy: {w}");
    });
    step("traffic, not in the policy, is refused", || {
        // A 5xx is the mesh still starting; the policy answers 4xx.
        let (code, _) = eventually(Duration::from_secs(30), "traffic's GET judged", || {
            app_get(traffic.netns(), url).and_then(|r| {
                if r.0 < 500 {
                    Ok(r)
                } else {
                    Err(format!("{r:?}"))
                }
            })
        });
        assert_eq!(code, 403, "{}", logs());
        println!("traffic -> {url}: {code}");
        // authors' proxy refused it knowing who asked.
        let who = format!("client_id=\"{TRAFFIC}\"");
        let deny = eventually(Duration::from_secs(10), "authors' deny counted", || {
            let m = metrics(authors.ip);
            m.lines()
                .find(|l| l.starts_with("inbound_http_authz_deny_total{") && l.contains(&who))
                .map(String::from)
                .ok_or_else(logs)
        });
        println!("authors' proxy: {deny}");
    });
    then(
        &kube,
        &[
            ("authors", authors),
            ("webapp", webapp),
            ("traffic", traffic),
        ],
    );
    // For the record: what the proxies warned about (ztmesh's proxy
    // names each Linkerd setting it ignores: counted, not listed).
    for pod in [authors, webapp, traffic] {
        let app = pod.app.as_deref().unwrap_or_default();
        let out = pod.container("linkerd-proxy").output();
        let ignored = "is set but not supported by ztmesh-proxy yet";
        let warned = out
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"));
        let (ignored, other): (Vec<&str>, Vec<&str>) = warned.partition(|l| l.contains(ignored));
        if !ignored.is_empty() {
            println!(
                "the {app} proxy: {} Linkerd settings ignored",
                ignored.len()
            );
        }
        for line in other {
            println!("the {app} proxy: {line}");
        }
    }
}
