//! `ztmesh diagnose policy`: would this client be allowed, and why?
//!
//! The policy comes from a running controller (InboundServerPolicies
//! GetPort) or straight from a manifests directory (the controller's own
//! index); either way it is converted exactly as the proxy converts it and
//! decided by the proxy's own function (ztmesh-authz). The first line is
//! `ALLOW` or `DENY` with the reason; the trace follows. Exit status: 0
//! allow, 1 deny, 2 when the question itself is wrong (unknown workload,
//! bad identity, unreadable manifests).

use anyhow::{Context, bail};
use linkerd2_proxy_api::inbound::{
    self as proto, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::net::IpAddr;
use std::path::PathBuf;
use ztmesh_authz::{Client, decide_connection, decide_request};

#[derive(clap::Args)]
pub struct PolicyArgs {
    /// The client: a mesh identity (books.booksapp.serviceaccount.identity.linkerd.cluster.local
    /// or a spiffe:// ID) for a meshed client, or an IP address for an unmeshed one.
    #[arg(long)]
    from: String,
    /// The client's address when --from is an identity.
    #[arg(long, default_value = "10.0.0.1")]
    from_ip: IpAddr,
    /// The server: NS/WORKLOAD:PORT, where WORKLOAD is a Pod name or
    /// externalworkload/NAME.
    #[arg(long)]
    to: String,
    /// Method of the request.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path and query of the request.
    #[arg(long, default_value = "/")]
    path: String,
    /// A request header, K=V (repeatable).
    #[arg(long = "header", value_name = "K=V")]
    headers: Vec<String>,
    /// Ask about an opaque TCP connection rather than an HTTP request.
    #[arg(long)]
    tcp: bool,
    /// host:port of a running controller's policy service.
    #[arg(
        long,
        conflicts_with = "manifests",
        required_unless_present = "manifests"
    )]
    controller: Option<String>,
    /// A manifests directory, read as the controller reads it.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// The identity the policy service must prove over TLS.
    #[arg(
        long,
        default_value = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
    )]
    policy_svc_name: String,
    /// Trust anchors, needed when the controller address is not loopback.
    #[arg(long)]
    trust_anchors: Option<PathBuf>,
}

/// What went wrong with the question (exit 2), as opposed to a denial.
struct BadQuestion(anyhow::Error);

pub fn run(args: PolicyArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(diagnose(&args)) {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(BadQuestion(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(2)
        }
    }
}

/// Parses NS/WORKLOAD:PORT into (namespace, workload JSON for PortSpec, port).
pub fn parse_target(to: &str) -> anyhow::Result<(String, String, u16)> {
    let (ns, rest) = to
        .split_once('/')
        .with_context(|| format!("--to {to:?} is not NS/WORKLOAD:PORT"))?;
    let (workload, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("--to {to:?} has no :PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("--to {to:?}: {port:?} is not a port"))?;
    if ns.is_empty() || workload.is_empty() {
        bail!("--to {to:?} is not NS/WORKLOAD:PORT");
    }
    let json = match workload.strip_prefix("externalworkload/") {
        Some(name) => format!(r#"{{"ns":"{ns}","external_workload":"{name}"}}"#),
        None => format!(r#"{{"ns":"{ns}","pod":"{workload}"}}"#),
    };
    Ok((ns.to_string(), json, port))
}

/// The client: an IP (plaintext) or an identity (mesh TLS from --from-ip).
fn client(args: &PolicyArgs) -> anyhow::Result<Client<'_>> {
    if let Ok(ip) = args.from.parse::<IpAddr>() {
        return Ok(Client {
            ip,
            tls: false,
            identity: None,
        });
    }
    let valid = if let Some(rest) = args.from.strip_prefix("spiffe://") {
        rest.contains('/') && !rest.starts_with('/')
    } else {
        args.from.contains('.') && ztmesh_tls::server_name(&args.from).is_ok()
    };
    if !valid {
        bail!(
            "--from {:?} is neither an IP address nor a mesh identity (a DNS-like name such as books.booksapp.serviceaccount.identity.linkerd.cluster.local, or a spiffe:// ID)",
            args.from
        );
    }
    Ok(Client {
        ip: args.from_ip,
        tls: true,
        identity: Some(&args.from),
    })
}

async fn diagnose(args: &PolicyArgs) -> Result<bool, BadQuestion> {
    let bad = BadQuestion;
    let client = client(args).map_err(bad)?;
    let (ns, workload, port) = parse_target(&args.to).map_err(bad)?;
    let server = match (&args.manifests, &args.controller) {
        (Some(dir), _) => from_manifests(dir, &ns, &workload, port).map_err(bad)?,
        (None, Some(addr)) => from_controller(args, addr, &workload, port)
            .await
            .map_err(bad)?,
        (None, None) => return Err(bad(anyhow::anyhow!("pass --controller or --manifests"))),
    };
    let policy = ztmesh_grpc::authz::server_policy(&server).map_err(|e| {
        bad(anyhow::anyhow!(
            "the policy for {} is invalid: {e}",
            args.to
        ))
    })?;
    let mut trace = Vec::new();
    let who = match client.identity {
        Some(id) => format!("{id} (mesh TLS from {})", client.ip),
        None => format!("{} (no TLS)", client.ip),
    };
    let decision = if args.tcp || policy.protocol == ztmesh_authz::Protocol::Opaque {
        decide_connection(&policy, client, Some(&mut trace)).map(|p| {
            format!(
                "ALLOW: {who} may connect to {}: authorization {} admits it",
                args.to,
                p.authorization.label()
            )
        })
    } else {
        let mut req = http::Request::builder()
            .method(args.method.as_str())
            .uri(args.path.as_str());
        for h in &args.headers {
            let (k, v) = h
                .split_once('=')
                .ok_or_else(|| bad(anyhow::anyhow!("--header {h:?} is not K=V")))?;
            req = req.header(k, v);
        }
        let req = req
            .body(())
            .map_err(|e| bad(anyhow::anyhow!("the request is not valid HTTP: {e}")))?;
        decide_request(&policy, client, &req, Some(&mut trace)).map(|p| {
            format!(
                "ALLOW: {who} may {} {} on {}: route {}/{}, authorization {}{}",
                args.method,
                args.path,
                args.to,
                p.route.map(|r| r.0).unwrap_or("-"),
                p.route_name(),
                p.authorization.label(),
                if p.audit() {
                    " (audit: this would be denied once audit mode ends)"
                } else {
                    ""
                }
            )
        })
    };
    let allowed = decision.is_ok();
    match decision {
        Ok(line) => println!("{line}"),
        Err(denial) => println!("DENY: {who}: {denial}"),
    }
    for line in trace {
        println!("  {line}");
    }
    Ok(allowed)
}

/// The policy index the controller would build from `dir`, and the
/// workload the question names.
pub fn policy_index(
    dir: &std::path::Path,
    workload_json: &str,
) -> anyhow::Result<(ztmesh_policy::Index, ztmesh_policy::WorkloadRef)> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut store = ztmesh_store::ManifestDir::new(dir.to_path_buf());
    let changes = store.scan();
    for refused in &changes.refused {
        eprintln!(
            "warning: {} refused (see `ztmesh controller --check`)",
            refused.file.display()
        );
    }
    let mut index = ztmesh_policy::Index::new(ztmesh_policy::ClusterInfo::default());
    for resource in changes.apply {
        index.apply(resource);
    }
    let (_, workload) =
        ztmesh_grpc::inbound::parse_workload(workload_json).map_err(anyhow::Error::msg)?;
    Ok((index, workload))
}

/// The policy as the controller computes it from `dir`.
fn from_manifests(
    dir: &std::path::Path,
    ns: &str,
    workload_json: &str,
    port: u16,
) -> anyhow::Result<proto::Server> {
    let (index, workload) = policy_index(dir, workload_json)?;
    let server = index
        .server(ns, &workload, port)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ztmesh_grpc::inbound::to_proto(&server))
}

async fn from_controller(
    args: &PolicyArgs,
    addr: &str,
    workload_json: &str,
    port: u16,
) -> anyhow::Result<proto::Server> {
    let roots = match &args.trust_anchors {
        Some(path) => Some(ztmesh_tls::roots_from_pem(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?),
        None => None,
    };
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: args.policy_svc_name.clone(),
        roots,
    })?;
    let mut client = InboundServerPoliciesClient::new(channel);
    let spec = proto::PortSpec {
        workload: workload_json.to_string(),
        port: port.into(),
    };
    let server = tokio::time::timeout(std::time::Duration::from_secs(10), client.get_port(spec))
        .await
        .with_context(|| format!("the policy service at {addr} did not answer within 10s"))?
        .map_err(|s| {
            anyhow::anyhow!("policy service at {addr}: {:?}: {}", s.code(), s.message())
        })?;
    Ok(server.into_inner())
}
