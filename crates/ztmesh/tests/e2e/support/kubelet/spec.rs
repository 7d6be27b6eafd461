//! The parts of a Pod a kubelet reads, typed (from `kubectl get pod -o
//! json`; unknown fields ignored), and the container environment resolved
//! as kubelet resolves it: `value` with `$(VAR)` expanded from the
//! variables defined before it (`$$` escapes, unknown references stay
//! as they are), `valueFrom` from the pod's fields (`fieldRef`), a
//! ConfigMap or a Secret (a lookup the caller gives).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Deserialize)]
pub struct Pod {
    pub metadata: Meta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub service_account_name: String,
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// `Always` on an init container: a native sidecar.
    #[serde(default)]
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<EnvSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    #[serde(default)]
    pub field_ref: Option<FieldRef>,
    #[serde(default)]
    pub config_map_key_ref: Option<KeyRef>,
    #[serde(default)]
    pub secret_key_ref: Option<KeyRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    pub container_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub sub_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default)]
    pub http_get: Option<HttpGet>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpGet {
    #[serde(default)]
    pub path: Option<String>,
    pub port: IntOrString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(u16),
    Name(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub run_as_user: Option<u32>,
    #[serde(default)]
    pub run_as_group: Option<u32>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    /// Added to a non-root user as ambient capabilities (`NET_ADMIN`).
    #[serde(default)]
    pub add: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default)]
    pub empty_dir: Option<serde_json::Value>,
    #[serde(default)]
    pub projected: Option<Projected>,
    #[serde(default)]
    pub config_map: Option<ConfigMapVolume>,
}

/// A `configMap` volume: every key of the ConfigMap as a file.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigMapVolume {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Projected {
    #[serde(default)]
    pub sources: Vec<ProjectedSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedSource {
    #[serde(default)]
    pub service_account_token: Option<TokenProjection>,
    #[serde(default)]
    pub config_map: Option<ConfigMapProjection>,
    #[serde(default, rename = "downwardAPI")]
    pub downward_api: Option<DownwardApi>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenProjection {
    pub path: String,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub expiration_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConfigMapProjection {
    pub name: String,
    #[serde(default)]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DownwardApi {
    #[serde(default)]
    pub items: Vec<DownwardItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardItem {
    pub path: String,
    #[serde(default)]
    pub field_ref: Option<FieldRef>,
}

/// Why a container's environment or a volume cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("fieldRef {0:?} is not one a kubelet resolves")]
    UnknownField(String),
    #[error("env {0}: valueFrom names no source this kubelet supports")]
    UnsupportedSource(String),
    #[error("env {var}: {kind} {name} has no key {key:?}")]
    MissingKey {
        var: String,
        kind: &'static str,
        name: String,
        key: String,
    },
}

/// What the pod's fields resolve to on this node.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub ip: IpAddr,
    pub host_ip: IpAddr,
    pub node: &'a str,
}

impl PodFacts<'_> {
    /// A `fieldRef`'s value, as the downward API gives it.
    pub fn field(&self, path: &str) -> Result<String, SpecError> {
        let meta = &self.pod.metadata;
        let keyed = |prefix: &str, map: &BTreeMap<String, String>| {
            let key = path
                .strip_prefix(prefix)?
                .strip_suffix("']")?
                .strip_prefix("['")?;
            Some(map.get(key).cloned().unwrap_or_default())
        };
        Ok(match path {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => meta.namespace.clone(),
            "metadata.uid" => meta.uid.clone(),
            "spec.nodeName" => self.node.to_string(),
            "spec.serviceAccountName" => self.pod.spec.service_account_name.clone(),
            "status.podIP" | "status.podIPs" => self.ip.to_string(),
            "status.hostIP" | "status.hostIPs" => self.host_ip.to_string(),
            _ => keyed("metadata.labels", &meta.labels)
                .or_else(|| keyed("metadata.annotations", &meta.annotations))
                .ok_or_else(|| SpecError::UnknownField(path.to_string()))?,
        })
    }
}

/// A ConfigMap's or Secret's key: (kind, name, key) to its value.
pub type Lookup<'a> = dyn Fn(&'static str, &str, &str) -> Option<String> + 'a;

/// The container's environment in order, as kubelet gives it.
pub fn resolve_env(
    container: &Container,
    facts: &PodFacts<'_>,
    lookup: &Lookup<'_>,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => from_source(&var.name, from, facts, lookup)?,
            (Some(value), None) => expand(value, &env),
            (None, None) => String::new(),
        };
        match env.iter_mut().find(|(k, _)| *k == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    Ok(env)
}

fn from_source(
    var: &str,
    from: &EnvSource,
    facts: &PodFacts<'_>,
    lookup: &Lookup<'_>,
) -> Result<String, SpecError> {
    if let Some(f) = &from.field_ref {
        return facts.field(&f.field_path);
    }
    let (kind, key_ref) = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(r), _) => ("ConfigMap", r),
        (None, Some(r)) => ("Secret", r),
        (None, None) => return Err(SpecError::UnsupportedSource(var.to_string())),
    };
    match lookup(kind, &key_ref.name, &key_ref.key) {
        Some(value) => Ok(value),
        None if key_ref.optional => Ok(String::new()),
        None => Err(SpecError::MissingKey {
            var: var.to_string(),
            kind,
            name: key_ref.name.clone(),
            key: key_ref.key.clone(),
        }),
    }
}

/// `$(VAR)` replaced by VAR's value when VAR is in `env`; `$$` is a `$`;
/// anything else is kept as written (kubelet's expansion).
pub fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|r| r.find(')').map(|end| (&r[..end], &r[end + 1..])))
        {
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "authors-1", "namespace": "booksapp", "uid": "u-1",
                         "labels": {"app": "authors"}},
            "spec": {"serviceAccountName": "authors", "containers": []},
        }))
        .unwrap()
    }

    #[test]
    fn expansion_as_kubelet_does_it() {
        let env = vec![
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "y".to_string()),
        ];
        // (value, expanded)
        for (value, want) in [
            ("$(A).$(B)", "x.y"),
            ("{\"ns\":\"$(A)\"}\n", "{\"ns\":\"x\"}\n"),
            ("$(C)", "$(C)"),
            ("$$(A)", "$(A)"),
            ("cost $5", "cost $5"),
            ("$(A", "$(A"),
            ("end$", "end$"),
        ] {
            assert_eq!(expand(value, &env), want, "{value:?}");
        }
    }

    #[test]
    fn fields_and_sources() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            ip: "10.240.0.2".parse().unwrap(),
            host_ip: "10.240.0.1".parse().unwrap(),
            node: "n1",
        };
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "image": "i",
            "env": [
                {"name": "_ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "_sa", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "ID", "value": "$(_sa).$(_ns).serviceaccount"},
                {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CA", "valueFrom": {"configMapKeyRef": {"name": "roots", "key": "ca.crt"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
            ],
        }))
        .unwrap();
        let lookup = |kind: &str, name: &str, key: &str| {
            (kind == "ConfigMap" && name == "roots" && key == "ca.crt").then(|| "PEM".to_string())
        };
        let env = resolve_env(&container, &facts, &lookup).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(
            got,
            [
                ("_ns", "booksapp"),
                ("_sa", "authors"),
                ("ID", "authors.booksapp.serviceaccount"),
                ("IPS", "10.240.0.2"),
                ("APP", "authors"),
                ("CA", "PEM"),
                ("OPT", ""),
            ]
        );
        // (field path, error)
        for (path, want) in [
            (
                "status.phase",
                SpecError::UnknownField("status.phase".into()),
            ),
            (
                "metadata.labels",
                SpecError::UnknownField("metadata.labels".into()),
            ),
        ] {
            assert_eq!(facts.field(path).unwrap_err(), want);
        }
        let missing: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "image": "i",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "roots", "key": "nope"}}}],
        }))
        .unwrap();
        assert!(matches!(
            resolve_env(&missing, &facts, &lookup),
            Err(SpecError::MissingKey { .. })
        ));
    }
}
