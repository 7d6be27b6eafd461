//! `ztmesh viz tap` and `viz top`, through the controller, as linkerd-viz
//! does it: the controller holds the tap identity and opens the proxies'
//! Tap API; the CLI (and the dashboard) ask the controller's viz API.
//!
//! - [`event`]: one event as a line of JSON ([`event::TapLine`]), and as
//!   the line `tap` prints; pure;
//! - [`top`]: top's table from the events; pure;
//! - [`client`]: the controller's side: the tap identity and the mTLS
//!   client of a proxy's Tap API;
//! - [`serve`]: `GET /tap` on the viz API: every selected proxy tapped at
//!   once, the events streamed as newline-delimited JSON;
//! - `cli`: the commands, clients of `GET /tap`.

mod cli;
pub mod client;
pub mod event;
pub mod serve;
pub mod top;

pub use cli::{TapArgs, TopArgs, run, run_top};
