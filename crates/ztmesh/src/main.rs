//! `ztmesh`: the command-line entry to the mesh.
//!
//! Each subcommand lives in its own module: [`install`] (trust anchor,
//! issuer and token key; the CRDs and the control plane for Kubernetes), [`token`] (service-account tokens for local
//! workloads), [`controller`] (the long-running control plane, a thin call into
//! the ztmesh-controller library) and [`identity`] (certify and
//! inspect workload certificates by hand), [`diagnose`] (what the control
//! plane serves), [`demo`] (everything that works so far, end to end),
//! [`agent`] (the node-local SPIFFE Workload API), [`proxy_init`] (a pod's iptables rules), [`inject`] (the proxy into Kubernetes YAML) and [`app`] (a sample workload
//! and its clients). [`resource`] is how every command names workloads
//! (`KIND/NAME` with `-n NS`); [`mesh_context`] how it finds the controller. This file holds the command tree, shell completions
//! (`ztmesh completion`), each command's default log level, and a quiet
//! end when stdout's reader goes away ([`quiet_when_stdout_closes`]);
//! [`proxy_env`] is the proxy's environment, as `ztmesh proxy --help` lists it.

#![forbid(unsafe_code)]

mod agent;
mod app;
mod authz_cmd;
mod check;
mod controller;
mod demo;
mod diagnose;
mod diagnose_policy;
mod flags;
mod identity;
mod inject;
mod install;
mod mesh_context;
mod proxy_env;
mod proxy_init;
mod resource;
mod table;
mod token;
mod viz;

/// Where `#[arg(value_parser = crate::duration)]` finds it.
pub(crate) use flags::duration;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// ztmesh: a zero-trust service mesh. Every workload gets an identity from its
/// service account, every meshed connection is mutual TLS, and every request
/// is authorized against Linkerd-compatible policy.
#[derive(Parser)]
#[command(name = "ztmesh", version, propagate_version = true)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info`, `ztmesh=debug` [default: info for servers (controller, app serve); warn otherwise; the proxy reads LINKERD2_PROXY_LOG].
    #[arg(long, global = true, env = "ZTMESH_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the identity directory: trust anchor, identity issuer and token key.
    Install(install::Args),
    /// Service-account tokens for workloads in local mode.
    #[command(subcommand)]
    Token(token::Command),
    /// Run the control plane: identity (Certify; issuer files hot-reloaded),
    /// and with --manifests destination, inbound and outbound policy and
    /// the viz API, from a watched directory of Linkerd resources.
    Controller(Box<controller::Args>),
    /// A running workload's certificate chain, as its proxy presents it
    /// (`ztmesh identity po/NAME -n NS`, as `linkerd identity`); or obtain
    /// or inspect workload certificates by hand (debugging).
    Identity(identity::Args),
    /// What the mesh's traffic looks like, from the proxies' metrics.
    #[command(subcommand)]
    Viz(VizCommand),
    /// The servers, routes and authorizations that apply to a workload, as a table.
    Authz(authz_cmd::Args),
    /// Is the mesh healthy? PASS, WARN or FAIL per check, with a fix for
    /// each failure (exit 1 when any fails): controller APIs, trust anchor
    /// and issuer, manifests, proxies; `--pre`, `--proxy`, `--compliance`.
    Check(check::Args),
    /// Ask the control plane what it tells proxies (inbound policy), or
    /// whether a client would be allowed (`diagnose policy`).
    #[command(subcommand)]
    Diagnose(diagnose::Command),
    /// A whole local mesh, end to end on this machine: identity, booksapp
    /// behind real proxies, mTLS, the seed's policy, diagnose and viz.
    Demo(demo::Args),
    /// Serve the SPIFFE Workload API to this node's processes (a Unix
    /// socket), attesting each caller by its kernel credentials; SVIDs
    /// come from the controller, authenticated by a node token.
    #[command(after_long_help = agent::HELP)]
    Agent(agent::Args),
    /// Run the sidecar proxy (the same as the ztmesh-proxy binary), configured
    /// by linkerd2-proxy's LINKERD2_PROXY_* variables; ZTMESH_PROXY_MODE=explicit
    /// with ZTMESH_PROXY_APP_ADDR=IP:PORT runs it without iptables.
    #[command(after_long_help = proxy_env::HELP)]
    Proxy,
    /// Add the proxy to Kubernetes YAML (files, directories, `-`), as
    /// Linkerd's `inject`: annotate for the webhook, or --manual.
    Inject(Box<inject::InjectArgs>),
    /// Remove the proxy and Linkerd's metadata from Kubernetes YAML.
    Uninject(inject::UninjectArgs),
    /// Install (or --remove) the iptables rules that send a pod's TCP through
    /// its proxy; accepts the arguments Linkerd's injector passes to proxy-init.
    ProxyInit(proxy_init::Args),
    /// A sample workload and its clients (HTTP/1, HTTP/2, gRPC trailers,
    /// WebSocket, TCP echo), to put in the mesh and check every protocol.
    #[command(subcommand)]
    App(app::Command),
    /// Print a shell completion script to stdout, e.g.
    /// `source <(ztmesh completion bash)`.
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// --log (or ZTMESH_LOG) if given, else the command's default.
    fn log_filter(&self) -> &str {
        self.log
            .as_deref()
            .unwrap_or_else(|| default_log(&self.command))
    }
}

/// The log filter when neither --log nor ZTMESH_LOG is given: servers tell
/// what they listen on and what they serve; one-shot commands print their
/// answer and only warn.
fn default_log(command: &Command) -> &'static str {
    match command {
        Command::Controller(_) | Command::Agent(_) | Command::App(app::Command::Serve { .. }) => {
            "info"
        }
        // The proxy reads LINKERD2_PROXY_LOG (default: info) itself.
        Command::Proxy => "info",
        Command::Install(_)
        | Command::Token(_)
        | Command::Identity(_)
        | Command::Viz(_)
        | Command::Authz(_)
        | Command::Check(_)
        | Command::Diagnose(_)
        | Command::Demo(_)
        | Command::ProxyInit(_)
        | Command::Inject(_)
        | Command::Uninject(_)
        | Command::App(_)
        | Command::Completion { .. } => "warn",
    }
}

#[derive(Subcommand)]
enum VizCommand {
    /// Per workload: meshed, success rate, requests/s, p50/p95/p99 latency,
    /// share of mTLS, open connections, observed over a window.
    Stat(viz::stat::StatArgs),
    /// Per route, client side: requests, success rate, retries, timeouts,
    /// retries refused by the budget (since each proxy started).
    Routes(viz::stat::SnapshotArgs),
    /// Who connected to whom: client and server identities, secured (mTLS)
    /// or why not.
    Edges(viz::stat::SnapshotArgs),
    /// A live stream of a resource's requests, through the controller
    /// (which taps the proxies as the tap identity): method, path, status,
    /// latency, identities.
    Tap(viz::tap::TapArgs),
    /// The busiest paths of a resource, live (from tap, through the
    /// controller): source, destination, method, path, count, best, worst
    /// and last latency, success rate.
    Top(viz::tap::TopArgs),
    /// The web dashboard the controller serves: prints its URL.
    Dashboard(viz::dashboard::cli::DashboardArgs),
}

/// Ends the process quietly when a print to stdout fails because the
/// reader went away (`ztmesh viz stat | head -1`), as Unix tools do, rather
/// than with a panic message and status 101: std's `print!` panics on
/// EPIPE, since Rust ignores SIGPIPE. Every other panic is reported as
/// before. ([`table::print_text`] handles the same case without a panic.)
fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_stdout(message) {
            std::process::exit(table::CLOSED_STDOUT_EXIT);
        }
        default(info)
    }));
}

/// Whether a panic message is std's for a print to a closed stdout.
fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
        && message.to_ascii_lowercase().contains("broken pipe")
}

fn main() -> ExitCode {
    quiet_when_stdout_closes();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Proxy) {
        return ztmesh_proxy::run::main_from_env();
    }
    if let Command::Completion { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ztmesh", &mut script);
        table::print_text(&String::from_utf8_lossy(&script));
        return ExitCode::SUCCESS;
    }
    let log = cli.log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Install(args) => install::run(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Controller(args) => controller::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Identity(cmd) => identity::run(cmd),
        Command::Diagnose(cmd) => diagnose::run(cmd),
        Command::Authz(args) => authz_cmd::run(args),
        Command::Check(args) => check::run(args),
        Command::Viz(VizCommand::Stat(args)) => viz::run_stat(args),
        Command::Viz(VizCommand::Routes(args)) => viz::run_routes(args),
        Command::Viz(VizCommand::Edges(args)) => viz::run_edges(args),
        Command::Viz(VizCommand::Tap(args)) => viz::tap::run(args),
        Command::Viz(VizCommand::Top(args)) => viz::tap::run_top(args),
        Command::Viz(VizCommand::Dashboard(args)) => viz::dashboard::cli::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Proxy | Command::Completion { .. } => {
            unreachable!("handled before logging is set up")
        }
        Command::ProxyInit(args) => proxy_init::run(args),
        Command::Inject(args) => inject::run_inject(*args),
        Command::Uninject(args) => inject::run_uninject(args),
        Command::App(cmd) => app::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn only_a_print_to_a_closed_stdout_is_quiet() {
        let cases = [
            ("failed printing to stdout: Broken pipe (os error 32)", true),
            (
                "failed printing to stdout: No space left on device (os error 28)",
                false,
            ),
            (
                "failed printing to stderr: Broken pipe (os error 32)",
                false,
            ),
            ("called `Option::unwrap()` on a `None` value", false),
        ];
        for (message, quiet) in cases {
            assert_eq!(super::is_closed_stdout(message), quiet, "{message}");
        }
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand has a description and every argument a help line
    /// (`ztmesh X --help` never shows a bare flag).
    #[test]
    fn every_subcommand_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{}>", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ztmesh", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn servers_log_at_info_one_shot_commands_at_warn_and_log_wins() {
        let table: &[(&[&str], &str)] = &[
            (&["controller", "--identity-dir", "d"], "info"),
            (&["app", "serve"], "info"),
            (&["proxy"], "info"),
            (&["install", "--dir", "d"], "warn"),
            (
                &[
                    "token",
                    "create",
                    "--dir",
                    "d",
                    "-n",
                    "ns",
                    "--service-account",
                    "sa",
                ],
                "warn",
            ),
            (&["identity", "inspect", "f.pem"], "warn"),
            (&["viz", "stat", "--manifests", "m"], "warn"),
            (
                &[
                    "diagnose",
                    "inbound-policy",
                    "--workload",
                    "ns:p",
                    "--port",
                    "80",
                ],
                "warn",
            ),
            (&["demo"], "warn"),
            (&["proxy-init"], "warn"),
            (&["app", "tcp", "127.0.0.1:1"], "warn"),
            (&["completion", "bash"], "warn"),
            (&["check", "--compliance"], "warn"),
            // --log wins, before or after the subcommand.
            (&["--log", "debug", "install", "--dir", "d"], "debug"),
            (
                &["controller", "--identity-dir", "d", "--log", "ztmesh=debug"],
                "ztmesh=debug",
            ),
        ];
        for (args, want) in table {
            let cli = Cli::try_parse_from(std::iter::once(&"ztmesh").chain(args.iter()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.log_filter(), *want, "{args:?}");
        }
    }

    #[test]
    fn proxy_long_help_lists_the_key_variables() {
        let mut cli = Cli::command();
        let proxy = cli.find_subcommand_mut("proxy").expect("proxy subcommand");
        let help = proxy.render_long_help().to_string();
        for name in [
            "LINKERD2_PROXY_IDENTITY_DIR",
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            "ZTMESH_PROXY_MODE",
        ] {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
    }
}
