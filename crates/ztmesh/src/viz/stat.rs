//! The CLI of `ztmesh viz stat | routes | edges`: arguments, which
//! workloads (`KIND[/NAME]` and `-n`), and printing (`-o table|wide|json`).
//! Without `--manifests` the controller's viz API answers (`/stat`,
//! `/edges`, `/routes`, found by `--controller` or the context file); with
//! it the CLI reads the workloads from the manifests and the figures from a
//! [`Source`]. The rows and the tables are [`super::model`]'s and
//! [`super::routes`]', the same either way.

use super::model::workloads_in;
use super::resource::Resource;
use super::scrape::Sample;
use super::source::{self, Source};
use crate::table::Output;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct StatArgs {
    /// Only these workloads, `KIND[/NAME]`: `deploy/NAME` (the workloads
    /// labelled app=NAME; also `sts`, `ds`), `po[/NAME]`, `ew[/NAME]` or `ns/NAME`.
    resource: Option<Resource>,
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The manifests directory the controller reads (workloads and their
    /// addresses): the CLI scrapes the proxies itself [default: ask the
    /// controller, which scrapes and aggregates].
    #[arg(long)]
    manifests: Option<PathBuf>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// Read the figures from this Prometheus server (`http://host:port`)
    /// instead of scraping the proxies: PromQL over the last `--window`,
    /// answered at once (the window should span two scrapes or more).
    /// Workloads still come from `--manifests`.
    #[arg(long, requires = "manifests")]
    prometheus: Option<super::prometheus::Prometheus>,
    /// How long to observe (`5s`, `30s`); with --prometheus, how far back
    /// to look.
    #[arg(long, value_parser = crate::flags::duration, default_value = "5s")]
    window: Duration,
    /// The proxies' admin port.
    #[arg(long, default_value_t = 4191)]
    admin_port: u16,
    /// How to print: `table`, `wide` (every column) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: crate::table::Output,
}

/// (namespace, name, admin address) of every workload with an address.
fn workloads(
    manifests: &std::path::Path,
    namespace: Option<&str>,
    resource: Option<&Resource>,
    admin_port: u16,
) -> anyhow::Result<Vec<(String, String, SocketAddr)>> {
    let (index, _) = crate::diagnose_policy::policy_index(manifests)?;
    let workloads = workloads_in(&index, namespace, resource, admin_port);
    if workloads.is_empty() {
        let why = crate::resource::nothing_selected(&index, namespace, resource);
        anyhow::bail!("{why} (manifests {})", manifests.display());
    }
    Ok(workloads)
}

/// GET `/{what}` from the controller's viz API (found by `controller`),
/// with the selection and output as query parameters; its answer.
fn ask_controller(
    controller: &crate::mesh_context::ControllerArg,
    what: &str,
    selection: (Option<&str>, Option<&Resource>),
    output: Output,
    extra: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let addr = controller.resolve(&crate::mesh_context::ProcessEnv)?.viz;
    let mut path = format!("/{what}?output={}{extra}", output.name());
    if let Some(ns) = selection.0 {
        path.push_str(&format!("&namespace={ns}"));
    }
    if let Some(r) = selection.1 {
        path.push_str(&format!("&resource={r}"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(super::api::get(&addr, &path, timeout))
}

fn scrape_all(
    workloads: &[(String, String, SocketAddr)],
) -> anyhow::Result<Vec<Option<Vec<Sample>>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(source::scrape_once(workloads)))
}

/// Arguments of `viz routes` and `viz edges`.
#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// Only these workloads, `KIND[/NAME]`: `deploy/NAME` (the workloads
    /// labelled app=NAME; also `sts`, `ds`), `po[/NAME]`, `ew[/NAME]` or `ns/NAME`.
    resource: Option<Resource>,
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The manifests directory the controller reads (workloads and their
    /// addresses): the CLI scrapes the proxies itself [default: ask the
    /// controller].
    #[arg(long)]
    manifests: Option<PathBuf>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// The proxies' admin port (with --manifests).
    #[arg(long, default_value_t = 4191)]
    admin_port: u16,
    /// How to print: `table`, `wide` (every column) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: crate::table::Output,
}

/// Workloads and one scrape of each.
type Scraped = (Vec<(String, String, SocketAddr)>, Vec<Option<Vec<Sample>>>);

impl SnapshotArgs {
    /// The selected workloads, each scraped once.
    fn scrape(&self, manifests: &std::path::Path) -> anyhow::Result<Scraped> {
        let workloads = workloads(
            manifests,
            self.namespace.as_deref(),
            self.resource.as_ref(),
            self.admin_port,
        )?;
        let scraped = scrape_all(&workloads)?;
        Ok((workloads, scraped))
    }

    /// The controller's answer to `/{what}` (without --manifests).
    fn ask(&self, what: &str) -> anyhow::Result<String> {
        let selection = (self.namespace.as_deref(), self.resource.as_ref());
        let timeout = Duration::from_secs(15);
        ask_controller(&self.controller, what, selection, self.output, "", timeout)
    }
}

pub fn run_routes(args: SnapshotArgs) -> anyhow::Result<()> {
    let text = match &args.manifests {
        None => args.ask("routes")?,
        Some(manifests) => {
            let (workloads, scraped) = args.scrape(manifests)?;
            let rows = super::routes::all_route_rows(&workloads, &scraped);
            super::routes::render_routes(&rows, args.output)
        }
    };
    crate::table::print_text(&text);
    Ok(())
}

pub fn run_edges(args: SnapshotArgs) -> anyhow::Result<()> {
    let text = match &args.manifests {
        None => args.ask("edges")?,
        Some(manifests) => {
            let (workloads, scraped) = args.scrape(manifests)?;
            super::routes::render_edges(&super::routes::edges(&workloads, &scraped), args.output)
        }
    };
    crate::table::print_text(&text);
    Ok(())
}

pub fn run_stat(args: StatArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.manifests.is_none() {
        // The controller scrapes and aggregates.
        let text = ask_controller(
            &args.controller,
            "stat",
            (args.namespace.as_deref(), args.resource.as_ref()),
            args.output,
            &format!("&window={}", args.window.as_secs_f64()),
            args.window + Duration::from_secs(10),
        )?;
        crate::table::print_text(&text);
        return Ok(());
    }
    let Some(manifests) = &args.manifests else {
        unreachable!("without --manifests the controller answered above")
    };
    let workloads = workloads(
        manifests,
        args.namespace.as_deref(),
        args.resource.as_ref(),
        args.admin_port,
    )?;
    let source = match &args.prometheus {
        Some(server) => Source::Prometheus {
            server: server.clone(),
            admin_port: args.admin_port,
        },
        None => {
            eprintln!(
                "observing {} workload(s) for {:?}...",
                workloads.len(),
                args.window
            );
            Source::Scrape {
                admin_port: args.admin_port,
            }
        }
    };
    let rows = runtime.block_on(source.stat_rows(&workloads, args.window))?;
    match args.output {
        Output::Json => crate::table::print_text(&crate::table::json(&rows)),
        Output::Table | Output::Wide => crate::table::print(&super::model::stat_table(&rows)),
    }
    Ok(())
}
