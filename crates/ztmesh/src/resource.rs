//! Naming workloads on the command line, one way everywhere, as Linkerd
//! does: `KIND[/NAME]` with `-n NS` (default `default`). Kinds: `po`,
//! `deploy`, `sts`, `ds`, `ew`, `ns` and their long forms.
//!
//! - [`Resource`]: a kind, optionally a name: the workloads a listing
//!   command (`viz stat|edges|routes|tap|top`) is about ([`Resource::selects`]);
//! - [`WorkloadName`]: one workload (`authz`, `diagnose`), and
//!   [`workload_arg`], its argument with the namespace, where the older forms
//!   `NAME`, `NS/NAME` and `NS/KIND/NAME` still work;
//! - [`resolve`]: the one workload a [`WorkloadName`] means in the index;
//!   [`nothing_selected`]: why a [`Resource`] selects nothing.
//!
//! ztmesh's index knows Pods and ExternalWorkloads, not their owners: in
//! local mode `deploy/NAME` (and `sts`, `ds`) means the workloads labelled
//! `app=NAME`; `po/NAME` and `ew/NAME` the object itself. Errors say what
//! was looked for, in which namespace, and what exists there.
//! [`controller`] resolves a `deploy/NAME` through a running controller's
//! index, for the commands that ask it rather than read manifests.

use ztmesh_policy::{Index, WorkloadRef, view::Workload};

/// The owners Linkerd users name, which ztmesh finds by their `app` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OwnerKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl OwnerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
        }
    }
}

/// `KIND[/NAME]`: which workloads a command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Pods, or the one named.
    Pod(Option<String>),
    /// ExternalWorkloads, or the one named.
    ExternalWorkload(Option<String>),
    /// Every workload of a namespace (all namespaces without a name).
    Namespace(Option<String>),
    /// A Deployment, StatefulSet or DaemonSet: the workloads labelled
    /// `app=NAME` (without a name, every workload with an `app` label).
    Owner(OwnerKind, Option<String>),
}

/// Why a name on the command line names nothing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResourceError {
    #[error("'{0}': expected KIND or KIND/NAME")]
    Shape(String),
    #[error(
        "'{input}': ztmesh indexes pods and external workloads, not {kind} objects; ask for po/NAME, deploy/NAME (the workloads labelled app=NAME), ew/NAME or ns/NAME"
    )]
    NotIndexed { input: String, kind: String },
    #[error("'{input}': unknown kind '{kind}' (po, deploy, sts, ds, ew or ns, optionally /NAME)")]
    UnknownKind { input: String, kind: String },
    #[error("'{0}': name one workload, e.g. po/NAME, deploy/NAME or ew/NAME")]
    NotOneWorkload(String),
    #[error("'{input}' is in namespace {in_arg} but -n says {flag}: give the namespace once")]
    TwoNamespaces {
        input: String,
        in_arg: String,
        flag: String,
    },
}

/// A kind as typed, in any of its forms.
enum Kind {
    Pod,
    External,
    Namespace,
    Owner(OwnerKind),
    NotIndexed,
}

fn kind(s: &str) -> Option<Kind> {
    Some(match s.to_ascii_lowercase().as_str() {
        "po" | "pod" | "pods" => Kind::Pod,
        "ew" | "externalworkload" | "externalworkloads" => Kind::External,
        "ns" | "namespace" | "namespaces" => Kind::Namespace,
        "deploy" | "deployment" | "deployments" => Kind::Owner(OwnerKind::Deployment),
        "sts" | "statefulset" | "statefulsets" => Kind::Owner(OwnerKind::StatefulSet),
        "ds" | "daemonset" | "daemonsets" => Kind::Owner(OwnerKind::DaemonSet),
        "rs" | "replicaset" | "replicasets" | "job" | "jobs" | "cronjob" | "cronjobs" | "svc"
        | "service" | "services" => Kind::NotIndexed,
        _ => return None,
    })
}

impl std::str::FromStr for Resource {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, ResourceError> {
        let (k, name) = match s.split_once('/') {
            Some((k, n)) if !n.is_empty() && !n.contains('/') => (k, Some(n.to_string())),
            Some(_) => return Err(ResourceError::Shape(s.into())),
            None => (s, None),
        };
        let error = |make: fn(String, String) -> ResourceError| Err(make(s.into(), k.into()));
        match kind(k) {
            Some(Kind::Pod) => Ok(Self::Pod(name)),
            Some(Kind::External) => Ok(Self::ExternalWorkload(name)),
            Some(Kind::Namespace) => Ok(Self::Namespace(name)),
            Some(Kind::Owner(o)) => Ok(Self::Owner(o, name)),
            Some(Kind::NotIndexed) => {
                error(|input, kind| ResourceError::NotIndexed { input, kind })
            }
            None => error(|input, kind| ResourceError::UnknownKind { input, kind }),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = match self {
            Self::Pod(n) => ("pod", n),
            Self::ExternalWorkload(n) => ("externalworkload", n),
            Self::Namespace(n) => ("namespace", n),
            Self::Owner(o, n) => (o.as_str(), n),
        };
        match name {
            Some(n) => write!(f, "{kind}/{n}"),
            None => f.write_str(kind),
        }
    }
}

impl Resource {
    /// Whether the workload `wref` (`wl`) in `ns` is one of these.
    pub(crate) fn selects(&self, ns: &str, wref: &WorkloadRef, wl: &Workload) -> bool {
        let named = |want: &Option<String>, name: &str| want.as_deref().is_none_or(|w| w == name);
        match (self, wref) {
            (Self::Pod(want), WorkloadRef::Pod(name)) => named(want, name),
            (Self::ExternalWorkload(want), WorkloadRef::External(name)) => named(want, name),
            (Self::Namespace(want), _) => named(want, ns),
            (Self::Owner(_, want), _) => wl.labels.get("app").is_some_and(|app| named(want, app)),
            _ => false,
        }
    }
}

/// Why a listing selects no workload with an address: what was looked
/// for, where, and what exists there.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.words())]
pub(crate) struct NothingSelected {
    looked_for: String,
    namespace: Option<String>,
    /// Selected, but without an address (nothing to ask).
    unaddressed: Vec<String>,
    /// Every workload in the namespace (or everywhere).
    there: Vec<String>,
}

impl NothingSelected {
    fn words(&self) -> String {
        let place = match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in any namespace".into(),
        };
        if !self.unaddressed.is_empty() {
            return format!(
                "{} {place}: {} without an address (nothing to ask)",
                self.looked_for,
                self.unaddressed.join(", ")
            );
        }
        let there = match self.there.is_empty() {
            true => "the manifests declare no workloads there".to_string(),
            false => format!("workloads there: {}", self.there.join(", ")),
        };
        format!("no {} {place} ({there})", self.looked_for)
    }
}

/// Why `resource` in `namespace` selects no workload with an address.
pub(crate) fn nothing_selected(
    index: &Index,
    namespace: Option<&str>,
    resource: Option<&Resource>,
) -> NothingSelected {
    let in_ns = || {
        index
            .workloads()
            .filter(move |(ns, _, _)| namespace.is_none_or(|n| n == *ns))
    };
    let name = |ns: &str, w: &WorkloadRef| match namespace {
        Some(_) => w.to_string(),
        None => format!("{ns}/{w}"),
    };
    let unaddressed = in_ns()
        .filter(|(ns, w, wl)| resource.is_none_or(|r| r.selects(ns, w, wl)))
        .filter(|(_, _, wl)| wl.ips.is_empty())
        .map(|(ns, w, _)| name(ns, w))
        .collect();
    let mut there: Vec<String> = in_ns().map(|(ns, w, _)| name(ns, w)).collect();
    there.sort();
    NothingSelected {
        looked_for: match resource {
            Some(r @ Resource::Owner(_, Some(app))) => {
                format!("{r} (the workloads labelled app={app})")
            }
            Some(r) => r.to_string(),
            None => "workloads".into(),
        },
        namespace: namespace.map(String::from),
        unaddressed,
        there,
    }
}

/// One workload as named on the command line, before the manifests are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkloadName {
    /// `po/NAME` or `ew/NAME`.
    Exact(WorkloadRef),
    /// `deploy/NAME` (`sts`, `ds`): the workloads labelled `app=NAME`.
    App(OwnerKind, String),
    /// A bare NAME (the older form): the Pod or ExternalWorkload of that
    /// name, else the workloads labelled `app=NAME`.
    Any(String),
}

impl std::str::FromStr for WorkloadName {
    type Err = ResourceError;

    fn from_str(s: &str) -> Result<Self, ResourceError> {
        if !s.contains('/') {
            return match s.is_empty() {
                true => Err(ResourceError::Shape(s.into())),
                false => Ok(Self::Any(s.into())),
            };
        }
        match s.parse::<Resource>()? {
            Resource::Pod(Some(n)) => Ok(Self::Exact(WorkloadRef::Pod(n))),
            Resource::ExternalWorkload(Some(n)) => Ok(Self::Exact(WorkloadRef::External(n))),
            Resource::Owner(o, Some(n)) => Ok(Self::App(o, n)),
            _ => Err(ResourceError::NotOneWorkload(s.into())),
        }
    }
}

impl std::fmt::Display for WorkloadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(w) => write!(f, "{w}"),
            Self::App(o, n) => write!(f, "{}/{n}", o.as_str()),
            Self::Any(n) => f.write_str(n),
        }
    }
}

impl WorkloadName {
    /// What a controller (which knows workloads by name only) is asked
    /// for, in order: the object, else a Pod, then an ExternalWorkload of
    /// that name.
    pub(crate) fn candidates(&self) -> Vec<WorkloadRef> {
        match self {
            Self::Exact(w) => vec![w.clone()],
            Self::App(_, n) | Self::Any(n) => vec![
                WorkloadRef::Pod(n.clone()),
                WorkloadRef::External(n.clone()),
            ],
        }
    }
}

/// The namespace when neither the argument nor `-n` gives one.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// A workload argument and its namespace: `KIND/NAME` (or a bare `NAME`)
/// in `-n`'s namespace, or the older `NS/NAME` and `NS/KIND/NAME`, whose
/// namespace must agree with `-n` when both are given. The namespace is
/// None when neither gives one (the caller's default applies, usually
/// [`DEFAULT_NAMESPACE`]).
pub(crate) fn workload_arg(
    arg: &str,
    namespace: Option<&str>,
) -> Result<(Option<String>, WorkloadName), ResourceError> {
    let flag_ns = namespace.map(String::from);
    let parts: Vec<&str> = arg.split('/').collect();
    let (ns, name) = match parts[..] {
        [_] => return Ok((flag_ns, arg.parse()?)),
        [k, _] if kind(k).is_some() => return Ok((flag_ns, arg.parse()?)),
        [ns, name] => (ns, name.parse()?),
        [ns, k, n] => (ns, format!("{k}/{n}").parse()?),
        _ => return Err(ResourceError::Shape(arg.into())),
    };
    if ns.is_empty() {
        return Err(ResourceError::Shape(arg.into()));
    }
    match namespace {
        Some(flag) if flag != ns => Err(ResourceError::TwoNamespaces {
            input: arg.into(),
            in_arg: ns.into(),
            flag: flag.into(),
        }),
        _ => Ok((Some(ns.into()), name)),
    }
}

/// No workload answers to a name.
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

/// The workload `name` means in `ns` (of several labelled alike, the first
/// by kind and name: a Deployment's pods share their policy).
pub(crate) fn resolve(
    index: &Index,
    ns: &str,
    name: &WorkloadName,
) -> Result<WorkloadRef, NoSuchWorkload> {
    let in_ns: Vec<(&WorkloadRef, &Workload)> = index
        .workloads()
        .filter(|(n, _, _)| *n == ns)
        .map(|(_, w, wl)| (w, wl))
        .collect();
    let labelled = |app: &str| {
        in_ns
            .iter()
            .filter(|(_, wl)| wl.labels.get("app").is_some_and(|a| a == app))
            .min_by_key(|(r, _)| *r)
    };
    let found = match name {
        WorkloadName::Exact(w) => in_ns.iter().find(|(r, _)| *r == w),
        WorkloadName::App(_, app) => labelled(app),
        WorkloadName::Any(bare) => {
            let named = |r: &WorkloadRef| match r {
                WorkloadRef::Pod(n) | WorkloadRef::External(n) => n == bare,
            };
            in_ns
                .iter()
                .filter(|(r, _)| named(r))
                .min_by_key(|(r, _)| *r)
                .or_else(|| labelled(bare))
        }
    };
    found
        .map(|(r, _)| (*r).clone())
        .ok_or_else(|| NoSuchWorkload {
            looked_for: match name {
                WorkloadName::Exact(w) => w.to_string(),
                WorkloadName::App(_, app) => format!("{name} (none labelled app={app})"),
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

pub(crate) mod controller;
#[cfg(test)]
mod tests;
