//! What happened to one object: [`Report`], rendered as Linkerd's CLI
//! prints it per object (`deployment "web" injected`), and the reasons an
//! object was skipped ([`SkipReason`], with Linkerd's sentences), which
//! the CLI's warnings and the webhook's log name.

use std::fmt;

/// What was done to an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The proxy was added, or (without `manual`) the pod template was
    /// marked for the webhook to add it.
    Injected,
    /// Only annotations were set (a Namespace, a Service).
    Annotated,
    /// The proxy and Linkerd's metadata were taken out.
    Uninjected,
    /// Left as it was.
    Skipped(Vec<SkipReason>),
}

/// Why an object was not injected (Linkerd's reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    HostNetwork,
    /// A Linkerd or Istio proxy is there already.
    SidecarExists,
    /// Not a workload (and not annotatable).
    UnsupportedResource,
    /// The pod (template) says `linkerd.io/inject: disabled`.
    InjectDisabled,
    /// Webhook: neither the namespace nor the pod enable injection.
    InjectNotEnabled,
    InvalidInjectAnnotationWorkload,
    InvalidInjectAnnotationNamespace,
    /// Uninject: nothing of Linkerd's was there.
    NotInjected,
    /// The document has no `kind`.
    MissingKind,
}

impl SkipReason {
    /// Linkerd's metric label for the reason.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::HostNetwork => "host_network_enabled",
            SkipReason::SidecarExists => "sidecar_already_exists",
            SkipReason::UnsupportedResource => "unsupported_resource",
            SkipReason::InjectDisabled => "injection_disable_annotation_present",
            SkipReason::InjectNotEnabled => "injection_enable_annotation_absent",
            SkipReason::InvalidInjectAnnotationWorkload => "invalid_inject_annotation_at_workload",
            SkipReason::InvalidInjectAnnotationNamespace => "invalid_inject_annotation_at_ns",
            SkipReason::NotInjected => "not_injected",
            SkipReason::MissingKind => "missing_kind",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::HostNetwork => "hostNetwork is enabled",
            SkipReason::SidecarExists => "pod has a sidecar injected already",
            SkipReason::UnsupportedResource => "this resource kind is unsupported",
            SkipReason::InjectDisabled => "pod has the annotation \"linkerd.io/inject:disabled\"",
            SkipReason::InjectNotEnabled => {
                "neither the namespace nor the pod have the annotation \"linkerd.io/inject:enabled\""
            }
            SkipReason::InvalidInjectAnnotationWorkload => {
                "invalid value for annotation \"linkerd.io/inject\" at workload"
            }
            SkipReason::InvalidInjectAnnotationNamespace => {
                "invalid value for annotation \"linkerd.io/inject\" at namespace"
            }
            SkipReason::NotInjected => "no proxy to remove",
            SkipReason::MissingKind => "document missing \"kind\" field",
        })
    }
}

/// One object's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The kind, lower-cased as Linkerd prints it (`deployment`).
    pub kind: String,
    /// The name (a pod's `generateName` when it has no name yet).
    pub name: String,
    pub outcome: Outcome,
    /// A container port uses UDP, which the proxy does not carry.
    pub udp: bool,
    /// Annotation values that were ignored, and why.
    pub warnings: Vec<String>,
}

impl Report {
    pub(crate) fn new(kind: &str, name: &str, outcome: Outcome) -> Report {
        Report {
            kind: kind.to_ascii_lowercase(),
            name: name.into(),
            outcome,
            udp: false,
            warnings: vec![],
        }
    }

    /// `kind/name`, as Linkerd's warnings name objects.
    pub fn res_name(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Why the object was skipped (empty unless it was).
    pub fn reasons(&self) -> &[SkipReason] {
        match &self.outcome {
            Outcome::Skipped(r) => r,
            _ => &[],
        }
    }

    /// The reasons as one sentence (`hostNetwork is enabled, ...`).
    pub fn reason_text(&self) -> String {
        let r: Vec<String> = self.reasons().iter().map(|r| r.to_string()).collect();
        r.join(", ")
    }
}

/// Linkerd's per-object line: `deployment "web" injected`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match &self.outcome {
            Outcome::Injected => "injected",
            Outcome::Annotated => "annotated",
            Outcome::Uninjected => "uninjected",
            Outcome::Skipped(r) if r.contains(&SkipReason::MissingKind) => {
                return f.write_str("document missing \"kind\" field, skipped");
            }
            Outcome::Skipped(_) => "skipped",
        };
        write!(f, "{} \"{}\" {verb}", self.kind, self.name)
    }
}

/// Linkerd's warning lines for a batch of inject reports (before the
/// per-object lines): host network, other sidecars, `inject: disabled`,
/// UDP, nothing injectable.
pub fn inject_warnings(reports: &[Report]) -> Vec<String> {
    let with = |reason: SkipReason| -> Vec<String> {
        reports
            .iter()
            .filter(|r| r.reasons().contains(&reason))
            .map(Report::res_name)
            .collect()
    };
    let mut out = vec![];
    let host = with(SkipReason::HostNetwork);
    if !host.is_empty() {
        out.push(format!(
            "‼ \"hostNetwork: true\" detected in {}",
            host.join(", ")
        ));
    }
    let sidecar = with(SkipReason::SidecarExists);
    if !sidecar.is_empty() {
        out.push(format!(
            "‼ known 3rd party sidecar detected in {}",
            sidecar.join(", ")
        ));
    }
    let disabled = with(SkipReason::InjectDisabled);
    if !disabled.is_empty() {
        out.push(format!(
            "‼ \"linkerd.io/inject: disabled\" annotation set on {}",
            disabled.join(", ")
        ));
    }
    let done = reports
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Injected | Outcome::Annotated));
    if !done {
        out.push("‼ no supported objects found".into());
    }
    let udp: Vec<String> = reports
        .iter()
        .filter(|r| r.udp)
        .map(Report::res_name)
        .collect();
    if !udp.is_empty() {
        let verb = if udp.len() > 1 { "use" } else { "uses" };
        out.push(format!("‼ {} {verb} \"protocol: UDP\"", udp.join(", ")));
    }
    for r in reports {
        out.extend(
            r.warnings
                .iter()
                .map(|w| format!("‼ {}: {w}", r.res_name())),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_linkerds() {
        let cases = [
            (Outcome::Injected, "deployment \"web\" injected"),
            (Outcome::Annotated, "deployment \"web\" annotated"),
            (Outcome::Uninjected, "deployment \"web\" uninjected"),
            (
                Outcome::Skipped(vec![SkipReason::HostNetwork]),
                "deployment \"web\" skipped",
            ),
            (
                Outcome::Skipped(vec![SkipReason::MissingKind]),
                "document missing \"kind\" field, skipped",
            ),
        ];
        for (outcome, line) in cases {
            assert_eq!(Report::new("Deployment", "web", outcome).to_string(), line);
        }
    }

    #[test]
    fn warnings_name_the_objects() {
        let mut udp = Report::new("Pod", "dns", Outcome::Injected);
        udp.udp = true;
        let reports = [
            Report::new(
                "Deployment",
                "a",
                Outcome::Skipped(vec![SkipReason::HostNetwork]),
            ),
            Report::new(
                "Deployment",
                "b",
                Outcome::Skipped(vec![SkipReason::InjectDisabled]),
            ),
            udp,
        ];
        assert_eq!(
            inject_warnings(&reports),
            [
                "‼ \"hostNetwork: true\" detected in deployment/a",
                "‼ \"linkerd.io/inject: disabled\" annotation set on deployment/b",
                "‼ pod/dns uses \"protocol: UDP\"",
            ]
        );
        assert_eq!(
            inject_warnings(&reports[..1]).last().unwrap(),
            "‼ no supported objects found"
        );
    }
}
