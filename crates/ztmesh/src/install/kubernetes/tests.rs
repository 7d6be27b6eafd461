//! Table tests of the generated control plane: names, ports, RBAC verbs,
//! selectors, HA, the webhook and the identity objects.

use super::options::{CONTROLLER, ISSUER_SECRET, TRUST_ROOTS};
use super::pki::{IdentitySource, Material, material};
use super::*;
use base64::Engine;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};
use ztmesh_identity::TrustDomain;
use ztmesh_identity::issuer::{Issuer, IssuerFiles};

const YEAR: Duration = Duration::from_secs(8760 * 3600);

pub(super) fn options(ns: &str, ha: bool) -> Options {
    Options {
        namespace: ns.into(),
        trust_domain: "cluster.local".into(),
        cluster_domain: "cluster.local".into(),
        image: "ztmesh:test".into(),
        ha,
        webhook_url: None,
    }
}

fn generate(opts: &Options, source: &IdentitySource) -> (Material, Vec<Value>) {
    let trust = TrustDomain::new(&opts.namespace, &opts.trust_domain).expect("trust domain");
    let m = material(
        source,
        &trust,
        (YEAR, YEAR),
        opts.webhook_names(),
        SystemTime::now(),
    )
    .expect("material");
    let objs = objects(opts, &m);
    (m, objs)
}

fn build(ns: &str, ha: bool) -> Vec<Value> {
    generate(&options(ns, ha), &IdentitySource::Generate).1
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn decode(v: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn every_object_by_kind_name_and_namespace() {
    for ns in ["linkerd", "mesh-system"] {
        let got: BTreeSet<(String, String, String)> = build(ns, false)
            .iter()
            .map(|o| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (
                    s(&o["kind"]),
                    s(&o["metadata"]["name"]),
                    s(&o["metadata"]["namespace"]),
                )
            })
            .collect();
        let cluster_role = format!("ztmesh-{ns}-controller");
        let want: BTreeSet<(String, String, String)> = [
            ("Namespace", ns, ""),
            ("ServiceAccount", "ztmesh-controller", ns),
            ("ClusterRole", &cluster_role, ""),
            ("ClusterRoleBinding", &cluster_role, ""),
            ("Role", "ztmesh-controller", ns),
            ("RoleBinding", "ztmesh-controller", ns),
            ("ConfigMap", "linkerd-identity-trust-roots", ns),
            ("Secret", "linkerd-identity-issuer", ns),
            ("Service", "linkerd-identity", ns),
            ("Service", "linkerd-identity-headless", ns),
            ("Service", "linkerd-dst", ns),
            ("Service", "linkerd-dst-headless", ns),
            ("Service", "linkerd-policy", ns),
            ("Service", "linkerd-proxy-injector", ns),
            ("Secret", "linkerd-proxy-injector-k8s-tls", ns),
            (
                "MutatingWebhookConfiguration",
                "linkerd-proxy-injector-webhook-config",
                "",
            ),
            (
                "ValidatingWebhookConfiguration",
                "ztmesh-injection-enforcement",
                "",
            ),
            ("Deployment", "ztmesh-controller", ns),
        ]
        .iter()
        .map(|(k, n, s)| (k.to_string(), n.to_string(), s.to_string()))
        .collect();
        assert_eq!(got, want, "namespace {ns}");
    }
}

#[test]
fn services_on_linkerds_names_and_ports() {
    // (name, port, headless)
    let table = [
        ("linkerd-identity", 8080, false),
        ("linkerd-identity-headless", 8080, true),
        ("linkerd-dst", 8086, false),
        ("linkerd-dst-headless", 8086, true),
        ("linkerd-policy", 8090, true),
        ("linkerd-proxy-injector", 443, false),
    ];
    let objs = build("linkerd", false);
    let deploy = find(&objs, "Deployment", "ztmesh-controller");
    let pod = &deploy["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let container_port = |name: &Value| {
        container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == *name)
            .map(|p| p["containerPort"].as_u64().expect("port"))
    };
    for (name, port, headless) in table {
        let svc = find(&objs, "Service", name);
        let p = &svc["spec"]["ports"][0];
        assert_eq!(p["port"], port, "{name}");
        assert_eq!(svc["spec"]["clusterIP"] == "None", headless, "{name}");
        // The selector picks the controller's pods, and the target port is one of its ports.
        for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
            assert_eq!(&pod["metadata"]["labels"][k], v, "{name} selects {k}");
        }
        let target = container_port(&p["targetPort"]).expect("a named container port");
        let want = if name == "linkerd-proxy-injector" {
            8443
        } else {
            port
        };
        assert_eq!(target, want, "{name}");
    }
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        options::selector()
    );
}

#[test]
fn rbac_is_least_privilege() {
    // (API group, resource, verbs): the whole of what the controller may do cluster-wide.
    let table: &[(&str, &str, &[&str])] = &[
        ("", "namespaces", &["list", "watch"]),
        ("", "pods", &["list", "watch"]),
        ("", "services", &["list", "watch"]),
        ("", "serviceaccounts", &["list", "watch"]),
        ("discovery.k8s.io", "endpointslices", &["list", "watch"]),
        ("policy.linkerd.io", "servers", &["list", "watch"]),
        (
            "policy.linkerd.io",
            "serverauthorizations",
            &["list", "watch"],
        ),
        (
            "policy.linkerd.io",
            "authorizationpolicies",
            &["list", "watch"],
        ),
        (
            "policy.linkerd.io",
            "meshtlsauthentications",
            &["list", "watch"],
        ),
        (
            "policy.linkerd.io",
            "networkauthentications",
            &["list", "watch"],
        ),
        ("policy.linkerd.io", "httproutes", &["list", "watch"]),
        ("policy.linkerd.io", "httproutes/status", &["patch"]),
        (
            "gateway.networking.k8s.io",
            "httproutes",
            &["list", "watch"],
        ),
        (
            "gateway.networking.k8s.io",
            "grpcroutes",
            &["list", "watch"],
        ),
        ("gateway.networking.k8s.io", "httproutes/status", &["patch"]),
        ("linkerd.io", "serviceprofiles", &["list", "watch"]),
        (
            "workload.linkerd.io",
            "externalworkloads",
            &["list", "watch"],
        ),
        (
            "spire.spiffe.io",
            "clusterfederatedtrustdomains",
            &["list", "watch"],
        ),
        ("authentication.k8s.io", "tokenreviews", &["create"]),
    ];
    let objs = build("linkerd", false);
    let flatten = |role: &Value| -> BTreeSet<(String, String, Vec<String>, Option<String>)> {
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .expect("array")
                .iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        };
        let mut out = BTreeSet::new();
        for rule in role["rules"].as_array().expect("rules") {
            for g in strs(&rule["apiGroups"]) {
                for r in strs(&rule["resources"]) {
                    let names = rule.get("resourceNames").map(|n| n.to_string());
                    out.insert((g.clone(), r, strs(&rule["verbs"]), names));
                }
            }
        }
        out
    };
    let cluster = flatten(find(&objs, "ClusterRole", "ztmesh-linkerd-controller"));
    let want: BTreeSet<_> = table
        .iter()
        .map(|(g, r, v)| {
            (
                g.to_string(),
                r.to_string(),
                v.iter().map(|s| s.to_string()).collect(),
                None,
            )
        })
        .collect::<BTreeSet<_>>();
    // The trust roots' copy in each namespace: create, and that one
    // ConfigMap read and patched.
    let copy = format!("[\"{}\"]", ztmesh_kube::trust_roots::COPY);
    let mut want = want;
    want.insert(("".into(), "configmaps".into(), vec!["create".into()], None));
    want.insert((
        "".into(),
        "configmaps".into(),
        vec!["get".into(), "patch".into()],
        Some(copy),
    ));
    assert_eq!(cluster, want);

    let local = flatten(find(&objs, "Role", "ztmesh-controller"));
    for (group, resource, verbs, names) in &local {
        match resource.as_str() {
            // What the election does: read, create, renew or take over.
            "leases" => {
                assert_eq!(group, "coordination.k8s.io");
                assert_eq!(verbs, &["get", "create", "update"]);
            }
            // Secrets and ConfigMaps only by name: the issuer and the trust roots.
            "secrets" => assert_eq!(names, &Some(serde_json::json!([ISSUER_SECRET]).to_string())),
            "configmaps" => assert_eq!(names, &Some(serde_json::json!([TRUST_ROOTS]).to_string())),
            other => panic!("unexpected {other} in the Role"),
        }
        assert!(
            !verbs.iter().any(|v| v == "*" || v == "delete"),
            "{resource}: {verbs:?}"
        );
    }
    assert_eq!(local.len(), 3);
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let name = if binding == "RoleBinding" {
            "ztmesh-controller"
        } else {
            "ztmesh-linkerd-controller"
        };
        let b = find(&objs, binding, name);
        assert_eq!(
            b["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": "linkerd"}])
        );
    }
}

#[test]
fn ha_replicas_budget_and_anti_affinity() {
    // (ha, replicas, has a PodDisruptionBudget, has anti-affinity)
    for (ha, replicas, pdb, affinity) in [(false, 1, false, false), (true, 3, true, true)] {
        let objs = build("linkerd", ha);
        let deploy = find(&objs, "Deployment", "ztmesh-controller");
        assert_eq!(deploy["spec"]["replicas"], replicas, "ha={ha}");
        let budget = objs.iter().find(|o| o["kind"] == "PodDisruptionBudget");
        assert_eq!(budget.is_some(), pdb, "ha={ha}");
        if let Some(b) = budget {
            assert_eq!(b["spec"]["maxUnavailable"], 1);
            assert_eq!(b["spec"]["selector"]["matchLabels"], options::selector());
        }
        let anti = &deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
        assert_eq!(!anti.is_null(), affinity, "ha={ha}");
        if affinity {
            let term = &anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
            assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
            assert_eq!(term["labelSelector"]["matchLabels"], options::selector());
        }
    }
}

#[test]
fn controller_container() {
    let objs = build("mesh", false);
    let pod = &find(&objs, "Deployment", "ztmesh-controller")["spec"]["template"];
    // Not counted as a meshed pod.
    assert!(pod["metadata"]["labels"]["linkerd.io/control-plane-ns"].is_null());
    let c = &pod["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let flag = |f: &str| args.iter().position(|a| *a == f).map(|i| args[i + 1]);
    assert_eq!(args[..2], ["controller", "--kubernetes"]);
    // (flag, value)
    for (f, v) in [
        ("--control-plane-namespace", "mesh"),
        ("--identity-addr", "0.0.0.0:8080"),
        ("--destination-addr", "0.0.0.0:8086"),
        ("--policy-addr", "0.0.0.0:8090"),
        ("--identity-dir", workload::IDENTITY_DIR),
        // The plaintext viz API stays in the pod; the probes go to the
        // admin server.
        ("--viz-addr", "127.0.0.1:8084"),
        ("--admin-addr", workload::ADMIN_ADDR),
        // The webhooks, where the injector Service's port targets, with
        // the Secret linkerd-proxy-injector-k8s-tls mounted.
        ("--webhook-addr", "0.0.0.0:8443"),
        ("--webhook-tls-dir", workload::WEBHOOK_TLS_DIR),
    ] {
        assert_eq!(flag(f), Some(v), "{f}");
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin-http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/live");
    assert!(!args.contains(&"--health-addr"));
    assert!(args.contains(&"--identity-issuer-secret"));
    // The replica's name in the election, from the downward API.
    assert_eq!(
        c["env"][0],
        serde_json::json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    let port_names: BTreeSet<&str> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(port_names.contains(c["livenessProbe"]["httpGet"]["port"].as_str().unwrap()));
    assert!(port_names.contains(c["readinessProbe"]["httpGet"]["port"].as_str().unwrap()));
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["spec"]["serviceAccountName"], CONTROLLER);
    assert!(c["ports"].as_array().unwrap().contains(
        &serde_json::json!({"name": "proxy-injector", "containerPort": 8443, "protocol": "TCP"})
    ));
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == workload::WEBHOOK_TLS_DIR)
        .expect("the webhook's certificate is mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("its volume");
    assert_eq!(
        volume["secret"]["secretName"],
        "linkerd-proxy-injector-k8s-tls"
    );
}

#[test]
fn webhook_by_service_or_url() {
    // (--webhook-url, what clientConfig holds, an extra name in the
    // serving certificate, the injector's URL). The URL is a base: each
    // webhook appends its path (/inject, /validate).
    let table = [
        (None, "service", None, None),
        (
            Some("https://127.0.0.1:9443"),
            "url",
            Some("IPAddress([127, 0, 0, 1])"),
            Some("https://127.0.0.1:9443/inject"),
        ),
        (
            Some("https://injector.example:9443/"),
            "url",
            Some(r#"DNSName("injector.example")"#),
            Some("https://injector.example:9443/inject"),
        ),
    ];
    for (url, addressed_by, extra_name, inject_url) in table {
        let mut opts = options("linkerd", false);
        opts.webhook_url = url.map(String::from);
        let (m, objs) = generate(&opts, &IdentitySource::Generate);
        let cfg = find(
            &objs,
            "MutatingWebhookConfiguration",
            "linkerd-proxy-injector-webhook-config",
        );
        let hook = &cfg["webhooks"][0];
        let client = hook["clientConfig"].as_object().unwrap();
        assert!(client.contains_key(addressed_by), "{url:?}");
        assert_eq!(client.len(), 2, "{url:?}: one address and the caBundle");
        assert_eq!(hook["clientConfig"]["url"].as_str(), inject_url);
        if addressed_by == "service" {
            assert_eq!(hook["clientConfig"]["service"]["path"], "/inject");
            assert_eq!(
                hook["clientConfig"]["service"]["name"],
                "linkerd-proxy-injector"
            );
            assert_eq!(hook["clientConfig"]["service"]["namespace"], "linkerd");
        }
        assert_eq!(decode(&hook["clientConfig"]["caBundle"]), m.webhook.ca_pem);
        assert_eq!(hook["failurePolicy"], "Ignore");
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(
            hook["rules"][0]["operations"],
            serde_json::json!(["CREATE"])
        );
        assert_eq!(
            hook["rules"][0]["resources"],
            serde_json::json!(["pods", "services"])
        );
        let excluded: Vec<_> = hook["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap(),
                    e["operator"].as_str().unwrap(),
                    e["values"][0].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            excluded,
            [
                ("config.linkerd.io/admission-webhooks", "NotIn", "disabled"),
                ("kubernetes.io/metadata.name", "NotIn", "kube-system"),
            ]
        );
        // The serving certificate is signed by the caBundle's CA, for the
        // Service's names (and the URL's host).
        let secret = find(&objs, "Secret", "linkerd-proxy-injector-k8s-tls");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let cert_pem = decode(&secret["data"]["tls.crt"]);
        let (_, cert) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
        let cert = cert.parse_x509().unwrap();
        let (_, ca) = x509_parser::pem::parse_x509_pem(m.webhook.ca_pem.as_bytes()).unwrap();
        let ca = ca.parse_x509().unwrap();
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        let sans = format!(
            "{:?}",
            cert.subject_alternative_name().unwrap().unwrap().value
        );
        let mut names = vec![r#"DNSName("linkerd-proxy-injector.linkerd.svc")"#];
        names.extend(extra_name);
        for name in names {
            assert!(sans.contains(name), "{name} not in {sans}");
        }
    }
}

#[test]
fn identity_objects_from_each_source() {
    let dir = tempfile::tempdir().unwrap();
    let trust = TrustDomain::new("linkerd", "cluster.local").unwrap();
    ztmesh_identity::install::install(
        dir.path(),
        &ztmesh_identity::install::InstallOptions {
            trust,
            ..Default::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    let from_dir = IssuerFiles::in_dir(dir.path()).unwrap();
    let anchors_file = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    // (source, external issuer, the anchors must be the file's)
    let table = [
        (IdentitySource::Generate, false, false),
        (IdentitySource::Files(from_dir), false, true),
        (
            IdentitySource::External {
                anchors: dir.path().join("ca.crt"),
            },
            true,
            true,
        ),
    ];
    for (source, external, from_file) in table {
        let opts = options("linkerd", false);
        let (_, objs) = generate(&opts, &source);
        let anchors = find(&objs, "ConfigMap", TRUST_ROOTS)["data"]["ca-bundle.crt"]
            .as_str()
            .unwrap()
            .to_string();
        if from_file {
            assert_eq!(anchors, anchors_file, "{source:?}");
        }
        let issuer = objs
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == ISSUER_SECRET);
        assert_eq!(issuer.is_none(), external, "{source:?}");
        if let Some(secret) = issuer {
            assert_eq!(secret["type"], "Opaque");
            let (cert, key) = (
                decode(&secret["data"]["crt.pem"]),
                decode(&secret["data"]["key.pem"]),
            );
            let files = IssuerFiles {
                anchors: "ca-bundle.crt".into(),
                cert: "crt.pem".into(),
                key: "key.pem".into(),
            };
            Issuer::from_pem(
                anchors.as_bytes(),
                cert.as_bytes(),
                key.as_bytes(),
                &files,
                SystemTime::now(),
            )
            .expect("a valid issuer under the anchors");
        }
        // The controller copies the issuer from the Secret itself, in
        // either layout (ztmesh-kube's issuer_secret): nothing is mounted.
        let pod = &find(&objs, "Deployment", CONTROLLER)["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["name"], "identity", "{source:?}");
        assert!(pod["volumes"][0]["emptyDir"].is_object(), "{source:?}");
        let args = pod["containers"][0]["args"].as_array().unwrap();
        assert!(
            args.contains(&"--identity-issuer-secret".into()),
            "{source:?}"
        );
    }
}

#[test]
fn a_bad_issuer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trust = TrustDomain::new("linkerd", "cluster.local").unwrap();
    let opts = ztmesh_identity::install::InstallOptions {
        trust: trust.clone(),
        ..Default::default()
    };
    ztmesh_identity::install::install(dir.path(), &opts, SystemTime::now()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ztmesh_identity::install::install(other.path(), &opts, SystemTime::now()).unwrap();
    // An issuer under another anchor.
    let source = IdentitySource::Files(IssuerFiles {
        anchors: dir.path().join("ca.crt"),
        cert: other.path().join("issuer.crt"),
        key: other.path().join("issuer.key"),
    });
    let err = material(
        &source,
        &trust,
        (YEAR, YEAR),
        vec!["x".into()],
        SystemTime::now(),
    )
    .err()
    .expect("refused");
    assert!(
        err.to_string()
            .contains("not signed by any valid trust anchor"),
        "{err}"
    );
}
