//! `KIND[/NAME]`: which workloads a viz command is about, as Linkerd's
//! `viz stat` takes it (`pod/authors`, `po`, `externalworkload/db`,
//! `ns/booksapp`).

use ztmesh_policy::WorkloadRef;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Pods, or the one named.
    Pod(Option<String>),
    /// ExternalWorkloads, or the one named.
    ExternalWorkload(Option<String>),
    /// Every workload of a namespace (all namespaces without a name).
    Namespace(Option<String>),
}

/// Why a `KIND[/NAME]` names no workloads.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("{0:?}: expected KIND or KIND/NAME")]
    Shape(String),
    #[error(
        "{input:?}: the controller indexes pods and external workloads, not {kind} objects; ask for pod/NAME, externalworkload/NAME or ns/NAME"
    )]
    NotIndexed { input: String, kind: String },
    #[error(
        "{input:?}: unknown kind {kind:?} (pod, externalworkload or namespace, optionally /NAME)"
    )]
    UnknownKind { input: String, kind: String },
}

impl std::str::FromStr for Resource {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, ResourceError> {
        let (kind, name) = match s.split_once('/') {
            Some((k, n)) if !n.is_empty() && !n.contains('/') => (k, Some(n.to_string())),
            Some(_) => return Err(ResourceError::Shape(s.into())),
            None => (s, None),
        };
        let error = |make: fn(String, String) -> ResourceError| Err(make(s.into(), kind.into()));
        match kind.to_ascii_lowercase().as_str() {
            "po" | "pod" | "pods" => Ok(Self::Pod(name)),
            "ew" | "externalworkload" | "externalworkloads" => Ok(Self::ExternalWorkload(name)),
            "ns" | "namespace" | "namespaces" => Ok(Self::Namespace(name)),
            "deploy" | "deployment" | "deployments" | "sts" | "statefulset" | "ds"
            | "daemonset" | "rs" | "replicaset" | "job" | "cronjob" => {
                error(|input, kind| ResourceError::NotIndexed { input, kind })
            }
            _ => error(|input, kind| ResourceError::UnknownKind { input, kind }),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = match self {
            Self::Pod(n) => ("pod", n),
            Self::ExternalWorkload(n) => ("externalworkload", n),
            Self::Namespace(n) => ("namespace", n),
        };
        match name {
            Some(n) => write!(f, "{kind}/{n}"),
            None => f.write_str(kind),
        }
    }
}

impl Resource {
    /// Whether the workload `wref` in `ns` is one of these.
    pub fn selects(&self, ns: &str, wref: &WorkloadRef) -> bool {
        let named = |want: &Option<String>, name: &str| want.as_deref().is_none_or(|w| w == name);
        match (self, wref) {
            (Self::Pod(want), WorkloadRef::Pod(name)) => named(want, name),
            (Self::ExternalWorkload(want), WorkloadRef::External(name)) => named(want, name),
            (Self::Namespace(want), _) => named(want, ns),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        let pod = |n: &str| WorkloadRef::Pod(n.into());
        let ew = |n: &str| WorkloadRef::External(n.into());
        // (argument, namespace, workload, selected)
        let cases = [
            ("pod/authors", "booksapp", pod("authors"), true),
            ("po/authors", "booksapp", pod("books"), false),
            ("pods", "booksapp", pod("books"), true),
            ("pods", "booksapp", ew("books"), false),
            ("externalworkload/db", "data", ew("db"), true),
            ("ew", "data", ew("db"), true),
            ("EW/db", "data", pod("db"), false),
            ("ns/booksapp", "booksapp", ew("x"), true),
            ("namespace/booksapp", "other", pod("x"), false),
            ("ns", "other", pod("x"), true),
        ];
        for (arg, ns, wref, want) in cases {
            let r: Resource = arg.parse().unwrap_or_else(|e| panic!("{arg}: {e}"));
            assert_eq!(r.selects(ns, &wref), want, "{arg} {ns} {wref:?}");
        }
        for (bad, reason) in [
            ("deploy/authors", "not deploy objects"),
            ("svc/authors", "unknown kind"),
            ("pod/", "expected KIND or KIND/NAME"),
            ("pod/a/b", "expected KIND or KIND/NAME"),
        ] {
            let err = bad.parse::<Resource>().unwrap_err().to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
        assert_eq!(
            "po/authors".parse::<Resource>().unwrap().to_string(),
            "pod/authors"
        );
    }
}
