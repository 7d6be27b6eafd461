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
    #[arg(long, value_parser = crate::duration, default_value = "60s")]
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
        loop {
            match tokio::time::timeout_at(deadline, stream.message()).await {
                Ok(Ok(Some(event))) => {
                    if let Some(line) = describe(&event) {
                        println!("{line}");
                    }
                }
                Ok(Ok(None)) | Err(_) => return Ok(()),
                Ok(Err(s)) => anyhow::bail!("tap at {to}: {:?}: {}", s.code(), s.message()),
            }
        }
    })
}
