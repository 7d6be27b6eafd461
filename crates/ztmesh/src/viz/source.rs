//! Where the stat table's figures come from ([`Source`]): two scrapes of
//! each workload's proxy a window apart (counters differenced, so the
//! figures are for the window), or a Prometheus server's history
//! ([`super::prometheus`]). The CLI and the viz API both ask a source.

use super::model::{StatRow, WorkloadStat, compute, stat_rows};
use super::prometheus::{Prometheus, QueryError};
use super::scrape::{Sample, fetch, parse};
use std::net::SocketAddr;
use std::time::Duration;

/// Where the figures come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Scrape each workload's proxy on this admin port, twice.
    Scrape { admin_port: u16 },
    /// Query this Prometheus server (workloads' admin addresses still use
    /// `admin_port`, to match static scrape targets).
    Prometheus { server: Prometheus, admin_port: u16 },
}

impl Source {
    /// The proxies' admin port.
    pub fn admin_port(&self) -> u16 {
        match self {
            Source::Scrape { admin_port } | Source::Prometheus { admin_port, .. } => *admin_port,
        }
    }

    /// The stat rows over `window`.
    pub async fn stat_rows(
        &self,
        workloads: &[(String, String, SocketAddr)],
        window: Duration,
    ) -> Result<Vec<StatRow>, QueryError> {
        match self {
            Source::Scrape { .. } => Ok(scraped_rows(workloads, window).await),
            Source::Prometheus { server, .. } => {
                let stats = server.stats(workloads, window).await?;
                Ok(stat_rows(workloads, &stats))
            }
        }
    }
}

/// One scrape of every workload's proxy (None: no proxy answered).
pub async fn scrape_once(workloads: &[(String, String, SocketAddr)]) -> Vec<Option<Vec<Sample>>> {
    let mut out = Vec::new();
    for (_, _, addr) in workloads {
        out.push(
            fetch(*addr, Duration::from_secs(2))
                .await
                .ok()
                .map(|t| parse(&t)),
        );
    }
    out
}

/// The stat rows over `window`: scrape, wait, scrape.
async fn scraped_rows(
    workloads: &[(String, String, SocketAddr)],
    window: Duration,
) -> Vec<StatRow> {
    let before = scrape_once(workloads).await;
    tokio::time::sleep(window).await;
    let after = scrape_once(workloads).await;
    let stats: Vec<Option<WorkloadStat>> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => Some(compute(b, a, window)),
            _ => None,
        })
        .collect();
    stat_rows(workloads, &stats)
}
