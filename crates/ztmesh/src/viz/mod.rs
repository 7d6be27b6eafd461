//! `ztmesh viz`: what the mesh's traffic looks like, from the proxies' own
//! metrics.
//!
//! - [`scrape`]: Prometheus text exposition, parsed into samples, and
//!   fetched from a proxy's admin port;
//! - [`stat`]: per workload, from two scrapes a window apart: meshed,
//!   success rate, requests per second, p50 / p95 / p99 latency, share of
//!   mTLS, open connections (the seeds' mesh status table);
//! - [`prometheus`]: the same table from a Prometheus server's history;
//! - [`resource`]: `KIND[/NAME]`, which workloads a command is about;
//! - [`routes`]: per route (client side: requests, success, retries,
//!   timeouts, budget exhaustion) and per edge (who connected to whom,
//!   with which identities, secured or why not).
//!
//! Workloads and their addresses come from the manifests directory (the
//! controller's view); each workload's proxy is scraped at its own address
//! on the admin port, as Linkerd's injector exposes it (0.0.0.0:4191), or
//! read from a Prometheus server that scrapes them (`--prometheus URL`).

pub mod api;
pub mod prometheus;
pub mod resource;
pub mod routes;
pub mod scrape;
pub mod stat;
pub mod tap;

pub use stat::{run_edges, run_routes, run_stat};
