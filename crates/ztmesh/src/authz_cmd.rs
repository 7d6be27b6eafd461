//! `ztmesh authz -n NS KIND/NAME [-o json]`: the servers, routes and
//! authorizations that apply to a workload, as a table, one row per
//! authorization (route authorizations first, then the server's, in the
//! order the proxy tries them). The workload is named as everywhere
//! ([`crate::resource`]). The policy is read like `diagnose policy` reads
//! it: from a manifests directory or the running controller, converted as
//! the proxy converts it.

use anyhow::{Context, bail};
use linkerd2_proxy_api::inbound::{
    self as proto, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use ztmesh_authz::{Authentication, Authorization, ServerPolicy};

#[derive(clap::Args)]
pub struct Args {
    /// The workload's namespace [default: default].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The workload: deploy/NAME (the workloads labelled app=NAME; also sts,
    /// ds), po/NAME or ew/NAME (a bare NAME: the Pod or ExternalWorkload so
    /// named, else the first labelled app=NAME).
    workload: String,
    /// Ports to show; with --manifests the workload's declared ports and
    /// the ports of Servers that select it are added.
    #[arg(long = "port")]
    ports: Vec<u16>,
    /// A manifests directory, read as the controller reads it [default: ask
    /// the running controller, port by port (--port)].
    #[arg(long, conflicts_with = "policy_addr")]
    manifests: Option<PathBuf>,
    /// host:port of a running controller's policy service [default: the
    /// controller's, from its context file].
    #[arg(long)]
    policy_addr: Option<String>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// How to print: `table`, `wide` (the same columns: none is dropped) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: crate::table::Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (ns, name) = crate::resource::workload_arg(&args.workload, args.namespace.as_deref())?;
    let ns = ns.unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into());
    // Without --port, the manifests the controller reads (its context file
    // records them) give the workload's declared ports.
    let manifests = args.manifests.clone().or_else(|| {
        (args.ports.is_empty() && args.policy_addr.is_none())
            .then(|| {
                crate::mesh_context::context_manifests(
                    &args.controller,
                    &crate::mesh_context::ProcessEnv,
                )
            })
            .flatten()
    });
    let servers: Vec<(u16, proto::Server)> = match &manifests {
        Some(dir) => from_manifests(dir, &ns, &name, &args.ports)?,
        None => {
            if args.ports.is_empty() {
                bail!(
                    "the controller is asked port by port: pass --port PORT (repeatable), or --manifests DIR"
                );
            }
            let addr = crate::diagnose_policy::policy_addr(
                args.policy_addr.as_deref(),
                &args.controller,
                &crate::mesh_context::ProcessEnv,
            )?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let candidates = crate::resource::controller::candidates(
                        &args.controller,
                        &crate::mesh_context::ProcessEnv,
                        &ns,
                        &name,
                    )
                    .await?;
                    from_controller(&addr, &ns, &candidates, &args.ports).await
                })?
        }
    };
    let mut rows = Vec::new();
    for (port, server) in &servers {
        let policy = ztmesh_grpc::authz::server_policy(server)
            .map_err(|e| anyhow::anyhow!("port {port}: the policy is invalid: {e}"))?;
        rows.extend(policy_rows(*port, &policy));
    }
    match args.output {
        crate::table::Output::Json => crate::table::print_text(&crate::table::json(&rows)),
        _ => crate::table::print(&table(&rows)),
    }
    Ok(())
}

/// One authorization of one route of one port's server.
#[derive(Debug, PartialEq, serde::Serialize)]
struct AuthzRow {
    port: u16,
    server: String,
    protocol: String,
    route: String,
    /// None: nobody may use the route.
    authorization: Option<String>,
    clients: Vec<String>,
    networks: Vec<String>,
}

/// The table (header first); it drops no column.
fn table(rows: &[AuthzRow]) -> Vec<[String; 7]> {
    let mut table = vec![
        [
            "PORT",
            "SERVER",
            "PROTOCOL",
            "ROUTE",
            "AUTHORIZATION",
            "CLIENTS",
            "NETWORKS",
        ]
        .map(String::from),
    ];
    for r in rows {
        table.push([
            r.port.to_string(),
            r.server.clone(),
            r.protocol.clone(),
            r.route.clone(),
            r.authorization
                .clone()
                .unwrap_or_else(|| "(none: denied)".into()),
            r.clients.join(", "),
            r.networks.join(", "),
        ]);
    }
    table
}

/// One row per (route, authorization); a route nobody may use says so.
fn policy_rows(port: u16, p: &ServerPolicy) -> Vec<AuthzRow> {
    let protocol = format!("{:?}", p.protocol);
    let row = |route: String, a: Option<&Authorization>| AuthzRow {
        port,
        server: p.label(),
        protocol: protocol.clone(),
        route,
        authorization: a.map(|a| a.label()),
        clients: a.map(clients).unwrap_or_default(),
        networks: a.map(networks).unwrap_or_default(),
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

fn clients(a: &Authorization) -> Vec<String> {
    match &a.authentication {
        Authentication::Unauthenticated => vec!["any client".into()],
        Authentication::TlsUnauthenticated => vec!["any TLS client".into()],
        Authentication::TlsAuthenticated(ids) => ids.iter().map(|i| i.to_string()).collect(),
    }
}

fn networks(a: &Authorization) -> Vec<String> {
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
        .collect()
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

/// The `candidates` are asked in order ([`crate::resource::controller`]:
/// a bare name as a Pod, then as an ExternalWorkload; a `deploy/NAME` the
/// workload the controller's index resolves).
async fn from_controller(
    addr: &str,
    ns: &str,
    candidates: &[ztmesh_policy::WorkloadRef],
    ports: &[u16],
) -> anyhow::Result<Vec<(u16, proto::Server)>> {
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
            .into(),
        roots: None,
    })?;
    let mut client = InboundServerPoliciesClient::new(channel);
    let mut out = Vec::new();
    for &port in ports {
        let mut answer = None;
        for w in candidates {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_model_two_renderings() {
        let rows = [
            AuthzRow {
                port: 8080,
                server: "web-http".into(),
                protocol: "Http1".into(),
                route: "GET /".into(),
                authorization: Some("AuthorizationPolicy web-get".into()),
                clients: vec!["a.ns.serviceaccount".into(), "b.ns.serviceaccount".into()],
                networks: vec!["10.0.0.0/8 except 10.1.0.0/16".into()],
            },
            AuthzRow {
                port: 8080,
                server: "web-http".into(),
                protocol: "Http1".into(),
                route: "POST /".into(),
                authorization: None,
                clients: vec![],
                networks: vec![],
            },
        ];
        let lines: Vec<String> = table(&rows).iter().map(|r| r.join("|")).collect();
        assert_eq!(
            lines[1..],
            [
                "8080|web-http|Http1|GET /|AuthorizationPolicy web-get|a.ns.serviceaccount, b.ns.serviceaccount|10.0.0.0/8 except 10.1.0.0/16",
                "8080|web-http|Http1|POST /|(none: denied)||",
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&crate::table::json(&rows)).unwrap();
        assert_eq!(json[0]["port"], 8080);
        assert_eq!(json[0]["route"], "GET /");
        assert_eq!(json[0]["clients"][1], "b.ns.serviceaccount");
        assert_eq!(json[0]["networks"][0], "10.0.0.0/8 except 10.1.0.0/16");
        assert!(json[1]["authorization"].is_null());
        assert_eq!(json[1]["clients"].as_array().unwrap().len(), 0);
    }
}
