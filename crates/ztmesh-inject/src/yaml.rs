//! YAML streams (`---`-separated documents) to JSON values and back. The
//! output is canonical: keys sorted (serde_json's map), one document
//! after another, each followed by `---` as Linkerd's CLI writes them.
//! A document that went through [`parse_stream`] and [`render_stream`]
//! unchanged comes out byte for byte the same.

use serde::Deserialize;
use serde_json::Value;

/// A YAML stream that is not a list of Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("document {index}: {source}")]
    Parse {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("rendering YAML: {0}")]
    Render(#[source] serde_yaml::Error),
}

/// Every document of the stream, in order; empty documents are dropped.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut docs = vec![];
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).map_err(|source| YamlError::Parse {
            index: index + 1,
            source,
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// One document as canonical YAML (no `---`).
pub fn render(doc: &Value) -> Result<String, YamlError> {
    serde_yaml::to_string(doc).map_err(YamlError::Render)
}

/// The documents, each followed by a `---` line.
pub fn render_stream(docs: &[Value]) -> Result<String, YamlError> {
    let mut out = String::new();
    for d in docs {
        out.push_str(&render(d)?);
        out.push_str("---\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canonical_stream_round_trips_byte_for_byte() {
        let text = "a: 1\nb:\n- x\n- y: |\n    two\n    lines\n---\nkind: List\n---\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(render_stream(&docs).unwrap(), text);
    }

    #[test]
    fn empty_documents_are_dropped_and_errors_name_the_document() {
        assert_eq!(parse_stream("---\n---\na: 1\n").unwrap().len(), 1);
        let err = parse_stream("a: 1\n---\n{x\n").unwrap_err();
        assert!(err.to_string().starts_with("document 2"), "{err}");
    }
}
