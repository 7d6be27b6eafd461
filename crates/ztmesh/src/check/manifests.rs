//! The manifests group: every manifest valid (the directory's own
//! validation, as `ztmesh controller --check` runs it, and the files the
//! running controller refused, from its `/status`), and no dangling
//! reference: every AuthorizationPolicy's target and authentications,
//! every route's parent Server, every ServerAuthorization's Server exists.

use super::mesh::Observed;
use super::result::{CheckResult, Group};
use ztmesh_resources::Resource;
use ztmesh_resources::load::Severity;

pub(crate) fn checks(mesh: &Observed) -> Vec<CheckResult> {
    let Some(dir) = &mesh.manifests_dir else {
        return vec![CheckResult::warn(
            Group::Manifests,
            "manifests-valid",
            "manifests valid",
            "not checked: the manifests directory is unknown",
            "pass --manifests DIR",
        )];
    };
    let d = dir.display();
    let mut out = Vec::new();
    let errors: Vec<String> = mesh
        .diagnostics
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .map(|x| x.to_string())
        .collect();
    let warnings: Vec<String> = mesh
        .diagnostics
        .iter()
        .filter(|x| x.severity != Severity::Error)
        .map(|x| x.to_string())
        .collect();
    let refused: Vec<String> = mesh
        .refused
        .iter()
        .map(|(file, reasons)| format!("{file}: {}", reasons.join("; ")))
        .collect();
    let title = "manifests valid";
    let evidence = [format!(
        "{} resource(s) in {d}; {} refused by the controller",
        mesh.resources.len(),
        mesh.refused.len()
    )];
    out.push(
        if !errors.is_empty() || !refused.is_empty() {
            CheckResult::fail(
                Group::Manifests,
                "manifests-valid",
                title,
                format!(
                    "{} error(s) in {d}; {} file(s) refused by the controller",
                    errors.len(),
                    refused.len()
                ),
                format!(
                    "ztmesh controller --check --manifests {d} names each problem; fix the files"
                ),
            )
            .offenders(errors.into_iter().chain(refused))
        } else if !warnings.is_empty() {
            CheckResult::warn(
                Group::Manifests,
                "manifests-valid",
                title,
                format!("{} warning(s) in {d}", warnings.len()),
                format!("ztmesh controller --check --manifests {d}"),
            )
            .offenders(warnings)
        } else {
            CheckResult::pass(
                Group::Manifests,
                "manifests-valid",
                title,
                format!("{} resource(s) valid in {d}", mesh.resources.len()),
            )
        }
        .evidence(evidence),
    );
    let dangling = dangling(&mesh.resources);
    let title = "no dangling references";
    out.push(if dangling.is_empty() {
        CheckResult::pass(
            Group::Manifests,
            "manifests-references",
            title,
            "every policy reference names an existing object",
        )
    } else {
        CheckResult::fail(
            Group::Manifests,
            "manifests-references",
            title,
            format!(
                "{} reference(s) to objects that do not exist",
                dangling.len()
            ),
            "create the missing objects or correct the names (they grant nothing as they are)",
        )
        .offenders(dangling)
    });
    out
}

/// Each reference that names no object, in words (ztmesh-policy's
/// definition, the one the controller logs).
pub(crate) fn dangling(resources: &[Resource]) -> Vec<String> {
    ztmesh_policy::references::dangling_in(resources.iter().cloned())
        .iter()
        .map(|f| f.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Vec<Resource> {
        ztmesh_resources::load_str(yaml, "test.yaml")
            .resources
            .into_iter()
            .collect()
    }

    const BASE: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: authors, namespace: booksapp}
spec:
  podSelector: {matchLabels: {app: authors}}
  port: 7001
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: authn, namespace: booksapp}
spec:
  identities: ["books.booksapp.serviceaccount.identity.linkerd.cluster.local"]
"#;

    #[test]
    fn references_to_missing_objects_are_named() {
        let cases: [(&str, &[&str]); 4] = [
            (
                r#"
apiVersion: policy.linkerd.io/v1beta1
kind: HTTPRoute
metadata: {name: authors-get-route, namespace: booksapp}
spec:
  parentRefs: [{name: authors, kind: Server, group: policy.linkerd.io}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: route-policy, namespace: booksapp}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: authors-get-route}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: authn}]
"#,
                &[],
            ),
            (
                r#"
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ok, namespace: booksapp}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: authors}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: authn}]
"#,
                &[],
            ),
            (
                r#"
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: booksapp}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: nope}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: missing}]
"#,
                &[
                    "spec.targetRef: Server booksapp/nope",
                    "MeshTLSAuthentication booksapp/missing",
                ],
            ),
            (
                r#"
apiVersion: policy.linkerd.io/v1beta1
kind: HTTPRoute
metadata: {name: r, namespace: booksapp}
spec:
  parentRefs: [{name: ghost, kind: Server, group: policy.linkerd.io}]
"#,
                &["spec.parentRefs[0]: Server booksapp/ghost"],
            ),
        ];
        for (extra, want) in cases {
            let got = dangling(&load(&format!("{BASE}---{extra}")));
            assert_eq!(got.len(), want.len(), "{got:#?}");
            for w in want {
                assert!(got.iter().any(|g| g.contains(w)), "{w} not in {got:#?}");
            }
        }
    }
}
