//! `ztmesh inject` and `ztmesh uninject`: Kubernetes YAML in (files,
//! directories, `-` for stdin; multi-document streams and `List`s), the
//! same documents out in the same order on stdout, and Linkerd's report
//! per input on stderr. The work is ztmesh-inject's; this module reads
//! the inputs, turns flags into the annotations Linkerd's flags become,
//! and finds the trust anchors `--manual` needs: `--identity-trust-anchors-file`,
//! else `--dir`'s `ca.crt`, else the cluster's ConfigMap
//! `linkerd-identity-trust-roots` (kube-rs, KUBECONFIG), else the local
//! controller's identity directory (the mesh context).

use crate::mesh_context::{self, ProcessEnv};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ztmesh_inject::{Config, IptablesMode, Report, yaml};

const INJECT_HELP: &str = "\
Without --manual, as Linkerd's `inject`, pod templates are only annotated
linkerd.io/inject: enabled (with the flags' configuration annotations), and
the proxy injector webhook adds the proxy when the pods are created. With
--manual the output carries the proxy itself: the linkerd-proxy container,
linkerd-init (`ztmesh proxy-init`) or a native sidecar, the identity and
token volumes, Linkerd's labels and annotations. Injecting is idempotent:
objects are uninjected first. Namespaces are annotated linkerd.io/inject:
enabled; Services get --opaque-ports; other objects pass through.

The trust anchors (for --manual) come from --identity-trust-anchors-file,
else --dir's ca.crt, else the cluster's ConfigMap
<namespace>/linkerd-identity-trust-roots (KUBECONFIG, unless --ignore-cluster),
else the local controller's identity directory.

Examples:
  kubectl get deploy -n my-app -o yaml | ztmesh inject - | kubectl apply -f -
  ztmesh inject --manual --dir ./identity deploy/ | kubectl apply -f -";

const UNINJECT_HELP: &str = "\
Removes what inject added: the linkerd-proxy and linkerd-init containers,
their volumes and every linkerd.io/ label and annotation (but
linkerd.io/inject: disabled). Control-plane components are left alone.

Example:
  kubectl get deploy -n my-app -o yaml | ztmesh uninject - | kubectl apply -f -";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Yaml,
    Json,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Inputs {
    /// Files, directories (their .yaml, .yml and .json files, recursively)
    /// or `-` for stdin.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Output,
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = INJECT_HELP)]
pub(crate) struct InjectArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Put the proxy in the output itself instead of annotating pod
    /// templates for the webhook.
    #[arg(long)]
    manual: bool,
    /// The control plane's namespace.
    #[arg(long, visible_alias = "linkerd-namespace", default_value = "linkerd")]
    control_plane_namespace: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The identity trust domain.
    #[arg(long, default_value = "cluster.local")]
    identity_trust_domain: String,
    /// PEM trust anchors (`linkerd.io/trust-root-sha256` and the proxy's anchors).
    #[arg(long)]
    identity_trust_anchors_file: Option<PathBuf>,
    /// An identity directory (`ztmesh install --dir`) to read ca.crt from.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Do not read the trust anchors from the cluster.
    #[arg(long)]
    ignore_cluster: bool,
    /// The kubeconfig to read the cluster's trust anchors with [default: KUBECONFIG, ~/.kube/config].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The proxy image, without its tag (config.linkerd.io/proxy-image).
    #[arg(long)]
    proxy_image: Option<String>,
    /// The proxy image's tag (config.linkerd.io/proxy-version).
    #[arg(long)]
    proxy_version: Option<String>,
    /// The image linkerd-init runs, with its tag [default: the proxy's] (--manual only).
    #[arg(long)]
    init_image: Option<String>,
    /// proxy-init's iptables (--manual only).
    #[arg(long, value_enum, default_value = "legacy")]
    iptables_mode: IptablesArg,
    /// The proxy's log filter (config.linkerd.io/proxy-log-level).
    #[arg(long)]
    proxy_log_level: Option<String>,
    /// Run the proxy as a native sidecar: an init container with
    /// restartPolicy Always (config.linkerd.io/proxy-enable-native-sidecar).
    #[arg(long)]
    enable_native_sidecar: bool,
    /// The proxy's default inbound policy (config.linkerd.io/default-inbound-policy).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ztmesh_inject::config::INBOUND_POLICIES))]
    default_inbound_policy: Option<String>,
    /// Inject in ingress mode (linkerd.io/inject: ingress).
    #[arg(long)]
    ingress: bool,
    /// Inbound ports proxy-init does not redirect (config.linkerd.io/skip-inbound-ports).
    #[arg(long)]
    skip_inbound_ports: Option<String>,
    /// Outbound ports proxy-init does not redirect (config.linkerd.io/skip-outbound-ports).
    #[arg(long)]
    skip_outbound_ports: Option<String>,
    /// Ports served without protocol detection (config.linkerd.io/opaque-ports).
    #[arg(long)]
    opaque_ports: Option<String>,
    /// The proxy's CPU request (config.linkerd.io/proxy-cpu-request).
    #[arg(long)]
    proxy_cpu_request: Option<String>,
    /// The proxy's CPU limit (config.linkerd.io/proxy-cpu-limit).
    #[arg(long)]
    proxy_cpu_limit: Option<String>,
    /// The proxy's memory request (config.linkerd.io/proxy-memory-request).
    #[arg(long)]
    proxy_memory_request: Option<String>,
    /// The proxy's memory limit (config.linkerd.io/proxy-memory-limit).
    #[arg(long)]
    proxy_memory_limit: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IptablesArg {
    Legacy,
    Nft,
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = UNINJECT_HELP)]
pub(crate) struct UninjectArgs {
    #[command(flatten)]
    inputs: Inputs,
}

impl InjectArgs {
    /// The annotations the flags become (Linkerd's `getOverrideAnnotations`).
    fn overrides(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |key: &str, value: Option<&String>| {
            if let Some(v) = value {
                out.insert(format!("config.linkerd.io/{key}"), v.clone());
            }
        };
        put("proxy-image", self.proxy_image.as_ref());
        put("proxy-version", self.proxy_version.as_ref());
        put("proxy-log-level", self.proxy_log_level.as_ref());
        put(
            "default-inbound-policy",
            self.default_inbound_policy.as_ref(),
        );
        put("skip-inbound-ports", self.skip_inbound_ports.as_ref());
        put("skip-outbound-ports", self.skip_outbound_ports.as_ref());
        put("opaque-ports", self.opaque_ports.as_ref());
        put("proxy-cpu-request", self.proxy_cpu_request.as_ref());
        put("proxy-cpu-limit", self.proxy_cpu_limit.as_ref());
        put("proxy-memory-request", self.proxy_memory_request.as_ref());
        put("proxy-memory-limit", self.proxy_memory_limit.as_ref());
        if self.enable_native_sidecar {
            put("proxy-enable-native-sidecar", Some(&"true".to_string()));
        }
        if self.ingress {
            out.insert("linkerd.io/inject".into(), "ingress".into());
        }
        out
    }

    fn config(&self, trust_anchors_pem: String) -> Config {
        Config {
            control_plane_namespace: self.control_plane_namespace.clone(),
            cluster_domain: self.cluster_domain.clone(),
            identity_trust_domain: self.identity_trust_domain.clone(),
            trust_anchors_pem,
            init_image: self.init_image.clone(),
            iptables_mode: match self.iptables_mode {
                IptablesArg::Legacy => IptablesMode::Legacy,
                IptablesArg::Nft => IptablesMode::Nft,
            },
            manual: self.manual,
            overrides: self.overrides(),
            ..Config::default()
        }
    }
}

pub(crate) fn run_inject(args: InjectArgs) -> anyhow::Result<()> {
    let inputs = read_inputs(&args.inputs.inputs)?;
    let anchors = if args.manual {
        trust_anchors(&args)?
    } else {
        // Annotating needs no anchors (the webhook has them).
        String::new()
    };
    let cfg = args.config(anchors);
    for (name, text) in inputs {
        let docs = yaml::parse_stream(&text).with_context(|| format!("reading {name}"))?;
        let mut out = vec![];
        let mut reports = vec![];
        for doc in &docs {
            let (v, r) = ztmesh_inject::inject_document(doc, &cfg)
                .with_context(|| format!("injecting {name}"))?;
            out.push(v);
            reports.extend(r);
        }
        crate::table::print_text(&render(&out, args.inputs.output)?);
        eprint!("{}", inject_report(&reports));
    }
    Ok(())
}

pub(crate) fn run_uninject(args: UninjectArgs) -> anyhow::Result<()> {
    for (name, text) in read_inputs(&args.inputs.inputs)? {
        let docs = yaml::parse_stream(&text).with_context(|| format!("reading {name}"))?;
        let mut out = vec![];
        let mut reports = vec![];
        for doc in &docs {
            let (v, r) = ztmesh_inject::uninject_document(doc)
                .with_context(|| format!("uninjecting {name}"))?;
            out.push(v);
            reports.extend(r);
        }
        crate::table::print_text(&render(&out, args.inputs.output)?);
        let mut report = String::from("\n");
        for r in &reports {
            report.push_str(&format!("{r}\n"));
        }
        report.push('\n');
        eprint!("{report}");
    }
    Ok(())
}

fn render(docs: &[serde_json::Value], output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Yaml => yaml::render_stream(docs)?,
        Output::Json => docs
            .iter()
            .map(|d| format!("{d}\n"))
            .collect::<Vec<_>>()
            .concat(),
    })
}

/// Linkerd's report: a blank line, the warnings (and a blank line after
/// them), one line per object, a blank line.
fn inject_report(reports: &[Report]) -> String {
    let mut out = String::from("\n");
    let warnings = ztmesh_inject::inject_warnings(reports);
    for w in &warnings {
        out.push_str(w);
        out.push('\n');
    }
    if !warnings.is_empty() {
        out.push('\n');
    }
    for r in reports {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Each input's name and text: stdin, a file, or a directory's YAML and
/// JSON files in path order.
fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = vec![];
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            out.push(("stdin".to_string(), text));
        } else if input.is_dir() {
            let mut files = vec![];
            walk(input, &mut files)?;
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .yaml, .yml or .json file", input.display());
            }
            for f in files {
                out.push((f.display().to_string(), read_file(&f)?));
            }
        } else {
            out.push((input.display().to_string(), read_file(input)?));
        }
    }
    Ok(out)
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The trust anchors for `--manual`, from the first source that has them.
fn trust_anchors(args: &InjectArgs) -> anyhow::Result<String> {
    if let Some(file) = &args.identity_trust_anchors_file {
        return read_file(file);
    }
    if let Some(dir) = &args.dir {
        return read_file(&dir.join("ca.crt"));
    }
    let mut tried = vec![];
    if !args.ignore_cluster {
        match cluster_anchors(&args.control_plane_namespace, args.kubeconfig.as_deref()) {
            Ok(pem) => return Ok(pem),
            Err(e) => tried.push(format!("the cluster: {e:#}")),
        }
    }
    match mesh_context::load(&ProcessEnv) {
        Ok(Some(ctx)) if ctx.identity_dir.is_some() => {
            let dir = ctx.identity_dir.expect("checked");
            match read_file(&dir.join("ca.crt")) {
                Ok(pem) => return Ok(pem),
                Err(e) => tried.push(format!("the local controller's identity directory: {e:#}")),
            }
        }
        Ok(_) => tried.push("the local controller: no context with an identity directory".into()),
        Err(e) => tried.push(format!("the local controller: {e}")),
    }
    bail!(
        "--manual needs the trust anchors: pass --identity-trust-anchors-file FILE or --dir DIR \
         (written by `ztmesh install --dir DIR`), or make the cluster's ConfigMap {}/linkerd-identity-trust-roots \
         reachable (KUBECONFIG). Tried {}",
        args.control_plane_namespace,
        tried.join("; ")
    )
}

/// `ca-bundle.crt` of the ConfigMap `linkerd-identity-trust-roots`.
fn cluster_anchors(namespace: &str, kubeconfig: Option<&Path>) -> anyhow::Result<String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let get = async {
            let client = ztmesh_kube::client(kubeconfig).await?;
            let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client, namespace);
            let name = ztmesh_kube::issuer_secret::TRUST_ROOTS;
            let cm = cms
                .get_opt(name)
                .await
                .with_context(|| format!("reading ConfigMap {namespace}/{name}"))?
                .with_context(|| format!("ConfigMap {namespace}/{name} does not exist"))?;
            cm.data
                .and_then(|mut d| d.remove("ca-bundle.crt"))
                .with_context(|| format!("ConfigMap {namespace}/{name} has no ca-bundle.crt"))
        };
        tokio::time::timeout(Duration::from_secs(10), get)
            .await
            .context("the API server did not answer within 10s")?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InjectArgs,
    }

    #[test]
    fn flags_become_linkerds_annotations() {
        let cli = Cli::try_parse_from([
            "inject",
            "-",
            "--proxy-log-level",
            "debug",
            "--enable-native-sidecar",
            "--ingress",
            "--default-inbound-policy",
            "deny",
        ])
        .unwrap();
        let want: BTreeMap<String, String> = [
            ("config.linkerd.io/proxy-log-level", "debug"),
            ("config.linkerd.io/proxy-enable-native-sidecar", "true"),
            ("config.linkerd.io/default-inbound-policy", "deny"),
            ("linkerd.io/inject", "ingress"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(cli.args.overrides(), want);
        assert!(Cli::try_parse_from(["inject", "-", "--default-inbound-policy", "all"]).is_err());
    }

    #[test]
    fn directories_are_read_recursively_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for (f, text) in [
            ("b.yaml", "b: 1\n"),
            ("a.yml", "a: 1\n"),
            ("sub/c.json", "{\"c\": 1}"),
            ("notes.txt", "skip me"),
        ] {
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        let got: Vec<String> = read_inputs(&[dir.path().to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        assert_eq!(got, ["a: 1\n", "b: 1\n", "{\"c\": 1}"]);
    }
}
