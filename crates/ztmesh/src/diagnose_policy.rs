//! `ztmesh diagnose policy`: would this client be allowed, and why?
//!
//! The policy comes from a running controller (InboundServerPolicies
//! GetPort) or straight from a manifests directory (the controller's own
//! index); either way it is converted exactly as the proxy converts it and
//! decided by the proxy's own function (ztmesh-authz). The first line is
//! `ALLOW` or `DENY` with the reason; the trace follows. Exit status: 0
//! allow, 1 deny, 2 when the question itself is wrong (unknown workload,
//! bad identity, unreadable manifests) or incomplete (the client's address
//! is unknown and decides the answer).
//!
//! Workloads are named as everywhere in the CLI ([`crate::resource`]):
//! `--to KIND/NAME:PORT -n NS`, `--from KIND/NAME` (in `--from-namespace`,
//! default `-n`'s); the older `NS/NAME` forms still work. [`client`] builds
//! the client as the proxy would see it and finds its address; this module
//! asks the policy source (found as every command finds the controller,
//! [`policy_addr`]) and prints the answer.

mod client;

use anyhow::{Context, bail};
use linkerd2_proxy_api::inbound::{
    self as proto, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::net::IpAddr;
use std::path::PathBuf;
use ztmesh_authz::{Client, decide_connection, decide_request};
use ztmesh_policy::{ClusterInfo, WorkloadRef};

pub(crate) use self::client::workload_identity;
use self::client::{Address, Asked};
pub(crate) use crate::resource::WorkloadName;

#[derive(clap::Args)]
pub(crate) struct PolicyArgs {
    /// The client: a mesh identity (books.booksapp.serviceaccount.identity.linkerd.cluster.local
    /// or its SPIFFE ID spiffe://cluster.local/ns/booksapp/sa/books, which the proxy
    /// sees as the DNS form beside it in the certificate) for a meshed client, or
    /// an IP address for an unmeshed one, or KIND/NAME (deploy/NAME, po/NAME,
    /// ew/NAME; with --manifests) for a workload's identity and address.
    #[arg(long)]
    from: String,
    /// The namespace of a --from workload [default: -n's].
    #[arg(long)]
    from_namespace: Option<String>,
    /// The client's address when --from is an identity [default: the address the
    /// manifests give the workload with that identity, else unspecified].
    #[arg(long)]
    from_ip: Option<IpAddr>,
    /// The server: KIND/NAME:PORT in -n's namespace, e.g. deploy/authors:7001
    /// (the workloads labelled app=authors), po/NAME:PORT or ew/NAME:PORT
    /// (also NS/NAME:PORT, NAME being a Pod, an ExternalWorkload or an app label).
    #[arg(long)]
    to: String,
    /// The namespace of --to [default: default].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
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
    /// host:port of a running controller's policy service [default: the
    /// controller's, from its context file].
    #[arg(long, conflicts_with = "manifests")]
    policy_addr: Option<String>,
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
    /// A manifests directory, read as the controller reads it [default: ask
    /// the running controller].
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

pub(crate) fn run(args: PolicyArgs) -> ! {
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

/// Parses KIND/NAME:PORT (or NS/NAME:PORT) into (namespace, workload, port).
pub(crate) fn parse_target(
    to: &str,
    namespace: Option<&str>,
) -> anyhow::Result<(String, WorkloadName, u16)> {
    let (workload, port) = to
        .rsplit_once(':')
        .with_context(|| format!("--to {to:?} has no :PORT (KIND/NAME:PORT)"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("--to {to:?}: {port:?} is not a port"))?;
    let (ns, name) = crate::resource::workload_arg(workload, namespace)
        .with_context(|| format!("--to {to:?}"))?;
    let ns = ns.unwrap_or_else(|| crate::resource::DEFAULT_NAMESPACE.into());
    Ok((ns, name, port))
}

/// The policy service's address: `--policy-addr`, else the controller's
/// (its context file, found as `--controller` finds it).
pub(crate) fn policy_addr(
    given: Option<&str>,
    controller: &crate::mesh_context::ControllerArg,
    env: &dyn crate::mesh_context::Env,
) -> anyhow::Result<String> {
    if let Some(addr) = given {
        return Ok(addr.to_string());
    }
    let found = controller
        .resolve(env)
        .context("finding the controller's policy service (or pass --manifests DIR)")?;
    let context = match found.context {
        Some(context) => Some(context),
        // --controller (or ZTMESH_CONTROLLER) names the viz API: the context
        // file knows the rest when it describes that controller.
        None => crate::mesh_context::load(env)?.filter(|c| c.viz.to_string() == found.viz),
    };
    match context {
        Some(context) => Ok(context.policy.to_string()),
        None => bail!(
            "--controller {} names the controller's viz API; its policy service is known from the context file only, which describes another controller or none: pass --policy-addr HOST:PORT, or --manifests DIR",
            found.viz
        ),
    }
}

/// The PortSpec workload string for `w` in `ns`.
pub(crate) fn workload_json(ns: &str, w: &WorkloadRef) -> String {
    match w {
        WorkloadRef::External(name) => {
            serde_json::json!({"ns": ns, "external_workload": name}).to_string()
        }
        WorkloadRef::Pod(name) => serde_json::json!({"ns": ns, "pod": name}).to_string(),
    }
}

async fn diagnose(args: &PolicyArgs) -> Result<bool, BadQuestion> {
    let bad = BadQuestion;
    let (ns, workload, port) = parse_target(&args.to, args.namespace.as_deref()).map_err(bad)?;
    let from_ns = args.from_namespace.as_deref().unwrap_or(&ns);
    let asked = client::parse_from(&args.from, from_ns, &ClusterInfo::default())
        .map_err(|e| bad(e.into()))?;
    let mut manifests = None;
    let server = match &args.manifests {
        Some(dir) => {
            let (index, known) = policy_index(dir).map_err(bad)?;
            let server = from_manifests(&index, &ns, &workload, port).map_err(bad)?;
            manifests = Some((index, known));
            server
        }
        None => {
            let env = crate::mesh_context::ProcessEnv;
            let addr =
                policy_addr(args.policy_addr.as_deref(), &args.controller, &env).map_err(bad)?;
            from_controller(args, &addr, &ns, &workload, port)
                .await
                .map_err(bad)?
        }
    };
    let (address, identity) = match &asked {
        Asked::Ip(ip) => (Address::Given(*ip), None),
        Asked::Identity(id) => {
            let (index, known) = match &manifests {
                Some((index, known)) => (Some(index), known.as_slice()),
                None => (None, &[][..]),
            };
            (
                client::address(args.from_ip, id, known, index),
                Some(id.as_str()),
            )
        }
        Asked::Workload(ns, name) => {
            // The manifests the controller reads (from its context file),
            // unless --policy-addr names a controller the file may not describe.
            if manifests.is_none()
                && args.policy_addr.is_none()
                && let Some(dir) = crate::mesh_context::context_manifests(
                    &args.controller,
                    &crate::mesh_context::ProcessEnv,
                )
            {
                manifests = Some(policy_index(&dir).map_err(bad)?);
            }
            let Some((index, known)) = &manifests else {
                return Err(bad(anyhow::anyhow!(
                    "--from {:?} names a workload: pass --manifests, or give its identity",
                    args.from
                )));
            };
            let (address, id) =
                client::workload_client(index, known, ns, name, args.from_ip).map_err(bad)?;
            (address, Some(id))
        }
    };
    let client = Client {
        ip: address.ip(),
        tls: identity.is_some(),
        identity,
    };
    let policy = ztmesh_grpc::authz::server_policy(&server).map_err(|e| {
        bad(anyhow::anyhow!(
            "the policy for {} is invalid: {e}",
            args.to
        ))
    })?;
    let mut trace = Vec::new();
    let who = match client.identity {
        Some(id) if id != args.from => {
            format!(
                "{} (seen by the proxy as {id}; mesh TLS from {address})",
                args.from
            )
        }
        Some(id) => format!("{id} (mesh TLS from {address})"),
        None => format!("{address} (no TLS)"),
    };
    if address == Address::Unknown {
        trace.push(
            "the client's address is unknown: decided as 0.0.0.0 (pass --from-ip when an authorization's networks matter)"
                .to_string(),
        );
    }
    let connection = args.tcp || policy.protocol == ztmesh_authz::Protocol::Opaque;
    let req = match connection {
        true => None,
        false => Some(request(args).map_err(bad)?),
    };
    let decision = if let Some(req) = &req {
        decide_request(&policy, client, req, Some(&mut trace)).map(|p| {
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
    } else {
        decide_connection(&policy, client, Some(&mut trace)).map(|p| {
            format!(
                "ALLOW: {who} may connect to {}: authorization {} admits it",
                args.to,
                p.authorization.label()
            )
        })
    };
    if let (Err(denial), Address::Unknown) = (&decision, &address)
        && let Some((net, label)) = client::admitting_network(&policy, client, req.as_ref())
    {
        return Err(bad(anyhow::anyhow!(
            "the answer depends on the client's address, which is unknown: from 0.0.0.0 it is DENY ({denial}), but {label} admits {} from {net}; pass --from-ip",
            args.from
        )));
    }
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

/// The HTTP request the question describes.
fn request(args: &PolicyArgs) -> anyhow::Result<http::Request<()>> {
    let mut req = http::Request::builder()
        .method(args.method.as_str())
        .uri(args.path.as_str());
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h:?} is not K=V"))?;
        req = req.header(k, v);
    }
    req.body(())
        .map_err(|e| anyhow::anyhow!("the request is not valid HTTP: {e}"))
}

/// The policy index the controller would build from `dir`, and the
/// identities of its workloads.
pub(crate) fn policy_index(
    dir: &std::path::Path,
) -> anyhow::Result<(ztmesh_policy::Index, Vec<client::WorkloadIdentity>)> {
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
    let cluster = ClusterInfo::default();
    let mut index = ztmesh_policy::Index::new(cluster.clone());
    let mut known = Vec::new();
    for resource in changes.apply {
        known.extend(client::workload_identity(&resource, &cluster));
        index.apply(resource);
    }
    Ok((index, known))
}

/// The workload `name` means in the manifests.
pub(crate) fn resolve_workload(
    index: &ztmesh_policy::Index,
    ns: &str,
    name: &WorkloadName,
) -> anyhow::Result<WorkloadRef> {
    Ok(crate::resource::resolve(index, ns, name)?)
}

/// The policy as the controller computes it from `dir`.
fn from_manifests(
    index: &ztmesh_policy::Index,
    ns: &str,
    name: &WorkloadName,
    port: u16,
) -> anyhow::Result<proto::Server> {
    let workload = resolve_workload(index, ns, name)?;
    let server = index.server(ns, &workload, port)?;
    Ok(ztmesh_grpc::inbound::to_proto(&server))
}

/// The policy from a running controller; a `deploy/NAME` is resolved
/// through its index, a bare name tried as a Pod, then as an
/// ExternalWorkload ([`crate::resource::controller`]).
async fn from_controller(
    args: &PolicyArgs,
    addr: &str,
    ns: &str,
    name: &WorkloadName,
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
    let candidates = crate::resource::controller::candidates(
        &args.controller,
        &crate::mesh_context::ProcessEnv,
        ns,
        name,
    )
    .await?;
    let mut last = None;
    for w in candidates {
        let spec = proto::PortSpec {
            workload: workload_json(ns, &w),
            port: port.into(),
        };
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(10), client.get_port(spec))
                .await
                .with_context(|| {
                    format!("the policy service at {addr} did not answer within 10s")
                })?;
        match answer {
            Ok(server) => return Ok(server.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => last = Some(s),
            Err(s) => bail!("policy service at {addr}: {}: {}", s.code(), s.message()),
        }
    }
    let s = last.expect("at least one candidate was asked");
    bail!("policy service at {addr}: {}", s.message())
}

#[cfg(test)]
mod tests {
    use crate::mesh_context::{ControllerArg, Env, MeshContext, save};

    struct MapEnv(String);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            (name == "ZTMESH_CONTEXT").then(|| self.0.clone())
        }
    }

    /// The PortSpec workload is JSON whatever the names hold.
    #[test]
    fn the_portspec_workload_is_escaped_json() {
        use ztmesh_policy::WorkloadRef;
        let cases = [
            (
                "booksapp",
                WorkloadRef::Pod("authors".into()),
                "pod",
                "authors",
            ),
            ("ns\"x", WorkloadRef::Pod("a\\b".into()), "pod", "a\\b"),
            (
                "booksapp",
                WorkloadRef::External("db\",\"pod\":\"x".into()),
                "external_workload",
                "db\",\"pod\":\"x",
            ),
        ];
        for (ns, w, key, name) in cases {
            let json = super::workload_json(ns, &w);
            let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
            assert_eq!(v["ns"], ns, "{json}");
            assert_eq!(v[key], name, "{json}");
            assert_eq!(v.as_object().unwrap().len(), 2, "{json}");
        }
    }

    #[test]
    fn the_policy_address_given_else_the_controllers_from_its_context() {
        let dir = tempfile::tempdir().unwrap();
        let env = MapEnv(dir.path().join("context.json").display().to_string());
        let flag = |c: Option<&str>| ControllerArg {
            controller: c.map(String::from),
        };
        let ask = |given: Option<&str>, c: Option<&str>| {
            super::policy_addr(given, &flag(c), &env).map_err(|e| format!("{e:#}"))
        };
        assert!(ask(None, None).unwrap_err().contains("pass --controller"));
        assert_eq!(ask(Some("10.0.0.1:8090"), None).unwrap(), "10.0.0.1:8090");
        save(
            &env,
            &MeshContext {
                viz: "127.0.0.1:18084".parse().unwrap(),
                identity: "127.0.0.1:18080".parse().unwrap(),
                destination: "127.0.0.1:18086".parse().unwrap(),
                policy: "127.0.0.1:18090".parse().unwrap(),
                identity_dir: None,
                manifests: None,
                written_by: "controller".into(),
                pid: 1,
            },
        )
        .unwrap();
        // (--policy-addr, --controller, answer or a word of the error)
        let cases = [
            (None, None, Ok("127.0.0.1:18090")),
            (None, Some("127.0.0.1:18084"), Ok("127.0.0.1:18090")),
            (Some("10.0.0.1:8090"), None, Ok("10.0.0.1:8090")),
            (None, Some("127.0.0.1:9"), Err("pass --policy-addr")),
        ];
        for (given, controller, want) in cases {
            match (ask(given, controller), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{given:?} {controller:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
                (got, want) => panic!("{given:?} {controller:?}: {got:?}, want {want:?}"),
            }
        }
    }
}
