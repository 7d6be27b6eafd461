//! The CLI of `viz tap` and `viz top`: they ask the controller's viz API
//! (`GET /tap`, streamed lines of JSON) and hold no key; tap prints each
//! event as a line (or the JSON, with `-o json`), top keeps a table of
//! the busiest paths ([`super::top`]).

use super::event::TapLine;
use super::serve::{Item, TapQuery};
use crate::viz::resource::Resource;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::time::Duration;

#[derive(clap::Args)]
pub struct TapArgs {
    /// What to tap: `deploy/NAME`, `po/NAME`, `ew/NAME`, `ns/NAME`, or a
    /// kind alone for all of it (Linkerd's resource names).
    resource: Resource,
    /// The namespace [default: all].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// Only requests with this method.
    #[arg(long)]
    method: Option<String>,
    /// Only requests whose path starts with this.
    #[arg(long)]
    path: Option<String>,
    /// Only requests for this authority.
    #[arg(long)]
    authority: Option<String>,
    /// Stop after this many requests (per proxy).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Stop after this long (`30s`, `1m`).
    #[arg(long, value_parser = crate::flags::duration, default_value = "60s")]
    max_wait: Duration,
    /// How to print: `table` (a line per event) or `json` (the events as
    /// the viz API streams them).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: crate::table::Output,
}

impl TapArgs {
    fn query(&self) -> anyhow::Result<TapQuery> {
        let method = self
            .method
            .as_ref()
            .map(|m| http::Method::from_bytes(m.as_bytes()))
            .transpose()
            .map_err(|_| {
                anyhow::anyhow!(
                    "--method {:?} is not an HTTP method",
                    self.method.as_deref().unwrap_or_default()
                )
            })?;
        Ok(TapQuery {
            namespace: self.namespace.clone(),
            resource: Some(self.resource.clone()),
            limit: self.limit,
            max_wait: self.max_wait,
            method,
            path: self.path.clone(),
            authority: self.authority.clone(),
        })
    }
}

/// Streams `GET /tap` from the controller, handing each event to
/// `on_event` and calling `on_tick` every `tick`; fails when the
/// controller refuses, or when no proxy could be tapped.
fn observe(
    args: &TapArgs,
    tick: Option<Duration>,
    mut on_event: impl FnMut(&TapLine),
    mut on_tick: impl FnMut(),
) -> anyhow::Result<()> {
    let addr = args
        .controller
        .resolve(&crate::mesh_context::ProcessEnv)?
        .viz;
    let uri: http::Uri = format!("http://{addr}/tap?{}", args.query()?.to_query()).parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<Bytes>>();
        let rsp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
            .await
            .map_err(|_| anyhow::anyhow!("the viz API at {addr} did not answer within 10s"))?
            .map_err(|e| anyhow::anyhow!("the viz API at {addr}: {e}"))?;
        let status = rsp.status();
        let mut body = rsp.into_body();
        if status != http::StatusCode::OK {
            let text = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            anyhow::bail!(
                "the viz API at {addr} answered {status}: {}",
                String::from_utf8_lossy(&text).trim()
            );
        }
        let deadline = tokio::time::Instant::now() + args.max_wait + Duration::from_secs(5);
        let mut ticks = tokio::time::interval(tick.unwrap_or(args.max_wait));
        ticks.tick().await;
        let (mut buf, mut events, mut errors) = (Vec::new(), 0, Vec::new());
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout_at(deadline, body.frame()) => frame,
                _ = ticks.tick(), if tick.is_some() => { on_tick(); continue }
            };
            let Ok(Some(frame)) = frame else { break };
            let frame = frame.map_err(|e| anyhow::anyhow!("the viz API at {addr}: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                match serde_json::from_slice::<Item>(&line) {
                    Ok(Item::Event(e)) => {
                        events += 1;
                        on_event(e.as_ref());
                    }
                    Ok(Item::Error { workload, error }) => {
                        eprintln!("{workload}: {error}");
                        errors.push(workload);
                    }
                    Err(e) => anyhow::bail!(
                        "the viz API at {addr} sent a line that is not a tap event: {e}"
                    ),
                }
            }
        }
        if events == 0 && !errors.is_empty() {
            anyhow::bail!("no proxy could be tapped ({})", errors.join(", "));
        }
        Ok(())
    })
}

pub fn run(args: TapArgs) -> anyhow::Result<()> {
    let json = args.output == crate::table::Output::Json;
    observe(
        &args,
        None,
        |e| {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(e).expect("tap events serialize")
                );
            } else {
                println!("{}", e.describe());
            }
        },
        || {},
    )
}

/// `ztmesh viz top`: the busiest paths, refreshed while the tap runs.
#[derive(clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    tap: TapArgs,
    /// How often the table is redrawn.
    #[arg(long, value_parser = crate::flags::duration, default_value = "1s")]
    refresh: Duration,
}

pub fn run_top(args: TopArgs) -> anyhow::Result<()> {
    let top = std::cell::RefCell::new(super::top::Top::default());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let draw = |final_table: bool| {
        if tty && !final_table {
            print!("\x1b[2J\x1b[H");
        }
        if tty || final_table {
            crate::table::print(&top.borrow().table(20));
        }
    };
    observe(
        &args.tap,
        Some(args.refresh),
        |e| top.borrow_mut().record(e),
        || draw(false),
    )?;
    draw(true);
    Ok(())
}
