//! AdmissionReview (`admission.k8s.io/v1` or `v1beta1`) in and out, no
//! I/O: [`parse`] reads a request body (refusing what is not a review with
//! a reason), [`respond`] writes the response in the request's version.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// The AdmissionReview versions served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V1beta1,
}

impl Version {
    fn api_version(self) -> &'static str {
        match self {
            Version::V1 => "admission.k8s.io/v1",
            Version::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// Why a body is not an AdmissionReview request (answered 400).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReviewError {
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "not an AdmissionReview of admission.k8s.io/v1 or v1beta1 (apiVersion {api_version:?}, kind {kind:?})"
    )]
    NotAReview { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview's request is malformed: {0}")]
    BadRequest(serde_json::Error),
    #[error("the AdmissionReview's request has no uid")]
    NoUid,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Kind {
    #[serde(default)]
    pub(crate) group: String,
    #[serde(default)]
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct UserInfo {
    #[serde(default)]
    pub(crate) username: String,
}

/// The parts of `request` the webhook reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    #[serde(default)]
    pub(crate) uid: String,
    #[serde(default)]
    pub(crate) kind: Kind,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) operation: String,
    #[serde(default)]
    pub(crate) user_info: UserInfo,
    #[serde(default)]
    pub(crate) object: Option<Value>,
    #[serde(default)]
    pub(crate) dry_run: Option<bool>,
}

impl Request {
    /// The object's name for messages: its name, else its generateName
    /// followed by `*`, else the request's name.
    pub(crate) fn object_name(&self) -> String {
        let meta = self.object.as_ref().map(|o| &o["metadata"]);
        let field = |f: &str| {
            meta.and_then(|m| m[f].as_str())
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        field("name")
            .or_else(|| field("generateName").map(|g| format!("{g}*")))
            .or_else(|| self.name.clone().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "<unnamed>".into())
    }

    /// The namespace: the request's, else the object's.
    pub(crate) fn namespace(&self) -> Option<String> {
        self.namespace
            .clone()
            .or_else(|| {
                self.object
                    .as_ref()
                    .and_then(|o| o["metadata"]["namespace"].as_str())
                    .map(String::from)
            })
            .filter(|n| !n.is_empty())
    }

    pub(crate) fn is_pod(&self) -> bool {
        self.kind.group.is_empty() && self.kind.kind == "Pod"
    }
}

/// A request body read as an AdmissionReview.
pub(crate) fn parse(body: &[u8]) -> Result<(Version, Request), ReviewError> {
    let mut review: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
    let api_version = review["apiVersion"].as_str().unwrap_or_default();
    let kind = review["kind"].as_str().unwrap_or_default();
    let version = match (api_version, kind) {
        ("admission.k8s.io/v1", "AdmissionReview") => Version::V1,
        ("admission.k8s.io/v1beta1", "AdmissionReview") => Version::V1beta1,
        _ => {
            return Err(ReviewError::NotAReview {
                api_version: api_version.into(),
                kind: kind.into(),
            });
        }
    };
    let request = match review.get_mut("request").map(Value::take) {
        None | Some(Value::Null) => return Err(ReviewError::NoRequest),
        Some(r) => r,
    };
    let request: Request = serde_json::from_value(request).map_err(ReviewError::BadRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok((version, request))
}

/// What the webhook answers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// Allowed, with a JSON Patch or unchanged, and warnings for the client.
    Allow {
        patch: Option<Value>,
        warnings: Vec<String>,
    },
    /// Refused (403) with this message.
    Deny { message: String },
}

/// The AdmissionReview response to the request `uid`.
pub(crate) fn respond(version: Version, uid: &str, answer: &Answer) -> Value {
    let response = match answer {
        Answer::Allow { patch, warnings } => {
            let mut r = json!({"uid": uid, "allowed": true});
            if let Some(patch) = patch {
                let bytes = serde_json::to_vec(patch).expect("a JSON value serializes");
                r["patchType"] = json!("JSONPatch");
                r["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            if !warnings.is_empty() {
                r["warnings"] = json!(warnings);
            }
            r
        }
        Answer::Deny { message } => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": message},
        }),
    };
    json!({"apiVersion": version.api_version(), "kind": "AdmissionReview", "response": response})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_review() {
        // (body, error contains)
        let cases: [(&[u8], &str); 7] = [
            (b"\x00garbage", "not JSON"),
            (b"[1,2]", "not an AdmissionReview"),
            (
                br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}"#,
                "apiVersion \"admission.k8s.io/v2\"",
            ),
            (
                br#"{"apiVersion":"v1","kind":"Pod"}"#,
                "kind \"Pod\"",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "no request",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}"#,
                "no uid",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#,
                "malformed",
            ),
        ];
        for (body, needle) in cases {
            let error = parse(body).expect_err("refused").to_string();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn responds_in_the_request_version() {
        let patch = json!([{"op": "add", "path": "/metadata/labels/a", "value": "b"}]);
        let allow = respond(
            Version::V1beta1,
            "u1",
            &Answer::Allow {
                patch: Some(patch.clone()),
                warnings: vec![],
            },
        );
        assert_eq!(allow["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(allow["response"]["uid"], "u1");
        assert_eq!(allow["response"]["allowed"], true);
        assert_eq!(allow["response"]["patchType"], "JSONPatch");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(allow["response"]["patch"].as_str().expect("patch"))
            .expect("base64");
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).expect("json"),
            patch
        );
        let deny = respond(
            Version::V1,
            "u2",
            &Answer::Deny {
                message: "no".into(),
            },
        );
        assert_eq!(
            deny,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": "u2", "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": "no"},
            }})
        );
    }
}
