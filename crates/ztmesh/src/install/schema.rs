//! A small structural OpenAPI v3 schema language for the CRDs, and a
//! checker for it.
//!
//! [`Schema`] says only what a structural schema may say (a type at every
//! level, properties, items, required fields, enums, int-or-string, and
//! `x-kubernetes-preserve-unknown-fields` where ztmesh keeps a value as
//! written). [`Schema::to_json`] writes it as the API server reads it.
//! [`Schema::check`] (tests) validates an object the way the API server
//! would, and also refuses any field the schema lacks: the API server
//! would silently prune it, so a field ztmesh-resources reads but a CRD
//! lacks would vanish on a cluster.

use serde_json::{Map, Value, json};

/// One node of a structural schema.
#[derive(Clone, Debug)]
pub(crate) enum Schema {
    Str,
    /// A string from a fixed set.
    Enum(&'static [&'static str]),
    Int,
    Number,
    Bool,
    /// `x-kubernetes-int-or-string` (a port by number or name).
    IntOrStr,
    /// An object with known fields; `required` must be among them.
    Obj {
        props: Vec<(&'static str, Schema)>,
        required: &'static [&'static str],
    },
    /// An object of string keys to values of one schema.
    Map(Box<Schema>),
    Array(Box<Schema>),
    /// An object kept as written (`x-kubernetes-preserve-unknown-fields`).
    AnyObj,
}

/// An object with these fields, none required.
pub(crate) fn obj(props: Vec<(&'static str, Schema)>) -> Schema {
    Schema::Obj {
        props,
        required: &[],
    }
}

/// An object with these fields, the `required` ones required.
pub(crate) fn obj_req(
    props: Vec<(&'static str, Schema)>,
    required: &'static [&'static str],
) -> Schema {
    Schema::Obj { props, required }
}

pub(crate) fn array(items: Schema) -> Schema {
    Schema::Array(Box::new(items))
}

pub(crate) fn map(values: Schema) -> Schema {
    Schema::Map(Box::new(values))
}

impl Schema {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Schema::Str => json!({"type": "string"}),
            Schema::Enum(values) => json!({"type": "string", "enum": values}),
            Schema::Int => json!({"type": "integer"}),
            Schema::Number => json!({"type": "number"}),
            Schema::Bool => json!({"type": "boolean"}),
            Schema::IntOrStr => json!({"x-kubernetes-int-or-string": true}),
            Schema::Obj { props, required } => {
                let properties: Map<String, Value> = props
                    .iter()
                    .map(|(name, s)| ((*name).to_string(), s.to_json()))
                    .collect();
                let mut o = json!({"type": "object", "properties": properties});
                if !required.is_empty() {
                    o["required"] = json!(required);
                }
                o
            }
            Schema::Map(values) => {
                json!({"type": "object", "additionalProperties": values.to_json()})
            }
            Schema::Array(items) => json!({"type": "array", "items": items.to_json()}),
            Schema::AnyObj => {
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
            }
        }
    }

    /// Every problem of `value` against this schema, each with its path.
    #[cfg(test)]
    pub(crate) fn check(&self, value: &Value, path: &str, errors: &mut Vec<String>) {
        let mut fail = |what: &str| errors.push(format!("{path}: {what}"));
        match (self, value) {
            (Schema::Str, Value::String(_)) => {}
            (Schema::Enum(values), Value::String(s)) => {
                if !values.contains(&s.as_str()) {
                    fail(&format!("{s:?} is not one of {values:?}"));
                }
            }
            (Schema::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            (Schema::Number, Value::Number(_)) | (Schema::Bool, Value::Bool(_)) => {}
            (Schema::IntOrStr, Value::String(_)) => {}
            (Schema::IntOrStr, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            (Schema::Obj { props, required }, Value::Object(fields)) => {
                for name in *required {
                    if !fields.contains_key(*name) {
                        errors.push(format!("{path}.{name}: required"));
                    }
                }
                for (name, v) in fields {
                    match props.iter().find(|(p, _)| p == name) {
                        Some((_, s)) => s.check(v, &format!("{path}.{name}"), errors),
                        None => errors.push(format!(
                            "{path}.{name}: not in the schema (the API server would prune it)"
                        )),
                    }
                }
            }
            (Schema::Map(s), Value::Object(fields)) => {
                for (name, v) in fields {
                    s.check(v, &format!("{path}.{name}"), errors);
                }
            }
            (Schema::Array(s), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    s.check(v, &format!("{path}[{i}]"), errors);
                }
            }
            (Schema::AnyObj, Value::Object(_)) => {}
            (s, v) => fail(&format!("{v} does not match {}", s.to_json())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_table() {
        let s = obj_req(
            vec![
                ("port", Schema::IntOrStr),
                ("proto", Schema::Enum(&["HTTP/1", "opaque"])),
                ("labels", map(Schema::Str)),
                ("list", array(Schema::Int)),
                ("kept", Schema::AnyObj),
            ],
            &["port"],
        );
        let cases = [
            (json!({"port": 80}), 0),
            (json!({"port": "http"}), 0),
            (json!({"port": true}), 1),
            (json!({}), 1),
            (json!({"port": 1, "proto": "opaque"}), 0),
            (json!({"port": 1, "proto": "HTTP/3"}), 1),
            (json!({"port": 1, "labels": {"a": "b"}}), 0),
            (json!({"port": 1, "labels": {"a": 1}}), 1),
            (json!({"port": 1, "list": [1, "x"]}), 1),
            (json!({"port": 1, "kept": {"anything": [1]}}), 0),
            (json!({"port": 1, "extra": 1}), 1),
        ];
        for (value, want) in cases {
            let mut errors = vec![];
            s.check(&value, "spec", &mut errors);
            assert_eq!(errors.len(), want, "{value}: {errors:?}");
        }
    }

    #[test]
    fn every_level_has_a_type_or_int_or_string() {
        let s = obj(vec![
            ("a", array(map(Schema::IntOrStr))),
            ("b", Schema::AnyObj),
        ]);
        assert_eq!(
            s.to_json(),
            json!({"type": "object", "properties": {
                "a": {"type": "array", "items": {"type": "object",
                    "additionalProperties": {"x-kubernetes-int-or-string": true}}},
                "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }})
        );
    }
}
