//! Label selectors, as Kubernetes defines them, matched against labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

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
    pub fn validate(&self) -> Result<(), String> {
        for (i, req) in self.match_expressions.iter().flatten().enumerate() {
            let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
            match req.operator {
                SelectorOperator::In | SelectorOperator::NotIn if !has_values => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {:?} needs values",
                        req.operator
                    ));
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist if has_values => {
                    return Err(format!(
                        "matchExpressions[{i}]: operator {:?} takes no values",
                        req.operator
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
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
        assert!(
            sel("matchExpressions: [{key: a, operator: In}]")
                .validate()
                .is_err()
        );
        assert!(
            sel("matchExpressions: [{key: a, operator: Exists, values: [x]}]")
                .validate()
                .is_err()
        );
        assert!(serde_yaml::from_str::<LabelSelector>("matchLabel: {a: b}").is_err());
        assert!(
            serde_yaml::from_str::<LabelSelector>("matchExpressions: [{key: a, operator: Maybe}]")
                .is_err()
        );
    }
}
