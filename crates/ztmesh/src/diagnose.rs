//! `ztmesh diagnose`: ask the control plane what it tells proxies.
//! (`policy`, the allow/deny question, is in [`crate::diagnose_policy`].)
//!
//! `inbound-policy` is a real InboundServerPolicies client (GetPort, or
//! WatchPort with `--watch`) that prints each policy in a readable form:
//! the server, its protocol, every authorization with its networks and
//! clients, and every route with its matches and own authorizations.
//! The workload is named as everywhere ([`crate::resource`]): `--workload
//! KIND/NAME -n NS`; the older `ns:NAME` and the protocol's JSON still work.
//! A name other than po/NAME or ew/NAME is asked as a Pod, then, when the
//! controller knows no such Pod, as the ExternalWorkload of that name.

use anyhow::Context;
use futures::StreamExt;
use linkerd2_proxy_api::inbound::{
    self as proto, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::fmt::Write;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show the inbound policy the controller serves for a workload port.
    InboundPolicy(InboundArgs),
    /// Would this client be allowed? ALLOW or DENY with the reason, then
    /// the decision trace (exit 0 allow, 1 deny, 2 a wrong question).
    Policy(crate::diagnose_policy::PolicyArgs),
}

#[derive(clap::Args)]
pub struct InboundArgs {
    /// host:port of the policy service [default: the controller's, from its
    /// context file].
    #[arg(long)]
    policy_addr: Option<String>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// The workload: KIND/NAME (po/NAME, ew/NAME, deploy/NAME) in -n's
    /// namespace; also ns:NAME, {"ns":"…","pod":"…"} or
    /// {"ns":"…","external_workload":"…"}.
    #[arg(long)]
    workload: String,
    /// The workload's namespace [default: default].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The workload's port to show the policy of.
    #[arg(long)]
    port: u16,
    /// Keep the stream open and print every update (Ctrl-C to stop).
    #[arg(long)]
    watch: bool,
    /// The identity the policy service must prove over TLS.
    #[arg(
        long,
        default_value = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
    )]
    policy_svc_name: String,
    /// Trust anchors, needed when the address is not loopback.
    #[arg(long)]
    trust_anchors: Option<std::path::PathBuf>,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let args = match cmd {
        Command::InboundPolicy(args) => args,
        Command::Policy(args) => crate::diagnose_policy::run(args),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(inbound(args))
}

async fn inbound(args: InboundArgs) -> anyhow::Result<()> {
    let roots = match &args.trust_anchors {
        Some(path) => Some(ztmesh_tls::roots_from_pem(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?),
        None => None,
    };
    let policy_addr = crate::diagnose_policy::policy_addr(
        args.policy_addr.as_deref(),
        &args.controller,
        &crate::mesh_context::ProcessEnv,
    )?;
    let channel = ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: policy_addr.clone(),
        server_name: args.policy_svc_name.clone(),
        roots,
    })?;
    let mut client = InboundServerPoliciesClient::new(channel);
    let specs = match owner_name(&args.workload, args.namespace.as_deref()) {
        // deploy/NAME: the workload the controller's index resolves.
        Some((ns, name)) => crate::resource::controller::candidates(
            &args.controller,
            &crate::mesh_context::ProcessEnv,
            &ns,
            &name,
        )
        .await?
        .iter()
        .map(|w| crate::diagnose_policy::workload_json(&ns, w))
        .collect(),
        None => workload_specs(&args.workload, args.namespace.as_deref())?,
    };
    let mut candidates = specs.into_iter();
    let mut spec = proto::PortSpec {
        workload: candidates.next().expect("one workload at least"),
        port: args.port.into(),
    };
    for next in candidates {
        match client.get_port(spec.clone()).await {
            Err(s) if s.code() == tonic::Code::NotFound => {
                eprintln!(
                    "{}: no such Pod, asking for the ExternalWorkload",
                    args.workload
                );
                spec.workload = next;
            }
            _ => break,
        }
    }
    let failed = |s: tonic::Status| {
        anyhow::anyhow!(
            "policy service at {policy_addr}: {}: {}",
            s.code(),
            s.message()
        )
    };
    if !args.watch {
        let server = client.get_port(spec).await.map_err(failed)?.into_inner();
        crate::table::print_text(&describe(&server));
        return Ok(());
    }
    let mut stream = client.watch_port(spec).await.map_err(failed)?.into_inner();
    let mut n = 0;
    while let Some(update) = stream.next().await {
        n += 1;
        let text = describe(&update.map_err(failed)?);
        crate::table::print_text(&format!("--- update {n}\n{text}"));
    }
    crate::table::print_text("--- stream ended\n");
    Ok(())
}

/// `--workload` when it names an owner (`deploy/NAME`, `sts`, `ds`): its
/// namespace and name, to resolve through the controller's index.
fn owner_name(
    workload: &str,
    namespace: Option<&str>,
) -> Option<(String, crate::resource::WorkloadName)> {
    if workload.trim_start().starts_with('{') || !workload.contains('/') {
        return None;
    }
    match crate::resource::workload_arg(workload, namespace).ok()? {
        (ns, name @ crate::resource::WorkloadName::App(..)) => Some((
            ns.unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into()),
            name,
        )),
        _ => None,
    }
}

/// The PortSpec workloads `--workload` may mean, in the order asked: the
/// protocol's JSON as given; `ns:NAME` the Pod, then the ExternalWorkload;
/// KIND/NAME as [`crate::resource`] names it.
fn workload_specs(
    workload: &str,
    namespace: Option<&str>,
) -> Result<Vec<String>, crate::resource::ResourceError> {
    if workload.trim_start().starts_with('{') {
        return Ok(vec![workload.to_string()]);
    }
    let (ns, name) = match workload.split_once(':') {
        Some((ns, name)) if !workload.contains('/') => (ns.to_string(), name.parse()?),
        _ => {
            let (ns, name) = crate::resource::workload_arg(workload, namespace)?;
            (
                ns.unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into()),
                name,
            )
        }
    };
    let name: crate::resource::WorkloadName = name;
    Ok(name
        .candidates()
        .iter()
        .map(|w| crate::diagnose_policy::workload_json(&ns, w))
        .collect())
}

fn label<'a>(labels: &'a std::collections::HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map(String::as_str).unwrap_or("?")
}

/// A readable rendering of a proto Server.
pub(crate) fn describe(server: &proto::Server) -> String {
    use proto::proxy_protocol::Kind;
    let mut out = String::new();
    let (protocol, routes) = match server.protocol.as_ref().and_then(|p| p.kind.as_ref()) {
        Some(Kind::Detect(d)) => (
            format!(
                "detect (timeout {}s)",
                d.timeout.as_ref().map(|t| t.seconds).unwrap_or(0)
            ),
            d.http_routes.as_slice(),
        ),
        Some(Kind::Http1(h)) => ("HTTP/1".into(), h.routes.as_slice()),
        Some(Kind::Http2(h)) => ("HTTP/2".into(), h.routes.as_slice()),
        Some(Kind::Grpc(_)) => ("gRPC".into(), &[][..]),
        Some(Kind::Opaque(_)) => ("opaque".into(), &[][..]),
        Some(Kind::Tls(_)) => ("TLS".into(), &[][..]),
        None => ("none".into(), &[][..]),
    };
    let what = match label(&server.labels, "kind") {
        "default" => "default policy",
        _ => "Server",
    };
    let _ = writeln!(
        out,
        "{what} {} (protocol {protocol})",
        label(&server.labels, "name")
    );
    if server.authorizations.is_empty() {
        let _ = writeln!(out, "  no server-wide authorizations");
    }
    for a in &server.authorizations {
        describe_authz(&mut out, "  ", a);
    }
    for r in routes {
        let name = match r.metadata.as_ref().and_then(|m| m.kind.as_ref()) {
            Some(linkerd2_proxy_api::meta::metadata::Kind::Default(n)) => format!("default {n}"),
            Some(linkerd2_proxy_api::meta::metadata::Kind::Resource(res)) => {
                format!("{} {}", res.kind, res.name)
            }
            None => "?".into(),
        };
        let _ = writeln!(out, "  route {name}");
        for rule in &r.rules {
            let matches: Vec<String> = rule.matches.iter().map(describe_match).collect();
            let _ = writeln!(out, "    match {}", matches.join(" | "));
        }
        for a in &r.authorizations {
            describe_authz(&mut out, "    ", a);
        }
    }
    out
}

fn describe_match(m: &linkerd2_proxy_api::http_route::HttpRouteMatch) -> String {
    use linkerd2_proxy_api::http_route::path_match::Kind;
    let method = m
        .method
        .clone()
        .and_then(|m| http::Method::try_from(m).ok())
        .map(|m| format!("{m} "))
        .unwrap_or_default();
    let path = match m.path.as_ref().and_then(|p| p.kind.as_ref()) {
        Some(Kind::Exact(p)) => format!("exact {p}"),
        Some(Kind::Prefix(p)) => format!("prefix {p}"),
        Some(Kind::Regex(p)) => format!("regex {p}"),
        None => "any path".into(),
    };
    format!("{method}{path}")
}

fn describe_authz(out: &mut String, indent: &str, a: &proto::Authz) {
    use proto::authn::{Permit, permit_mesh_tls::Clients};
    let nets: Vec<String> = a
        .networks
        .iter()
        .filter_map(|n| n.net.and_then(|net| ipnet::IpNet::try_from(net).ok()))
        .map(|n| n.to_string())
        .collect();
    let clients = match a.authentication.as_ref().and_then(|x| x.permit.as_ref()) {
        Some(Permit::Unauthenticated(_)) => "any client".to_string(),
        Some(Permit::MeshTls(m)) => match &m.clients {
            Some(Clients::Unauthenticated(_)) => "any TLS client".into(),
            Some(Clients::Identities(ids)) => {
                let mut names: Vec<String> =
                    ids.identities.iter().map(|i| i.name.clone()).collect();
                names.extend(ids.suffixes.iter().map(|s| {
                    if s.parts.is_empty() {
                        "*".to_string()
                    } else {
                        format!("*.{}", s.parts.join("."))
                    }
                }));
                format!("mesh TLS as {}", names.join(", "))
            }
            None => "nobody".into(),
        },
        None => "nobody".into(),
    };
    let _ = writeln!(
        out,
        "{indent}authz {} {}: {clients}; from {}",
        label(&a.labels, "kind"),
        label(&a.labels, "name"),
        nets.join(", ")
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_workload_form_and_its_fallback() {
        let pod = r#"{"ns":"booksapp","pod":"authors"}"#;
        let ew = r#"{"external_workload":"authors","ns":"booksapp"}"#;
        // (--workload, -n, the PortSpec workloads asked in order)
        let cases: [(&str, Option<&str>, &[&str]); 7] = [
            ("booksapp:authors", None, &[pod, ew]),
            (pod, None, &[pod]),
            ("po/authors", Some("booksapp"), &[pod]),
            ("ew/authors", Some("booksapp"), &[ew]),
            ("deploy/authors", Some("booksapp"), &[pod, ew]),
            ("authors", Some("booksapp"), &[pod, ew]),
            ("booksapp/ew/authors", None, &[ew]),
        ];
        for (workload, ns, want) in cases {
            assert_eq!(
                super::workload_specs(workload, ns).unwrap(),
                want,
                "{workload}"
            );
        }
        let err = super::workload_specs("svc/authors", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not svc objects"), "{err}");
    }
}
