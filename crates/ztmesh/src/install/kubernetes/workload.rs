//! The controller's Deployment (probes, resources, a locked-down pod; with
//! `--ha` 3 replicas, anti-affinity and a PodDisruptionBudget) and the
//! Services on Linkerd's names and ports, all selecting it.

use super::options::{CONTROLLER, INJECTOR_PORT, Options, selector};
use super::webhook::TLS_SECRET;
use serde_json::{Value, json};

/// The controller's ports: (name, port). Names are those Services target.
/// The viz API's port: bound to 127.0.0.1 in the pod (plaintext and
/// unauthenticated; `/compliance` makes the controller probe every
/// workload), reached with `kubectl port-forward`.
const VIZ_PORT: u16 = 8084;
pub(crate) const PORTS: [(&str, u16); 5] = [
    ("identity-grpc", 8080),
    ("dst-grpc", 8086),
    ("policy-grpc", 8090),
    ("admin-http", 9996),
    ("proxy-injector", INJECTOR_PORT),
];
/// Where the controller copies the issuer and trust roots from their
/// Secret and ConfigMap (`--identity-issuer-secret`; its --identity-dir).
pub(crate) const IDENTITY_DIR: &str = "/var/run/ztmesh/identity";
/// The admin server (`/metrics`, `/ready`, `/live`; the probes' port):
/// Linkerd's destination admin port.
pub(crate) const ADMIN_ADDR: &str = "0.0.0.0:9996";
const STATE_DIR: &str = "/var/run/ztmesh/state";
/// Where the webhook's serving certificate (the Secret
/// linkerd-proxy-injector-k8s-tls) is mounted (`--webhook-tls-dir`).
pub(crate) const WEBHOOK_TLS_DIR: &str = "/var/run/ztmesh/webhook-tls";

/// Services on Linkerd's names: (name, port, target port name, headless).
pub(crate) const SERVICES: [(&str, u16, &str, bool); 5] = [
    ("linkerd-identity", 8080, "identity-grpc", false),
    ("linkerd-identity-headless", 8080, "identity-grpc", true),
    ("linkerd-dst", 8086, "dst-grpc", false),
    ("linkerd-dst-headless", 8086, "dst-grpc", true),
    ("linkerd-policy", 8090, "policy-grpc", true),
];

pub(super) fn services(opts: &Options) -> Vec<Value> {
    SERVICES
        .iter()
        .map(|(name, port, target, headless)| {
            let mut spec = json!({
                "type": "ClusterIP",
                "selector": selector(),
                "ports": [{"name": "grpc", "port": port, "targetPort": target}],
            });
            if *headless {
                spec["clusterIP"] = json!("None");
            }
            let component = if name.starts_with("linkerd-identity") {
                "identity"
            } else {
                "destination"
            };
            json!({"apiVersion": "v1", "kind": "Service", "metadata": opts.meta(name, component), "spec": spec})
        })
        .collect()
}

fn args(opts: &Options) -> Vec<String> {
    let port = |name: &str| {
        PORTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|p| p.1)
            .unwrap_or(0)
    };
    let mut args: Vec<String> = [
        "controller",
        "--kubernetes",
        // The issuer from the watched Secret (hot-reloaded, last good
        // kept); Certify's tokens by TokenReview, so no token.key.
        "--identity-issuer-secret",
        "--identity-dir",
        IDENTITY_DIR,
        "--admin-addr",
        ADMIN_ADDR,
        "--state-dir",
        STATE_DIR,
        "--control-plane-namespace",
        &opts.namespace,
        "--trust-domain",
        &opts.trust_domain,
        "--cluster-domain",
        &opts.cluster_domain,
    ]
    .map(String::from)
    .to_vec();
    // Away from loopback: identity as linkerd-identity, destination and
    // policy as linkerd-destination, all TLS.
    for (flag, name) in [
        ("--identity-addr", "identity-grpc"),
        ("--destination-addr", "dst-grpc"),
        ("--policy-addr", "policy-grpc"),
    ] {
        args.push(flag.into());
        args.push(format!("0.0.0.0:{}", port(name)));
    }
    args.push("--viz-addr".into());
    args.push(format!("127.0.0.1:{VIZ_PORT}"));
    // The admission webhooks, on the port the injector Service targets.
    args.push("--webhook-addr".into());
    args.push(format!("0.0.0.0:{INJECTOR_PORT}"));
    args.push("--webhook-tls-dir".into());
    args.push(WEBHOOK_TLS_DIR.into());
    // The injected proxy runs the controller's own image (it holds both).
    let (image, tag) = split_image(&opts.image);
    args.push("--proxy-image".into());
    args.push(image.into());
    if let Some(tag) = tag {
        args.push("--proxy-version".into());
        args.push(tag.into());
    }
    args
}

/// `repo/name:tag` as (`repo/name`, `tag`); a registry's port is not a tag.
fn split_image(image: &str) -> (&str, Option<&str>) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    }
}

#[cfg(test)]
#[test]
fn images_split_at_their_tag_not_a_registry_port() {
    for (image, want) in [
        ("ztmesh:0.1.0", ("ztmesh", Some("0.1.0"))),
        (
            "registry:5000/ztmesh:v2",
            ("registry:5000/ztmesh", Some("v2")),
        ),
        ("registry:5000/ztmesh", ("registry:5000/ztmesh", None)),
        ("ztmesh", ("ztmesh", None)),
    ] {
        assert_eq!(split_image(image), want, "{image}");
    }
}

/// The identity directory: written by the controller itself from the
/// ConfigMap `linkerd-identity-trust-roots` and the Secret
/// `linkerd-identity-issuer` (Linkerd's crt.pem/key.pem or an external
/// issuer's kubernetes.io/tls, both read), which it watches; nothing of
/// them is mounted.
fn identity_volume() -> Value {
    json!({"name": "identity", "emptyDir": {"medium": "Memory"}})
}

/// This replica's name in the status writer's election.
fn env() -> Value {
    json!([{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
}

fn pod_spec(opts: &Options) -> Value {
    let ports: Vec<Value> = PORTS
        .iter()
        .map(|(name, port)| json!({"name": name, "containerPort": port, "protocol": "TCP"}))
        .collect();
    let mut spec = json!({
        "serviceAccountName": CONTROLLER,
        "automountServiceAccountToken": true,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 2103,
            "runAsGroup": 2103,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "controller",
            "image": opts.image,
            "imagePullPolicy": "IfNotPresent",
            "args": args(opts),
            "env": env(),
            "ports": ports,
            "livenessProbe": {
                "httpGet": {"path": "/live", "port": "admin-http"},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
                "failureThreshold": 3,
            },
            // 503 until the first sync is in force (the admin server).
            "readinessProbe": {
                "httpGet": {"path": "/ready", "port": "admin-http"},
                "periodSeconds": 5,
                "failureThreshold": 3,
            },
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "identity", "mountPath": IDENTITY_DIR},
                {"name": "state", "mountPath": STATE_DIR},
                {"name": "webhook-tls", "mountPath": WEBHOOK_TLS_DIR, "readOnly": true},
            ],
        }],
        "volumes": [
            identity_volume(),
            {"name": "state", "emptyDir": {}},
            {"name": "webhook-tls", "secret": {"secretName": TLS_SECRET}},
        ],
    });
    if opts.ha {
        spec["affinity"] = json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector()}, "topologyKey": "kubernetes.io/hostname"},
            ],
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"labelSelector": {"matchLabels": selector()}, "topologyKey": "topology.kubernetes.io/zone"},
            }],
        }});
    }
    spec
}

/// The Deployment, and with `--ha` its PodDisruptionBudget.
pub(super) fn controller(opts: &Options) -> Vec<Value> {
    // Not labelled linkerd.io/control-plane-ns: that would count it as meshed.
    let labels = json!({
        "app.kubernetes.io/part-of": "ztmesh",
        "app.kubernetes.io/component": "controller",
        "ztmesh.io/control-plane-component": "controller",
        "linkerd.io/control-plane-component": "controller",
    });
    let replicas = if opts.ha { 3 } else { 1 };
    let mut out = vec![json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER, "namespace": opts.namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(opts),
            },
        },
    })];
    if opts.ha {
        out.push(json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": opts.meta(CONTROLLER, "controller"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector()}},
        }));
    }
    out
}
