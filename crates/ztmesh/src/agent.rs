//! `ztmesh agent`: the node-local SPIFFE Workload API (a thin call into
//! the ztmesh-agent library). Parses the flags, reads the node token and
//! the trust anchors, starts the agent and serves until SIGTERM or Ctrl-C.

use anyhow::Context;
use std::path::PathBuf;

/// `ztmesh agent --help`'s text after the flags.
pub(crate) const HELP: &str = "\
Callers (any local process; SPIFFE_ENDPOINT_SOCKET=unix://SOCKET for SPIFFE clients)
must send the metadata `workload.spiffe.io: true`. Each call is attested by the
caller's kernel credentials (SO_PEERCRED uid, gid, pid; /proc/PID/exe and
/proc/PID/cgroup) against the WorkloadAttestation resources in --attestations,
read at each call:

  apiVersion: ztmesh.io/v1alpha1
  kind: WorkloadAttestation
  metadata: {name: web}
  spec:
    namespace: demo              # identity spiffe://TRUST_DOMAIN/ns/demo/sa/web
    serviceAccount: web
    nodes: [node-a]              # agents that may serve it (\"*\": every node)
    selectors: [unix:uid:1000, unix:path:/usr/bin/web]   # all must match
                                 # also unix:gid:N, cgroup:/PATH, cgroup:/PREFIX/*

A caller that matches none is refused (PermissionDenied, naming its
credentials). X.509-SVIDs come from the controller's NodeIdentity service (run
it with `ztmesh controller --workload-attestations PATH`; it signs only the
identities its own resources assign to this node), authenticated by the node
token of `ztmesh token create --node NAME`; so do JWT-SVIDs (ES256, 5 minutes,
signed with the controller's jwt-svid.key, whose public half is the JWT bundle
served here): no signing key is on the node.";

#[derive(clap::Args)]
pub struct Args {
    /// The Workload API's Unix socket (created, world-connectable).
    #[arg(
        long,
        env = "ZTMESH_AGENT_SOCKET",
        default_value = "/run/ztmesh/agent.sock"
    )]
    socket: PathBuf,
    /// This node's name, as the node token and the resources' `nodes` name it.
    #[arg(long, env = "ZTMESH_NODE_NAME")]
    node: String,
    /// File holding the node token (`ztmesh token create --node NAME`),
    /// read at each request to the controller: replace it to rotate.
    #[arg(long, env = "ZTMESH_AGENT_NODE_TOKEN_FILE")]
    node_token_file: PathBuf,
    /// The WorkloadAttestation resources: a YAML file or a directory of them.
    #[arg(long, env = "ZTMESH_AGENT_ATTESTATIONS")]
    attestations: PathBuf,
    /// The controller's identity service (host:port; TLS unless loopback).
    #[arg(
        long,
        env = "ZTMESH_AGENT_CONTROLLER_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    controller_addr: String,
    /// PEM trust anchors (ca.crt of `ztmesh install`): the controller is
    /// verified with them, and they are the bundle served.
    #[arg(long, env = "ZTMESH_AGENT_TRUST_ANCHORS")]
    trust_anchors: PathBuf,
    /// The trust domain, as the controller's.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's namespace (the DNS form of identities names it).
    #[arg(long, default_value = "linkerd")]
    control_plane_namespace: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let trust =
        ztmesh_identity::TrustDomain::new(&args.control_plane_namespace, &args.trust_domain)?;
    let pem = std::fs::read(&args.trust_anchors)
        .with_context(|| format!("reading {}", args.trust_anchors.display()))?;
    let anchors =
        ztmesh_identity::pem::certificates(&pem, &args.trust_anchors.display().to_string())?
            .iter()
            .map(|c| c.to_vec())
            .collect();
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let controller_name = trust.identity(&args.control_plane_namespace, "linkerd-identity")?;
    let config = ztmesh_agent::AgentConfig {
        socket: args.socket,
        node: args.node,
        node_token: ztmesh_agent::NodeToken::File(args.node_token_file),
        controller_addr: args.controller_addr,
        controller_name: controller_name.to_string(),
        trust_anchors: anchors,
        attestations: args.attestations,
        trust,
        proc_root: "/proc".into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut agent = ztmesh_agent::Agent::spawn(config).await?;
        eprintln!(
            "ztmesh agent: SPIFFE Workload API on unix://{}",
            agent.socket().display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = agent.wait() => return r.context("the Workload API stopped"),
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        agent.shutdown().await?;
        anyhow::Ok(())
    })
}
