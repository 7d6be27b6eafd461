//! `ztmesh app`: the sample workload and its clients (see
//! `ztmesh-sample-app`), to put something in the mesh and check that every
//! protocol crosses it: HTTP/1 and HTTP/2, gRPC-style trailers, WebSocket
//! and opaque TCP.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::net::SocketAddr;
use std::time::Duration;
use ztmesh_sample_app::{client, server};

#[derive(Subcommand)]
pub enum Command {
    /// Serve HTTP/1.1 and HTTP/2 (plain answers, gRPC-style echo with
    /// trailers, WebSocket echo) and optionally a TCP echo, until interrupted.
    Serve {
        /// The name every answer carries (`{name}:{METHOD} {path}`, `x-served-by`).
        #[arg(long, default_value = "app")]
        name: String,
        /// The HTTP listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// A TCP echo listener (off unless set).
        #[arg(long)]
        tcp: Option<SocketAddr>,
        /// Share of plain HTTP requests answered 500, from 0 to 1.
        #[arg(long, default_value_t = 0.0, value_parser = fraction)]
        fail_rate: f64,
        /// Wait this long before answering plain HTTP requests (`250ms`, `6s`).
        #[arg(long, value_parser = crate::flags::duration, default_value = "0s")]
        delay: Duration,
        /// Answer plain HTTP requests 500 while this file exists (to make a
        /// backend fail and recover on demand).
        #[arg(long)]
        fail_while: Option<std::path::PathBuf>,
    },
    /// One gRPC-style unary call over HTTP/2: prints the echoed message,
    /// grpc-status and the serving instance; fails without trailers.
    Grpc {
        /// host:port of the server (or of a meshed address).
        addr: String,
        /// The message to echo.
        #[arg(long, default_value = "hello over grpc")]
        message: String,
        /// The gRPC method's path.
        #[arg(long, default_value = "/ztmesh.sample.Echo/Say")]
        path: String,
    },
    /// One WebSocket round trip: prints the echoed text.
    Ws {
        /// host:port of the server (or of a meshed address).
        addr: String,
        /// The text to echo.
        #[arg(long, default_value = "hello over websocket")]
        message: String,
        /// The WebSocket endpoint's path.
        #[arg(long, default_value = "/ws")]
        path: String,
    },
    /// Open-loop HTTP load at a fixed rate, bounded in count and time:
    /// prints `sent=N ok=N errors=N status_200=N ... p50_ms=… p99_ms=…`.
    Load {
        /// The URL (through the mesh, e.g. a Service's cluster IP).
        url: String,
        /// Method of every request.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Requests per second.
        #[arg(long, default_value_t = 10)]
        rps: u32,
        /// How long (`20s`, `500ms`).
        #[arg(long, value_parser = crate::flags::duration, default_value = "10s")]
        duration: Duration,
        /// Send through this HTTP proxy (IP:PORT, e.g. an explicit-mode
        /// proxy's outbound port), with absolute-form requests.
        #[arg(long)]
        proxy: Option<std::net::SocketAddr>,
    },
    /// One TCP echo round trip: sends the message, half-closes, prints the answer.
    Tcp {
        /// host:port of the TCP echo server (or of a meshed address).
        addr: String,
        /// The message to echo.
        #[arg(long, default_value = "hello over tcp")]
        message: String,
    },
}

/// A `--fail-rate` that is no fraction.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a fraction between 0 and 1")]
struct NotAFraction(String);

fn fraction(s: &str) -> Result<f64, NotAFraction> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(NotAFraction(s.into())),
    }
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cmd {
            Command::Serve {
                name,
                http,
                tcp,
                fail_rate,
                delay,
                fail_while,
            } => {
                let (http, tcp) = server::start(
                    http,
                    tcp,
                    server::Behaviour {
                        name: name.clone(),
                        fail_rate,
                        delay,
                        fail_while,
                    },
                )
                .await
                .context("starting the sample app")?;
                match tcp {
                    Some(tcp) => eprintln!("{name}: HTTP on {http}, TCP echo on {tcp}"),
                    None => eprintln!("{name}: HTTP on {http}"),
                }
                tokio::signal::ctrl_c().await?;
                Ok(())
            }
            Command::Grpc {
                addr,
                message,
                path,
            } => {
                let reply = client::grpc_call(&addr, &path, message.as_bytes()).await?;
                println!("message: {}", String::from_utf8_lossy(&reply.message));
                println!("grpc-status: {}", reply.grpc_status);
                println!("served-by: {}", reply.served_by.as_deref().unwrap_or("-"));
                if reply.grpc_status != "0" {
                    bail!("the call failed with grpc-status {}", reply.grpc_status);
                }
                Ok(())
            }
            Command::Ws {
                addr,
                message,
                path,
            } => {
                println!("{}", client::websocket_echo(&addr, &path, &message).await?);
                Ok(())
            }
            Command::Load {
                url,
                method,
                rps,
                duration,
                proxy,
            } => {
                let method = http::Method::from_bytes(method.as_bytes())
                    .map_err(|_| anyhow::anyhow!("{method:?} is not an HTTP method"))?;
                let r = client::load(&url, method, rps, duration, proxy).await?;
                let statuses: Vec<String> = r
                    .statuses
                    .iter()
                    .map(|(s, n)| format!("status_{s}={n}"))
                    .chain(
                        r.served_by
                            .iter()
                            .map(|(by, n)| format!("served_by_{by}={n}")),
                    )
                    .collect();
                println!(
                    "sent={} ok={} errors={} {} p50_ms={:.2} p99_ms={:.2}",
                    r.sent,
                    r.ok(),
                    r.errors,
                    statuses.join(" "),
                    r.percentile_ms(0.5),
                    r.percentile_ms(0.99)
                );
                Ok(())
            }
            Command::Tcp { addr, message } => {
                let out = client::tcp_echo(&addr, message.as_bytes()).await?;
                println!("{}", String::from_utf8_lossy(&out));
                Ok(())
            }
        }
    })
}
