//! The `ztmesh-proxy` binary: reads linkerd2-proxy's environment variables,
//! obtains and keeps the workload's identity. Exits 64 naming every missing
//! or invalid setting.

use std::process::ExitCode;
use ztmesh_proxy::config::OsEnv;
use ztmesh_proxy::identity::{Documents, IdentityConfig, IdentityDaemon};

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let filter = std::env::var("LINKERD2_PROXY_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match IdentityConfig::from_env(&OsEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ztmesh-proxy: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let documents = match &config.dir {
        Some(dir) if dir.join("key.p8").exists() => Documents::load(dir),
        _ => Documents::generate(&config.local_name),
    };
    let documents = match documents {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ztmesh-proxy: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let roots = match ztmesh_tls::roots_from_pem(config.trust_anchors_pem.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ztmesh-proxy: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let channel = match ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
            addr: config.svc_addr.clone(),
            server_name: config.svc_name.clone(),
            roots: Some(roots),
        }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ztmesh-proxy: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let client = linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel);
        let daemon = match IdentityDaemon::new(&config, documents, client) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("ztmesh-proxy: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        tokio::select! {
            _ = daemon.run() => ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down");
                ExitCode::SUCCESS
            }
        }
    })
}
