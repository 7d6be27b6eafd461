//! `ztmesh viz tap`: a live stream of the requests one proxy handles, from
//! its Tap API on the control port (4190). The proxy serves tap over mTLS
//! and only to the tap identity, so this command holds that identity: it
//! issues itself a short-lived certificate for it with the identity
//! directory's issuer (like the controller's own identities), and verifies
//! the proxy's certificate names the identity it expects.

use anyhow::Context;
use linkerd2_proxy_api::tap::{
    self as proto, observe_request::r#match as m, tap_client::TapClient,
};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct TapArgs {
    /// The proxy's control address (IP:4190).
    #[arg(long)]
    to: std::net::SocketAddr,
    /// The identity the proxy must prove.
    #[arg(long)]
    proxy_identity: String,
    /// The identity directory (`ztmesh install`): its issuer signs this
    /// command's tap certificate.
    #[arg(long)]
    identity_dir: PathBuf,
    /// The tap identity (the proxy's LINKERD2_PROXY_TAP_SVC_NAME).
    #[arg(
        long,
        default_value = "linkerd-tap.linkerd.serviceaccount.identity.linkerd.cluster.local"
    )]
    tap_identity: String,
    /// Only requests with this method.
    #[arg(long)]
    method: Option<String>,
    /// Only requests whose path starts with this.
    #[arg(long)]
    path: Option<String>,
    /// Only requests for this authority.
    #[arg(long)]
    authority: Option<String>,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Stop after this long (`30s`).
    #[arg(long, value_parser = crate::flags::duration, default_value = "60s")]
    max_wait: Duration,
}

fn http_match(m: m::http::Match) -> proto::observe_request::Match {
    proto::observe_request::Match {
        r#match: Some(m::Match::Http(m::Http { r#match: Some(m) })),
    }
}

/// The observer's match from the flags (all of them).
fn filter(args: &TapArgs) -> anyhow::Result<Option<proto::observe_request::Match>> {
    use m::http::string_match::Match as S;
    let mut all = Vec::new();
    if let Some(method) = &args.method {
        let method = http::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("--method {method:?} is not an HTTP method"))?;
        all.push(http_match(m::http::Match::Method(method.into())));
    }
    if let Some(p) = &args.path {
        all.push(http_match(m::http::Match::Path(m::http::StringMatch {
            r#match: Some(S::Prefix(p.clone())),
        })));
    }
    if let Some(a) = &args.authority {
        all.push(http_match(m::http::Match::Authority(
            m::http::StringMatch {
                r#match: Some(S::Exact(a.clone())),
            },
        )));
    }
    if all.is_empty() {
        return Ok(None);
    }
    Ok(Some(proto::observe_request::Match {
        r#match: Some(m::Match::All(m::Seq { matches: all })),
    }))
}

/// One line per event, as `linkerd viz tap` prints them.
pub fn describe(e: &proto::TapEvent) -> Option<String> {
    use proto::tap_event::{Event, ProxyDirection, http::Event as H};
    let addr = |a: &Option<linkerd2_proxy_api::net::TcpAddress>| {
        a.and_then(|a| std::net::SocketAddr::try_from(a).ok())
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let id = |m: &Option<proto::tap_event::EndpointMeta>| {
        m.as_ref()
            .and_then(|m| m.labels.get("tls_identity").cloned())
            .unwrap_or_else(|| "-".into())
    };
    let proxy = if e.proxy_direction == ProxyDirection::Inbound as i32 {
        "in "
    } else {
        "out"
    };
    let head = format!(
        "proxy={proxy} src={} dst={} src_id={} dst_id={}",
        addr(&e.source),
        addr(&e.destination),
        id(&e.source_meta),
        id(&e.destination_meta)
    );
    let ms = |d: &Option<prost_types::Duration>| {
        d.and_then(|d| Duration::try_from(d).ok())
            .map(|d| format!("{}µs", d.as_micros()))
            .unwrap_or_default()
    };
    let Event::Http(http) = e.event.as_ref()?;
    Some(match http.event.as_ref()? {
        H::RequestInit(r) => {
            let method = r
                .method
                .clone()
                .and_then(|m| http::Method::try_from(m).ok())
                .map(|m| m.to_string())
                .unwrap_or_default();
            format!(
                "req id={} {head} :method={method} :authority={} :path={}",
                r.id.map(|i| i.stream).unwrap_or(0),
                r.authority,
                r.path
            )
        }
        H::ResponseInit(r) => format!(
            "rsp id={} {head} :status={} latency={}",
            r.id.map(|i| i.stream).unwrap_or(0),
            r.http_status,
            ms(&r.since_request_init)
        ),
        H::ResponseEnd(r) => format!(
            "end id={} {head} duration={}",
            r.id.map(|i| i.stream).unwrap_or(0),
            ms(&r.since_request_init)
        ),
    })
}

pub fn run(args: TapArgs) -> anyhow::Result<()> {
    observe(
        args,
        None,
        |event| {
            if let Some(line) = describe(event) {
                println!("{line}");
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

#[derive(Default)]
struct PathStats {
    requests: u64,
    ok: u64,
    latencies_us: Vec<u64>,
}

pub fn run_top(args: TopArgs) -> anyhow::Result<()> {
    use proto::tap_event::{Event, ProxyDirection, http::Event as H};
    use std::cell::RefCell;
    use std::collections::HashMap;
    let stats: RefCell<HashMap<(String, String, String), PathStats>> = RefCell::default();
    let streams: RefCell<HashMap<u64, (String, String, String)>> = RefCell::default();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let source = args.tap.to.to_string();
    let draw = |final_table: bool| {
        let stats = stats.borrow();
        let mut rows: Vec<_> = stats.iter().collect();
        rows.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
        let mut table = vec![
            [
                "SOURCE",
                "DIRECTION",
                "AUTHORITY",
                "PATH",
                "COUNT",
                "SUCCESS",
                "P50",
                "MAX",
            ]
            .map(String::from),
        ];
        for ((dir, authority, path), s) in rows.into_iter().take(20) {
            let mut l = s.latencies_us.clone();
            l.sort_unstable();
            let in_ms = |us: Option<&u64>| crate::table::ms(us.map(|&v| v as f64 / 1000.0));
            let p50 = in_ms(l.get(l.len() / 2));
            let max = in_ms(l.last());
            table.push([
                source.clone(),
                dir.clone(),
                authority.clone(),
                path.clone(),
                s.requests.to_string(),
                if s.requests > 0 {
                    format!("{:.1}%", s.ok as f64 * 100.0 / s.requests as f64)
                } else {
                    "-".into()
                },
                p50,
                max,
            ]);
        }
        if tty && !final_table {
            print!("\x1b[2J\x1b[H");
        }
        if tty || final_table {
            crate::table::print(&table);
        }
    };
    observe(
        args.tap,
        Some(args.refresh),
        |event| {
            let dir = if event.proxy_direction == ProxyDirection::Inbound as i32 {
                "inbound"
            } else {
                "outbound"
            };
            let Some(Event::Http(http)) = event.event.as_ref() else {
                return;
            };
            match http.event.as_ref() {
                Some(H::RequestInit(r)) => {
                    let key = (dir.to_string(), r.authority.clone(), r.path.clone());
                    stats.borrow_mut().entry(key.clone()).or_default().requests += 1;
                    streams
                        .borrow_mut()
                        .insert(r.id.map(|i| i.stream).unwrap_or(0), key);
                }
                Some(H::ResponseInit(r)) => {
                    let id = r.id.map(|i| i.stream).unwrap_or(0);
                    if let Some(key) = streams.borrow_mut().remove(&id)
                        && let Some(s) = stats.borrow_mut().get_mut(&key)
                    {
                        if r.http_status < 500 {
                            s.ok += 1;
                        }
                        if let Some(d) = r
                            .since_request_init
                            .and_then(|d| Duration::try_from(d).ok())
                        {
                            s.latencies_us.push(d.as_micros() as u64);
                        }
                    }
                }
                _ => {}
            }
        },
        || draw(false),
    )?;
    draw(true);
    Ok(())
}

/// Connects to the tap API as the tap identity and hands every event to
/// `on_event` (calling `on_tick` every `tick`) until the limit or the
/// deadline.
fn observe(
    args: TapArgs,
    tick: Option<Duration>,
    mut on_event: impl FnMut(&proto::TapEvent),
    mut on_tick: impl FnMut(),
) -> anyhow::Result<()> {
    let filter = filter(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // A certificate for the tap identity, from the install's issuer.
        let dir = &args.identity_dir;
        let issuer = ztmesh_identity::Issuer::load_dir(dir, SystemTime::now())
            .with_context(|| format!("loading the issuer from {}", dir.display()))?;
        let anchors = std::fs::read(dir.join("ca.crt"))
            .with_context(|| format!("reading {}", dir.join("ca.crt").display()))?;
        let (sa, rest) = args
            .tap_identity
            .split_once('.')
            .context("--tap-identity is not SA.NS.serviceaccount.identity.NS.DOMAIN")?;
        let ns = rest.split('.').next().unwrap_or_default();
        let domain = rest
            .split_once(".serviceaccount.identity.")
            .and_then(|(_, d)| d.split_once('.'))
            .map(|(_, d)| d)
            .context("--tap-identity is not SA.NS.serviceaccount.identity.NS.DOMAIN")?;
        let trust = ztmesh_identity::TrustDomain::new(ns, domain)?;
        let ca = ztmesh_identity::Ca::new(issuer, trust.clone(), Duration::from_secs(3600));
        let name = trust.identity(ns, sa)?;
        let mut own = crate::controller::own_identity::OwnIdentity::new(name)?;
        own.refresh(&ca, SystemTime::now())?;
        let roots = ztmesh_tls::roots_from_pem(&anchors)?;
        let config = ztmesh_tls::mesh_client_config(
            roots,
            own.store(),
            &args.proxy_identity,
            ztmesh_tls::TlsVersions::Tls13Only,
            &[b"h2"],
        )?;
        let (to, server) = (args.to, ztmesh_tls::server_name(&args.proxy_identity)?);
        let connector = tower::service_fn(move |_: http::Uri| {
            let (config, server) = (config.clone(), server.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(to).await?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let channel = tonic::transport::Endpoint::from_static("http://tap")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(connector)
            .await
            .with_context(|| format!("connecting to the tap API at {to}"))?;
        let mut client = TapClient::new(channel);
        let mut stream = client
            .observe(proto::ObserveRequest {
                limit: args.limit,
                r#match: filter,
                extract: None,
            })
            .await
            .map_err(|s| anyhow::anyhow!("tap at {to}: {:?}: {}", s.code(), s.message()))?
            .into_inner();
        let deadline = tokio::time::Instant::now() + args.max_wait;
        let mut ticks = tokio::time::interval(tick.unwrap_or(args.max_wait));
        ticks.tick().await;
        loop {
            tokio::select! {
                message = tokio::time::timeout_at(deadline, stream.message()) => match message {
                    Ok(Ok(Some(event))) => on_event(&event),
                    Ok(Ok(None)) | Err(_) => return Ok(()),
                    Ok(Err(s)) => anyhow::bail!("tap at {to}: {:?}: {}", s.code(), s.message()),
                },
                _ = ticks.tick(), if tick.is_some() => on_tick(),
            }
        }
    })
}
