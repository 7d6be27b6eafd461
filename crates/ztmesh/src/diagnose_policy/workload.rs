//! Which workload a name on the command line means, as Linkerd users mean
//! it: `pod/NAME` or `externalworkload/NAME` exactly; a bare NAME is the
//! Pod or ExternalWorkload of that name, else the workloads labelled
//! `app=NAME` (the first by kind and name: a Deployment's pods share their
//! policy). Not found says what was looked for and what exists.

use ztmesh_policy::{Index, WorkloadRef};

/// A workload as named on the command line, before the manifests are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkloadName {
    /// `pod/NAME` or `externalworkload/NAME`.
    Exact(WorkloadRef),
    /// A bare NAME.
    Any(String),
}

impl WorkloadName {
    pub(crate) fn parse(s: &str) -> Self {
        if let Some(name) = s.strip_prefix("externalworkload/") {
            Self::Exact(WorkloadRef::External(name.into()))
        } else if let Some(name) = s.strip_prefix("pod/") {
            Self::Exact(WorkloadRef::Pod(name.into()))
        } else {
            Self::Any(s.into())
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("no workload {looked_for} in namespace {namespace} ({})", existing(.there))]
pub(crate) struct NoSuchWorkload {
    looked_for: String,
    namespace: String,
    there: Vec<WorkloadRef>,
}

fn existing(there: &[WorkloadRef]) -> String {
    if there.is_empty() {
        return "the manifests declare no workloads there".into();
    }
    let names: Vec<String> = there.iter().map(|w| w.to_string()).collect();
    format!("workloads there: {}", names.join(", "))
}

/// The workload `name` means in `ns`.
pub(crate) fn resolve(
    index: &Index,
    ns: &str,
    name: &WorkloadName,
) -> Result<WorkloadRef, NoSuchWorkload> {
    let in_ns: Vec<(&WorkloadRef, &ztmesh_policy::view::Workload)> = index
        .workloads()
        .filter(|(n, _, _)| *n == ns)
        .map(|(_, w, wl)| (w, wl))
        .collect();
    let found = match name {
        WorkloadName::Exact(w) => in_ns.iter().find(|(r, _)| *r == w).map(|(r, _)| *r),
        WorkloadName::Any(bare) => {
            let named = |r: &WorkloadRef| match r {
                WorkloadRef::Pod(n) | WorkloadRef::External(n) => n == bare,
            };
            in_ns
                .iter()
                .filter(|(r, _)| named(r))
                .min_by_key(|(r, _)| *r)
                .or_else(|| {
                    in_ns
                        .iter()
                        .filter(|(_, wl)| wl.labels.get("app") == Some(bare))
                        .min_by_key(|(r, _)| *r)
                })
                .map(|(r, _)| *r)
        }
    };
    found.cloned().ok_or_else(|| NoSuchWorkload {
        looked_for: match name {
            WorkloadName::Exact(w) => w.to_string(),
            WorkloadName::Any(bare) => {
                format!("named {bare:?} (a Pod or ExternalWorkload, or labelled app={bare})")
            }
        },
        namespace: ns.into(),
        there: {
            let mut all: Vec<WorkloadRef> = in_ns.iter().map(|(r, _)| (*r).clone()).collect();
            all.sort();
            all
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's manifests, as `ztmesh demo` writes them.
    fn demo_index() -> Index {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("booksapp.yaml"),
            include_str!("../demo/booksapp.yaml"),
        )
        .unwrap();
        let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: reviews-7d9f-x2, namespace: booksapp, labels: {app: reviews}}
spec: {containers: [{name: reviews, image: reviews}]}
"#;
        std::fs::write(dir.path().join("pods.yaml"), pods).unwrap();
        crate::diagnose_policy::policy_index(dir.path()).unwrap().0
    }

    #[test]
    fn names_resolve_as_linkerd_users_mean_them() {
        let index = demo_index();
        let ext = |n: &str| Ok(WorkloadRef::External(n.into()));
        let cases = [
            ("authors", ext("authors")),
            ("externalworkload/authors", ext("authors")),
            ("books", ext("books")),
            // Nothing is named reviews: the pod labelled app=reviews is meant.
            ("reviews", Ok(WorkloadRef::Pod("reviews-7d9f-x2".into()))),
            (
                "pod/reviews-7d9f-x2",
                Ok(WorkloadRef::Pod("reviews-7d9f-x2".into())),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(
                resolve(&index, "booksapp", &WorkloadName::parse(name)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn not_found_says_what_was_looked_for_and_what_exists() {
        let index = demo_index();
        let err = resolve(&index, "booksapp", &WorkloadName::parse("nobody")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no workload named \"nobody\" (a Pod or ExternalWorkload, or labelled app=nobody) \
             in namespace booksapp (workloads there: pod/reviews-7d9f-x2, \
             externalworkload/authors, externalworkload/books, externalworkload/traffic, \
             externalworkload/webapp)"
        );
        let err = resolve(&index, "elsewhere", &WorkloadName::parse("pod/authors")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no workload pod/authors in namespace elsewhere (the manifests declare no workloads there)"
        );
    }
}
