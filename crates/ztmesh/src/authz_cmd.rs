//! `ztmesh authz -n NS WORKLOAD`: the servers, routes and authorizations
//! that apply to a workload, as a table, one row per authorization (route
//! authorizations first, then the server's, in the order the proxy tries
//! them). The policy is read like `diagnose policy` reads it: from a
//! manifests directory or a running controller, converted as the proxy
//! converts it.

use anyhow::{Context, bail};
use linkerd2_proxy_api::inbound::{
    self as proto, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use ztmesh_authz::{Authentication, Authorization, ServerPolicy};

#[derive(clap::Args)]
pub struct Args {
    /// The workload's namespace.
    #[arg(short = 'n', long)]
    namespace: String,
    /// A Pod or ExternalWorkload name, pod/NAME, externalworkload/NAME, or the
    /// value of an app label (the first workload so labelled).
    workload: String,
    /// Ports to show; with --manifests the workload's declared ports and
    /// the ports of Servers that select it are added.
    #[arg(long = "port")]
    ports: Vec<u16>,
    /// A manifests directory, read as the controller reads it.
    #[arg(
        long,
        conflicts_with = "controller",
        required_unless_present = "controller"
    )]
    manifests: Option<PathBuf>,
    /// host:port of a running controller's policy service (needs --port).
    #[arg(long, requires = "ports")]
    controller: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let target = format!("{}/{}:1", args.namespace, args.workload);
    let (ns, name, _) = crate::diagnose_policy::parse_target(&target)?;
    let servers: Vec<(u16, proto::Server)> = match (&args.manifests, &args.controller) {
        (Some(dir), _) => from_manifests(dir, &ns, &name, &args.ports)?,
        (None, Some(addr)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(from_controller(addr, &ns, &name, &args.ports))?,
        (None, None) => bail!("pass --manifests or --controller"),
    };
    let mut rows = vec![[
        "PORT".to_string(),
        "SERVER".into(),
        "PROTOCOL".into(),
        "ROUTE".into(),
        "AUTHORIZATION".into(),
        "CLIENTS".into(),
        "NETWORKS".into(),
    ]];
    for (port, server) in &servers {
        let policy = ztmesh_grpc::authz::server_policy(server)
            .map_err(|e| anyhow::anyhow!("port {port}: the policy is invalid: {e}"))?;
        rows.extend(policy_rows(*port, &policy));
    }
    crate::table::print(&rows);
    Ok(())
}

/// One row per (route, authorization); a route nobody may use says so.
fn policy_rows(port: u16, p: &ServerPolicy) -> Vec<[String; 7]> {
    let protocol = format!("{:?}", p.protocol);
    let row = |route: String, a: Option<&Authorization>| {
        [
            port.to_string(),
            p.label(),
            protocol.clone(),
            route,
            a.map(|a| a.label())
                .unwrap_or_else(|| "(none: denied)".into()),
            a.map(clients).unwrap_or_default(),
            a.map(networks).unwrap_or_default(),
        ]
    };
    let mut rows = Vec::new();
    let routes: Vec<(String, &[Authorization])> = match p.protocol {
        ztmesh_authz::Protocol::Opaque | ztmesh_authz::Protocol::Tls => {
            vec![("(connections)".into(), &[])]
        }
        ztmesh_authz::Protocol::Grpc => p
            .grpc_routes
            .iter()
            .map(|r| (r.label(), r.authorizations.list()))
            .collect(),
        _ => p
            .http_routes
            .iter()
            .map(|r| (r.label(), r.authorizations.list()))
            .collect(),
    };
    for (route, own) in routes {
        let all: Vec<&Authorization> = own.iter().chain(p.authorizations.list().iter()).collect();
        if all.is_empty() {
            rows.push(row(route.clone(), None));
        }
        for a in all {
            rows.push(row(route.clone(), Some(a)));
        }
    }
    rows
}

fn clients(a: &Authorization) -> String {
    match &a.authentication {
        Authentication::Unauthenticated => "any client".into(),
        Authentication::TlsUnauthenticated => "any TLS client".into(),
        Authentication::TlsAuthenticated(ids) => ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn networks(a: &Authorization) -> String {
    a.networks
        .iter()
        .map(|n| {
            if n.except.is_empty() {
                n.net.to_string()
            } else {
                let except: Vec<String> = n.except.iter().map(|e| e.to_string()).collect();
                format!("{} except {}", n.net, except.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_manifests(
    dir: &std::path::Path,
    ns: &str,
    name: &crate::diagnose_policy::WorkloadName,
    extra: &[u16],
) -> anyhow::Result<Vec<(u16, proto::Server)>> {
    let (index, _) = crate::diagnose_policy::policy_index(dir)?;
    let workload = crate::diagnose_policy::resolve_workload(&index, ns, name)?;
    let wl = index
        .workload(ns, &workload)
        .with_context(|| format!("no workload {workload} in namespace {ns}"))?;
    // Candidates: declared ports, Servers' ports, and the ones asked for;
    // a candidate only a default policy governs is shown when declared or asked.
    let declared: BTreeSet<u16> = wl
        .port_names
        .values()
        .flatten()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    let mut candidates = declared.clone();
    if let Some(res) = index.namespace(ns) {
        for server in res.servers.values() {
            if let ztmesh_resources::policy::Port::Number(p) = server.spec.port {
                candidates.insert(p);
            }
        }
    }
    let mut out = Vec::new();
    for port in candidates {
        let server = index.server(ns, &workload, port)?;
        let governed = matches!(server.reference, ztmesh_policy::ServerRef::Server(_));
        if governed || declared.contains(&port) {
            out.push((port, ztmesh_grpc::inbound::to_proto(&server)));
        }
    }
    if out.is_empty() {
        bail!(
            "no Server selects {workload} in namespace {ns} and it declares no named ports: pass --port to see the default policy of a port"
        );
    }
    Ok(out)
}

/// A bare name is asked as a Pod, then as an ExternalWorkload.
async fn from_controller(
    addr: &str,
    ns: &str,
    name: &crate::diagnose_policy::WorkloadName,
    ports: &[u16],
) -> anyhow::Result<Vec<(u16, proto::Server)>> {
    use crate::diagnose_policy::WorkloadName;
    use ztmesh_policy::WorkloadRef;
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
            .into(),
        roots: None,
    })?;
    let mut client = InboundServerPoliciesClient::new(channel);
    let candidates = match name {
        WorkloadName::Exact(w) => vec![w.clone()],
        WorkloadName::Any(n) => vec![
            WorkloadRef::Pod(n.clone()),
            WorkloadRef::External(n.clone()),
        ],
    };
    let mut out = Vec::new();
    for &port in ports {
        let mut answer = None;
        for w in &candidates {
            let spec = proto::PortSpec {
                workload: crate::diagnose_policy::workload_json(ns, w),
                port: port.into(),
            };
            let server =
                tokio::time::timeout(std::time::Duration::from_secs(10), client.get_port(spec))
                    .await
                    .with_context(|| {
                        format!("the policy service at {addr} did not answer within 10s")
                    })?;
            match server {
                Ok(server) => {
                    answer = Some(Ok(server.into_inner()));
                    break;
                }
                Err(s) if s.code() == tonic::Code::NotFound => answer = Some(Err(s)),
                Err(s) => bail!("policy service at {addr}: {}: {}", s.code(), s.message()),
            }
        }
        match answer {
            Some(Ok(server)) => out.push((port, server)),
            Some(Err(s)) => bail!("policy service at {addr}: {}", s.message()),
            None => unreachable!("at least one candidate is asked"),
        }
    }
    Ok(out)
}
