//! The CLI of `ztmesh viz stat | routes | edges`: arguments, which
//! workloads (from the manifests), and printing (`-o table|wide|json`).
//! The figures come from a [`Source`] (or, with `--controller`, from the
//! viz API); the rows and the table are [`super::model`]'s and
//! [`super::routes`]'.

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
    /// Only these workloads: `pod`, `pod/NAME`, `externalworkload[/NAME]`
    /// (`po`, `ew` for short) or `ns/NAME`.
    resource: Option<Resource>,
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The manifests directory the controller reads (workloads and their
    /// addresses): the CLI scrapes the proxies itself [default: ask the
    /// controller, which scrapes and aggregates].
    #[arg(long, conflicts_with = "controller")]
    manifests: Option<PathBuf>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// Read the figures from this Prometheus server (`http://host:port`)
    /// instead of scraping the proxies: PromQL over the last `--window`,
    /// answered at once (the window should span two scrapes or more).
    /// Workloads still come from `--manifests`.
    #[arg(long, conflicts_with = "controller", requires = "manifests")]
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
        anyhow::bail!(
            "no workloads with addresses in {}{}{}",
            manifests.display(),
            namespace
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default(),
            resource.map(|r| format!(" for {r}")).unwrap_or_default()
        );
    }
    Ok(workloads)
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
    /// Only these workloads: `pod`, `pod/NAME`, `externalworkload[/NAME]`
    /// (`po`, `ew` for short) or `ns/NAME`.
    resource: Option<Resource>,
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The manifests directory the controller reads (workloads and their addresses).
    #[arg(long)]
    manifests: PathBuf,
    /// The proxies' admin port.
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
    fn scrape(&self) -> anyhow::Result<Scraped> {
        let workloads = workloads(
            &self.manifests,
            self.namespace.as_deref(),
            self.resource.as_ref(),
            self.admin_port,
        )?;
        let scraped = scrape_all(&workloads)?;
        Ok((workloads, scraped))
    }
}

pub fn run_routes(args: SnapshotArgs) -> anyhow::Result<()> {
    let (workloads, scraped) = args.scrape()?;
    let mut rows = Vec::new();
    for ((ns, name, _), samples) in workloads.iter().zip(&scraped) {
        rows.extend(super::routes::route_rows(
            &format!("{ns}/{name}"),
            samples.as_deref().unwrap_or_default(),
        ));
    }
    match args.output {
        Output::Json => print!("{}", crate::table::json(&rows)),
        Output::Table | Output::Wide => crate::table::print(&super::routes::route_table(&rows)),
    }
    Ok(())
}

pub fn run_edges(args: SnapshotArgs) -> anyhow::Result<()> {
    let (workloads, scraped) = args.scrape()?;
    let rows = super::routes::edges(&workloads, &scraped);
    match args.output {
        Output::Json => print!("{}", crate::table::json(&rows)),
        Output::Table => crate::table::print(&super::routes::edge_table(&rows, false)),
        Output::Wide => crate::table::print(&super::routes::edge_table(&rows, true)),
    }
    Ok(())
}

pub fn run_stat(args: StatArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.manifests.is_none() {
        // The controller scrapes and aggregates.
        let addr = &args
            .controller
            .resolve(&crate::mesh_context::ProcessEnv)?
            .viz;
        let mut path = format!("/stat?window={}", args.window.as_secs_f64());
        if args.output == Output::Json {
            path.push_str("&output=json");
        }
        if let Some(ns) = &args.namespace {
            path.push_str(&format!("&namespace={ns}"));
        }
        if let Some(r) = &args.resource {
            path.push_str(&format!("&resource={r}"));
        }
        let text = runtime.block_on(super::api::get(
            addr,
            &path,
            args.window + Duration::from_secs(10),
        ))?;
        print!("{text}");
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
        Output::Json => print!("{}", crate::table::json(&rows)),
        Output::Table | Output::Wide => crate::table::print(&super::model::stat_table(&rows)),
    }
    Ok(())
}
