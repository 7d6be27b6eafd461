//! What a check answers: PASS, WARN or FAIL ([`Status`]) in a
//! [`Group`], with a one-line detail, a one-line fix, the evidence it
//! looked at and the offenders it names ([`CheckResult`]). Every group's
//! file returns these; the runner in `mod.rs` prints them.

use serde::Serialize;

/// PASS, WARN or FAIL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// Which part of the mesh a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Group {
    /// The API server and its version (`check --kubernetes`).
    KubernetesApi,
    Pre,
    ControlPlane,
    Identity,
    Manifests,
    DataPlane,
    Compliance,
}

impl Group {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::KubernetesApi => "kubernetes-api",
            Self::Pre => "pre",
            Self::ControlPlane => "control-plane",
            Self::Identity => "identity",
            Self::Manifests => "manifests",
            Self::DataPlane => "data-plane",
            Self::Compliance => "compliance",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct CheckResult {
    pub(crate) group: Group,
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) status: Status,
    pub(crate) detail: String,
    pub(crate) fix: Option<String>,
    pub(crate) evidence: Vec<String>,
    pub(crate) offenders: Vec<String>,
}

impl CheckResult {
    fn new(group: Group, id: &str, title: &str, status: Status, detail: String) -> Self {
        Self {
            group,
            id: id.into(),
            title: title.into(),
            status,
            detail,
            fix: None,
            evidence: Vec::new(),
            offenders: Vec::new(),
        }
    }

    pub(crate) fn pass(group: Group, id: &str, title: &str, detail: impl Into<String>) -> Self {
        Self::new(group, id, title, Status::Pass, detail.into())
    }

    pub(crate) fn warn(
        group: Group,
        id: &str,
        title: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(group, id, title, Status::Warn, detail.into()).fix(fix)
    }

    pub(crate) fn fail(
        group: Group,
        id: &str,
        title: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(group, id, title, Status::Fail, detail.into()).fix(fix)
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub(crate) fn evidence(mut self, evidence: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(evidence);
        self
    }

    pub(crate) fn offenders(mut self, offenders: impl IntoIterator<Item = String>) -> Self {
        self.offenders.extend(offenders);
        self
    }
}

/// A WARN for a check with nothing to judge: never a silent PASS.
pub(crate) fn not_observed(id: &'static str, title: &'static str, what: &str) -> CheckResult {
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("not observed: {what}"),
        "pass --manifests DIR (the workloads' manifests) with the proxies running, then check again",
    )
}
