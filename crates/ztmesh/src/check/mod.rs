//! `ztmesh check`: is the mesh healthy, and is it compliant?
//!
//! Every check yields one typed [`CheckResult`] (PASS, WARN or FAIL, a
//! one-line detail, a one-line fix when it did not pass, the evidence it
//! looked at and the offenders it found), grouped by [`Group`]. The
//! layout: [`mesh`] finds the mesh (the context file `ztmesh controller`
//! and `demo --keep` write, or flags) and observes it once (each proxy's
//! `/ready`, `/metrics` and the chain it presents in a TLS handshake,
//! [`chain`]); the groups are pure functions of those observations, one
//! file each: [`pre`] (`--pre`), [`control_plane`], [`trust`] (anchors
//! and issuer), [`manifests`], [`proxy`] (the data plane, `--proxy`),
//! [`compliance`] and [`hardening`] (`--compliance`). Another group is
//! a new [`Group`] variant and a new file whose function returns
//! `Vec<CheckResult>`, called from [`run_checks`]. The report prints as a
//! table or, with `-o json`, as [`Report`], the same JSON the viz API's
//! `GET /compliance` answers ([`compliance_answer`]). With
//! `--kubernetes`, [`kube`] makes the same modes' checks of a cluster
//! through its API server.

pub(crate) mod chain;
mod compliance;
mod control_plane;
mod grants;
mod hardening;
mod kube;
mod manifests;
pub(crate) mod mesh;
mod pre;
mod proxy;
mod result;
mod sockets;
mod trust;
pub(crate) mod workloads;

pub(crate) use proxy::exported_anchors;
pub(crate) use result::{CheckResult, Group, Status};

use crate::table::Output;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Only what must hold before the mesh starts: ports free, identity
    /// material present and valid, iptables available, clock sane.
    #[arg(long, conflicts_with_all = ["proxy", "compliance"])]
    pre: bool,
    /// Only the data-plane checks, one per workload: proxy ready, on a
    /// certificate from the current issuer, trusting the current anchors.
    #[arg(long, conflicts_with = "compliance")]
    proxy: bool,
    /// The compliance report: the invariants (INV-1, INV-6, INV-7,
    /// INV-10) and the hardening checklist, with evidence and offenders.
    #[arg(long)]
    compliance: bool,
    /// Check a Kubernetes cluster through its API server (the kubeconfig's
    /// context) instead of a local mesh.
    #[arg(long)]
    kubernetes: bool,
    /// With --kubernetes: the kubeconfig [default: KUBECONFIG, ~/.kube/config,
    /// or the in-cluster service account].
    #[arg(long, requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,
    /// With --kubernetes: the kubeconfig context [default: its current one].
    #[arg(long, requires = "kubernetes")]
    context: Option<String>,
    /// With --kubernetes: the control plane's namespace.
    #[arg(
        short = 'L',
        long,
        visible_alias = "control-plane-namespace",
        default_value = "linkerd",
        requires = "kubernetes"
    )]
    linkerd_namespace: String,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// The identity directory (ca.crt and the issuer) [default: the one the
    /// controller in the context file reads].
    #[arg(long)]
    identity_dir: Option<PathBuf>,
    /// The manifests directory (workloads, policy) [default: the one the
    /// controller in the context file reads].
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Only the workloads of this namespace (with --kubernetes: the pods
    /// --proxy and --compliance look at).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The proxies' admin port.
    #[arg(long, default_value_t = 4191)]
    admin_port: u16,
    /// The proxies' inbound port (where their certificate chain is read).
    #[arg(long, default_value_t = 4143)]
    inbound_port: u16,
    /// With --pre: the addresses the control plane will bind, which must
    /// be free [default: the controller's defaults].
    #[arg(
        long = "listen",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080,127.0.0.1:8086,127.0.0.1:8090,127.0.0.1:8084"
    )]
    listen: Vec<std::net::SocketAddr>,
    /// With --compliance: the Prometheus alert rules you deploy, checked
    /// for alerts on TLS failures [default: the rules shipped with ztmesh].
    #[arg(long)]
    alert_rules: Option<PathBuf>,
    /// How long each probe (API call, scrape, handshake) may take.
    #[arg(long, value_parser = crate::flags::duration, default_value = "5s")]
    timeout: Duration,
    /// How to print: `table`, `wide` (with evidence and offenders) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
}

/// Counts per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Summary {
    pub(crate) pass: usize,
    pub(crate) warn: usize,
    pub(crate) fail: usize,
}

/// What `-o json` prints (and `GET /compliance` answers).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Report {
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) summary: Summary,
}

impl Report {
    pub(crate) fn new(checks: Vec<CheckResult>) -> Self {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
            }
        }
        Self { checks, summary }
    }

    pub(crate) fn failed(&self) -> bool {
        self.summary.fail > 0
    }

    pub(crate) fn to_json(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).expect("a report serialises");
        out.push('\n');
        out
    }

    /// Grouped as `linkerd check` prints: a heading per group, a line per
    /// check, the fix under anything that did not pass; `wide` adds the
    /// evidence and the offenders.
    pub(crate) fn render(&self, wide: bool) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.title.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let mut group = None;
        for c in &self.checks {
            if group != Some(c.group) {
                if group.is_some() {
                    out.push('\n');
                }
                group = Some(c.group);
                let name = c.group.name();
                out.push_str(&format!("{name}\n{}\n", "-".repeat(name.len())));
            }
            let line = format!("{}  {:<width$}  {}", c.status.word(), c.title, c.detail);
            out.push_str(line.trim_end());
            out.push('\n');
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      fix: {fix}\n"));
            }
            if wide || c.status != Status::Pass {
                for o in &c.offenders {
                    out.push_str(&format!("      offender: {o}\n"));
                }
            }
            if wide {
                for e in &c.evidence {
                    out.push_str(&format!("      evidence: {e}\n"));
                }
            }
        }
        let s = self.summary;
        out.push_str(&format!(
            "\nStatus check results: {} passed, {} warning(s), {} failed\n",
            s.pass, s.warn, s.fail
        ));
        out
    }
}

/// Some check failed (exit 1; the report says which).
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
pub(crate) struct Failed(usize);

/// Which checks a run makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Control plane, identity, manifests, and the data plane summarised.
    Mesh,
    /// `--pre`.
    Pre,
    /// `--proxy`: the data plane, per workload.
    Proxy,
    /// `--compliance`.
    Compliance,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mode = match (args.pre, args.proxy, args.compliance) {
        (true, _, _) => Mode::Pre,
        (_, true, _) => Mode::Proxy,
        (_, _, true) => Mode::Compliance,
        _ => Mode::Mesh,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = if args.kubernetes {
        let target = kube::KubeTarget {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            namespace: args.linkerd_namespace.clone(),
            workloads: args.namespace.clone(),
            admin_port: args.admin_port,
            inbound_port: args.inbound_port,
            timeout: args.timeout,
        };
        let mode = match mode {
            Mode::Pre => kube::KubeMode::Pre,
            Mode::Mesh => kube::KubeMode::ControlPlane,
            Mode::Proxy => kube::KubeMode::Proxy,
            Mode::Compliance => kube::KubeMode::Compliance,
        };
        Report::new(runtime.block_on(kube::run_checks(&target, mode)))
    } else {
        runtime.block_on(run_checks(&args, mode))
    };
    match args.output {
        Output::Json => print!("{}", report.to_json()),
        Output::Table => print!("{}", report.render(false)),
        Output::Wide => print!("{}", report.render(true)),
    }
    if report.failed() {
        return Err(Failed(report.summary.fail).into());
    }
    Ok(())
}

/// Observes the mesh and runs `mode`'s checks.
pub(crate) async fn run_checks(args: &Args, mode: Mode) -> Report {
    let target = mesh::Target::find(
        &args.controller,
        args.identity_dir.clone(),
        args.manifests.clone(),
        &crate::mesh_context::ProcessEnv,
    );
    let probe = mesh::Probe {
        admin_port: args.admin_port,
        inbound_port: args.inbound_port,
        timeout: args.timeout,
        namespace: args.namespace.clone(),
    };
    let now = std::time::SystemTime::now();
    if mode == Mode::Pre {
        let observed = pre::observe(&target, &args.listen).await;
        return Report::new(pre::checks(&observed, now));
    }
    let trust = mesh::TrustFiles::read(target.identity_dir.as_deref());
    let mut checks = Vec::new();
    let target = match target.resolved {
        Ok(t) => t,
        Err(e) => {
            checks.push(CheckResult::fail(
                Group::ControlPlane,
                "controller-found",
                "controller found",
                e.to_string(),
                "pass --controller HOST:PORT, or start `ztmesh controller` or `ztmesh demo --keep`",
            ));
            return Report::new(checks);
        }
    };
    let mesh = mesh::observe(&target, &trust, &probe).await;
    match mode {
        Mode::Pre => unreachable!("answered above"),
        Mode::Mesh => {
            checks.extend(control_plane::checks(&mesh.apis));
            checks.extend(trust::checks(&trust, now));
            checks.extend(manifests::checks(&mesh));
            checks.extend(proxy::summary(&mesh, &trust, now));
        }
        Mode::Proxy => checks.extend(proxy::per_workload(&mesh, &trust, now)),
        Mode::Compliance => {
            let rules = match &args.alert_rules {
                None => hardening::AlertRules::shipped(),
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(text) => hardening::AlertRules {
                        source: path.display().to_string(),
                        text,
                    },
                    Err(e) => hardening::AlertRules {
                        source: format!("{} (unreadable: {e})", path.display()),
                        text: String::new(),
                    },
                },
            };
            checks.extend(compliance_checks(&mesh, &rules, now))
        }
    }
    Report::new(checks)
}

/// The compliance group: the invariants, then the hardening checklist.
fn compliance_checks(
    mesh: &mesh::Observed,
    rules: &hardening::AlertRules,
    now: std::time::SystemTime,
) -> Vec<CheckResult> {
    let mut checks = compliance::checks(mesh);
    checks.extend(hardening::checks(mesh, rules, now));
    checks
}

/// Where the proxies answer: their admin port (`/ready`, `/metrics`) and
/// inbound port (where their chain is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProxyPorts {
    pub(crate) admin: u16,
    pub(crate) inbound: u16,
}

impl Default for ProxyPorts {
    fn default() -> Self {
        Self {
            admin: 4191,
            inbound: 4143,
        }
    }
}

/// The compliance report of the mesh `target` describes.
pub(crate) async fn compliance_report(
    target: &mesh::Resolved,
    ports: ProxyPorts,
    timeout: Duration,
) -> Report {
    let probe = mesh::Probe {
        admin_port: ports.admin,
        inbound_port: ports.inbound,
        timeout,
        namespace: None,
    };
    let trust = mesh::TrustFiles::read(target.identity_dir.as_deref());
    let mesh = mesh::observe(target, &trust, &probe).await;
    Report::new(compliance_checks(
        &mesh,
        &hardening::AlertRules::shipped(),
        std::time::SystemTime::now(),
    ))
}

/// What this process's controller serves `GET /compliance` from (one
/// controller per process: `ztmesh controller`).
#[derive(Clone, Debug)]
pub(crate) enum Served {
    /// The mesh its services describe, and the proxies' ports.
    Mesh(mesh::Resolved, ProxyPorts),
    /// It runs without the policy or destination service.
    Unavailable,
}

static SERVED: std::sync::OnceLock<Served> = std::sync::OnceLock::new();

/// Records what the controller serves, for `GET /compliance`.
pub(crate) fn serve_compliance_for(served: Served) {
    let _ = SERVED.set(served);
}

/// A report is reused this long: each one probes every workload.
const COMPLIANCE_CACHE: Duration = Duration::from_secs(30);

/// The last report and when it was made; the lock is held while one is
/// made, so concurrent requests share it.
static LAST_REPORT: tokio::sync::Mutex<Option<(tokio::time::Instant, String)>> =
    tokio::sync::Mutex::const_new(None);

/// `GET /compliance` when no mesh is recorded: 501 for a controller
/// without the policy or destination service, 503 before it has recorded
/// what it serves.
fn no_mesh_answer(served: Option<&Served>) -> (http::StatusCode, String) {
    match served {
        Some(Served::Unavailable) => (
            http::StatusCode::NOT_IMPLEMENTED,
            "{\"error\":\"compliance needs the policy and destination services (run the controller with --manifests)\"}\n".into(),
        ),
        _ => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"the controller has not finished starting\"}\n".into(),
        ),
    }
}

/// The viz API's `GET /compliance`: the report as JSON (made at most every
/// [`COMPLIANCE_CACHE`]), else [`no_mesh_answer`].
pub(crate) async fn compliance_answer() -> (http::StatusCode, String) {
    let Some(Served::Mesh(target, ports)) = SERVED.get() else {
        return no_mesh_answer(SERVED.get());
    };
    let mut last = LAST_REPORT.lock().await;
    if let Some((at, json)) = last.as_ref()
        && at.elapsed() < COMPLIANCE_CACHE
    {
        return (http::StatusCode::OK, json.clone());
    }
    let json = compliance_report(target, *ports, Duration::from_secs(2))
        .await
        .to_json();
    *last = Some((tokio::time::Instant::now(), json.clone()));
    (http::StatusCode::OK, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A controller without policy or destination answers 501 for good,
    /// not 503 "not finished starting" forever.
    #[test]
    fn compliance_without_a_mesh_says_why() {
        let cases = [
            (
                None,
                http::StatusCode::SERVICE_UNAVAILABLE,
                "not finished starting",
            ),
            (
                Some(Served::Unavailable),
                http::StatusCode::NOT_IMPLEMENTED,
                "needs the policy and destination services",
            ),
        ];
        for (served, code, words) in cases {
            let (got, body) = no_mesh_answer(served.as_ref());
            assert_eq!(got, code, "{served:?}");
            assert!(body.contains(words), "{body}");
            serde_json::from_str::<serde_json::Value>(&body).expect("JSON");
        }
    }

    fn sample() -> Report {
        Report::new(vec![
            CheckResult::pass(Group::ControlPlane, "a", "identity API", "answered"),
            CheckResult::warn(
                Group::Compliance,
                "INV-6",
                "every edge is mTLS",
                "1 plaintext edge",
                "mesh the client",
            )
            .offenders(["(plain) -> booksapp/authors".to_string()])
            .evidence(["authors: 3 inbound connections".to_string()]),
            CheckResult::fail(Group::Compliance, "b", "issuer", "expired", "rotate it"),
        ])
    }

    #[test]
    fn the_summary_counts_each_status_and_any_fail_fails() {
        let r = sample();
        assert_eq!(
            r.summary,
            Summary {
                pass: 1,
                warn: 1,
                fail: 1
            }
        );
        assert!(r.failed());
        assert!(!Report::new(vec![sample().checks[1].clone()]).failed());
    }

    #[test]
    fn json_has_the_agreed_shape() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let c = &v["checks"][1];
        assert_eq!(c["group"], "compliance");
        assert_eq!(c["id"], "INV-6");
        assert_eq!(c["status"], "warn");
        assert_eq!(c["fix"], "mesh the client");
        assert_eq!(c["offenders"][0], "(plain) -> booksapp/authors");
        assert_eq!(c["evidence"][0], "authors: 3 inbound connections");
        assert!(v["checks"][0]["fix"].is_null());
        assert_eq!(v["checks"][0]["group"], "control-plane");
        assert_eq!(
            v["summary"],
            serde_json::json!({"pass":1,"warn":1,"fail":1})
        );
    }

    #[test]
    fn the_table_names_fixes_and_offenders_and_wide_adds_evidence() {
        let r = sample();
        let t = r.render(false);
        assert!(t.contains("PASS  identity API"), "{t}");
        assert!(t.contains("      fix: rotate it"), "{t}");
        assert!(t.contains("offender: (plain) -> booksapp/authors"), "{t}");
        assert!(!t.contains("evidence:"), "{t}");
        assert!(t.contains("1 passed, 1 warning(s), 1 failed"), "{t}");
        assert!(r.render(true).contains("evidence: authors: 3 inbound"));
    }
}
