//! Label selectors, as Kubernetes defines them, matched against labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Ports served opaquely, on a Pod, ExternalWorkload, Service or Namespace.
pub const OPAQUE_PORTS_ANNOTATION: &str = "config.linkerd.io/opaque-ports";

/// A port list as Linkerd's annotations write it: `5432,6000-6010`.
/// Entries that are not ports or ranges are ignored.
pub fn port_set(value: &str) -> std::collections::BTreeSet<u16> {
    let mut ports = std::collections::BTreeSet::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    ports.extend(a..=b);
                }
            }
            None => ports.extend(part.parse::<u16>().ok()),
        }
    }
    ports
}

/// A Service's cluster IPs (`clusterIPs`, and `clusterIP` when not among them).
pub fn cluster_ips(svc: &k8s_openapi::api::core::v1::Service) -> Vec<std::net::IpAddr> {
    let spec = svc.spec.as_ref();
    let mut ips: Vec<std::net::IpAddr> = spec
        .and_then(|s| s.cluster_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if let Some(ip) = spec
        .and_then(|s| s.cluster_ip.as_ref())
        .and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// The opaque ports an object's annotations declare.
pub fn opaque_ports(
    annotations: Option<&BTreeMap<String, String>>,
) -> std::collections::BTreeSet<u16> {
    annotations
        .and_then(|a| a.get(OPAQUE_PORTS_ANNOTATION))
        .map(|v| port_set(v))
        .unwrap_or_default()
}

/// `matchLabels` and `matchExpressions`, both of which must hold. An empty
/// selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Option<Labels>,
    #[serde(default)]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    pub fn matches(&self, labels: &Labels) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self
                .match_expressions
                .iter()
                .flatten()
                .all(|req| req.matches(labels))
    }

    /// Checks the operators' value rules; returns the problem, if any.
    pub fn validate(&self) -> Result<(), SelectorError> {
        for (index, req) in self.match_expressions.iter().flatten().enumerate() {
            let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
            let operator = req.operator;
            match operator {
                SelectorOperator::In | SelectorOperator::NotIn if !has_values => {
                    return Err(SelectorError::NeedsValues { index, operator });
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist if has_values => {
                    return Err(SelectorError::TakesNoValues { index, operator });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A selector expression breaking its operator's value rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions[{index}]: operator {operator:?} needs values")]
    NeedsValues {
        index: usize,
        operator: SelectorOperator,
    },
    #[error("matchExpressions[{index}]: operator {operator:?} takes no values")]
    TakesNoValues {
        index: usize,
        operator: SelectorOperator,
    },
}

impl LabelSelectorRequirement {
    fn matches(&self, labels: &Labels) -> bool {
        let values = self.values.as_deref().unwrap_or_default();
        match self.operator {
            SelectorOperator::In => labels.get(&self.key).is_some_and(|v| values.contains(v)),
            SelectorOperator::NotIn => !labels.get(&self.key).is_some_and(|v| values.contains(v)),
            SelectorOperator::Exists => labels.contains_key(&self.key),
            SelectorOperator::DoesNotExist => !labels.contains_key(&self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_table() {
        let sel = |yaml: &str| serde_yaml::from_str::<LabelSelector>(yaml).unwrap();
        let cases = [
            ("{}", &[("app", "x")][..], true),
            ("{}", &[][..], true),
            ("matchLabels: {app: api}", &[("app", "api")][..], true),
            ("matchLabels: {app: api}", &[("app", "web")][..], false),
            ("matchLabels: {app: api}", &[][..], false),
            (
                "matchLabels: {app: api, tier: be}",
                &[("app", "api")][..],
                false,
            ),
            (
                "matchExpressions: [{key: app, operator: In, values: [a, b]}]",
                &[("app", "b")][..],
                true,
            ),
            (
                "matchExpressions: [{key: app, operator: In, values: [a, b]}]",
                &[("app", "c")][..],
                false,
            ),
            (
                "matchExpressions: [{key: app, operator: NotIn, values: [a]}]",
                &[][..],
                true,
            ),
            (
                "matchExpressions: [{key: app, operator: NotIn, values: [a]}]",
                &[("app", "a")][..],
                false,
            ),
            (
                "matchExpressions: [{key: app, operator: Exists}]",
                &[("app", "")][..],
                true,
            ),
            (
                "matchExpressions: [{key: app, operator: DoesNotExist}]",
                &[("app", "")][..],
                false,
            ),
            (
                "{matchLabels: {a: '1'}, matchExpressions: [{key: b, operator: Exists}]}",
                &[("a", "1")][..],
                false,
            ),
        ];
        for (yaml, l, want) in cases {
            assert_eq!(sel(yaml).matches(&labels(l)), want, "{yaml} vs {l:?}");
        }
        assert_eq!(
            sel("matchExpressions: [{key: a, operator: In}]")
                .validate()
                .unwrap_err()
                .to_string(),
            "matchExpressions[0]: operator In needs values"
        );
        assert_eq!(
            sel("matchExpressions: [{key: b, operator: In, values: [y]}, {key: a, operator: Exists, values: [x]}]")
                .validate(),
            Err(SelectorError::TakesNoValues {
                index: 1,
                operator: SelectorOperator::Exists
            })
        );
        assert!(serde_yaml::from_str::<LabelSelector>("matchLabel: {a: b}").is_err());
        assert!(
            serde_yaml::from_str::<LabelSelector>("matchExpressions: [{key: a, operator: Maybe}]")
                .is_err()
        );
    }

    #[test]
    fn port_sets() {
        let cases: &[(&str, &[u16])] = &[
            ("5432", &[5432]),
            ("5432, 6000-6002", &[5432, 6000, 6001, 6002]),
            ("", &[]),
            ("http,70000,9-3,-1", &[]),
            ("25,25", &[25]),
        ];
        for (value, want) in cases {
            assert_eq!(
                port_set(value).into_iter().collect::<Vec<_>>(),
                *want,
                "{value}"
            );
        }
    }
}
