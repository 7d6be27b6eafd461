//! The end-to-end suites of the `ztmesh` command, in one test binary (one
//! build, one link, one harness): each module is a suite that runs the real
//! binaries on loopback or in network namespaces; `support` starts and
//! drives them.
//!
//! The suites share this process and the harness runs them in parallel
//! threads, so: each suite has its own loopback addresses (127.0.x.y) or
//! network namespaces (named by tag and pid); the heavy ones (floods, load
//! and rate measurements, the open-files limit) hold `support::serial()`;
//! tests wait on conditions with `support::eventually`, never on sleeps;
//! long scenarios are named steps (`support::step`). The network-namespace
//! suites need root and fail, never skip, without it.

mod support;

mod anchor_rotation;
mod authz_e2e;
mod authz_netns;
mod check;
mod check_kube;
mod cli_naming;
mod completion;
mod controller_lifecycle;
mod diagnose_policy;
mod faults;
mod federation;
mod help;
mod hostile;
mod identity_e2e;
mod inject_cli;
mod install_kubernetes;
mod kube_pods;
mod kube_webhook_pods;
mod memory;
mod mesh_balance;
mod mesh_explicit;
mod mesh_transparent;
mod netns_tls;
mod observability;
mod policy_e2e;
mod proxy_drain;
mod proxy_e2e;
mod relay_netns;
mod robustness;
mod spiffe_agent;
mod spiffe_e2e;
mod traffic_netns;
mod viz_prometheus;
mod viz_stat;
mod viz_tap;
mod webhook_kube;
