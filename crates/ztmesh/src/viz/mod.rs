//! `ztmesh viz`: what the mesh's traffic looks like, from the proxies' own
//! metrics.
//!
//! - [`client`]: plain-HTTP GETs (hyper-util's client), bounded in time;
//! - [`scrape`]: Prometheus text exposition, parsed into samples, and
//!   fetched from a proxy's admin port;
//! - [`model`]: the stat table, per workload over a window: meshed,
//!   success rate, requests per second, p50 / p95 / p99 latency, share of
//!   mTLS, open connections (the seeds' mesh status table), computed from
//!   two scrapes; pure;
//! - [`source`]: where the figures come from: two scrapes a window apart,
//!   or [`prometheus`], a Prometheus server's history;
//! - [`api`]: the controller's viz API (server, and the CLI's client);
//!   [`url`]: its query strings;
//! - [`stat`]: the CLI of `viz stat | routes | edges`, each printing one
//!   row model as a table or, with `-o json`, as JSON, asked of the
//!   controller's viz API or, with `--manifests`, computed by the CLI;
//! - [`resource`]: `KIND[/NAME]`, which workloads a command is about (the
//!   CLI's one naming, [`crate::resource`]);
//! - [`tap`]: `viz tap` and `viz top` through the controller, which holds
//!   the tap identity (and `GET /tap`, its side);
//! - [`dashboard`]: the web dashboard the viz API serves, and `viz
//!   dashboard`;
//! - [`routes`]: per route (client side: requests, success, retries,
//!   timeouts, budget exhaustion) and per edge (who connected to whom,
//!   with which identities, secured or why not: each edge once, both
//!   sides' reports merged).
//!
//! Workloads and their addresses come from the manifests directory (the
//! controller's view); each workload's proxy is scraped at its own address
//! on the admin port, as Linkerd's injector exposes it (0.0.0.0:4191), or
//! read from a Prometheus server that scrapes them (`--prometheus URL`).

pub mod api;
pub mod client;
pub mod dashboard;
pub mod model;
pub mod prometheus;
pub mod resource;
pub mod routes;
pub mod scrape;
pub mod source;
pub mod stat;
pub mod tap;
pub mod url;

pub use stat::{run_edges, run_routes, run_stat};
