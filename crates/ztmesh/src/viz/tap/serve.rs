//! `GET /tap` on the controller's viz API: taps every selected workload's
//! proxy at once (as [`super::client::Tapper`]) and streams the events as
//! newline-delimited JSON ([`Item`]), until each proxy's limit, `max_wait`,
//! or the client going away.
//!
//! Query: `namespace=NS`, `resource=KIND[/NAME]`, `limit=N` (requests per
//! proxy, default 100), `max_wait=SECONDS` (default 60), and the filters
//! `method`, `path` (a prefix) and `authority`.

use super::client::Tapper;
use super::event::TapLine;
use crate::viz::model::workloads_in;
use crate::viz::resource::Resource;
use linkerd2_proxy_api::tap::{self as proto, observe_request::r#match as m};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a tap may run.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// One line of the stream: an event, or why a proxy could not be tapped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Item {
    Event(Box<TapLine>),
    Error { workload: String, error: String },
}

/// What a tap asks for, from the query.
#[derive(Debug, PartialEq)]
pub struct TapQuery {
    pub namespace: Option<String>,
    pub resource: Option<Resource>,
    pub limit: u32,
    pub max_wait: Duration,
    pub method: Option<http::Method>,
    pub path: Option<String>,
    pub authority: Option<String>,
}

/// Why a tap query is refused (400).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("resource {0}")]
    Resource(#[from] crate::resource::ResourceError),
    #[error("limit must be a whole number from 1 to 100000, not {0:?}")]
    Limit(String),
    #[error("max_wait must be a number of seconds in (0, {max}], not {0:?}", max = MAX_WAIT.as_secs())]
    MaxWait(String),
    #[error("method {0:?} is not an HTTP method")]
    Method(String),
}

impl TapQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, QueryError> {
        let limit = match q.get("limit") {
            None => 100,
            Some(l) => l
                .parse()
                .ok()
                .filter(|l| (1..=100_000).contains(l))
                .ok_or_else(|| QueryError::Limit(l.clone()))?,
        };
        let max_wait = match q.get("max_wait") {
            None => Duration::from_secs(60),
            Some(w) => w
                .parse::<f64>()
                .ok()
                .filter(|w| *w > 0.0 && *w <= MAX_WAIT.as_secs_f64())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| QueryError::MaxWait(w.clone()))?,
        };
        let method = q
            .get("method")
            .map(|m| {
                http::Method::from_bytes(m.as_bytes()).map_err(|_| QueryError::Method(m.clone()))
            })
            .transpose()?;
        Ok(Self {
            namespace: q.get("namespace").cloned(),
            resource: q
                .get("resource")
                .map(|r| r.parse::<Resource>())
                .transpose()?,
            limit,
            max_wait,
            method,
            path: q.get("path").cloned(),
            authority: q.get("authority").cloned(),
        })
    }

    /// The query string that asks for this (the CLI's side).
    pub fn to_query(&self) -> String {
        let mut q = vec![
            format!("limit={}", self.limit),
            format!("max_wait={}", self.max_wait.as_secs_f64()),
        ];
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", crate::viz::url::escape(v)));
            }
        };
        add("namespace", &self.namespace);
        add("resource", &self.resource.as_ref().map(ToString::to_string));
        add("method", &self.method.as_ref().map(ToString::to_string));
        add("path", &self.path);
        add("authority", &self.authority);
        q.join("&")
    }

    /// The observer's match (all the filters).
    pub fn matcher(&self) -> Option<proto::observe_request::Match> {
        use m::http::string_match::Match as S;
        let http = |m: m::http::Match| proto::observe_request::Match {
            r#match: Some(m::Match::Http(m::Http { r#match: Some(m) })),
        };
        let mut all = Vec::new();
        if let Some(method) = &self.method {
            all.push(http(m::http::Match::Method(method.clone().into())));
        }
        if let Some(p) = &self.path {
            all.push(http(m::http::Match::Path(m::http::StringMatch {
                r#match: Some(S::Prefix(p.clone())),
            })));
        }
        if let Some(a) = &self.authority {
            all.push(http(m::http::Match::Authority(m::http::StringMatch {
                r#match: Some(S::Exact(a.clone())),
            })));
        }
        (!all.is_empty()).then_some(proto::observe_request::Match {
            r#match: Some(m::Match::All(m::Seq { matches: all })),
        })
    }
}

/// Starts the taps; the receiver yields the stream's lines (ending when
/// every tap has ended or at `max_wait`). Err: no workload matched.
pub fn start(
    tapper: Arc<Tapper>,
    index: &Mutex<ztmesh_policy::Index>,
    q: &TapQuery,
) -> Result<tokio::sync::mpsc::Receiver<String>, String> {
    let workloads = {
        let index = index.lock().expect("policy index lock");
        let (ns, resource) = (q.namespace.as_deref(), q.resource.as_ref());
        let workloads = workloads_in(&index, ns, resource, 4190);
        if workloads.is_empty() {
            return Err(crate::resource::nothing_selected(&index, ns, resource).to_string());
        }
        workloads
    };
    let (lines_tx, lines) = tokio::sync::mpsc::channel::<String>(256);
    let (events_tx, mut events) = tokio::sync::mpsc::channel::<TapLine>(256);
    let request = proto::ObserveRequest {
        limit: q.limit,
        r#match: q.matcher(),
        extract: None,
    };
    for (ns, name, addr) in workloads {
        let workload = format!("{ns}/{name}");
        let (tapper, request, events, lines) = (
            tapper.clone(),
            request.clone(),
            events_tx.clone(),
            lines_tx.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = tapper
                .observe(workload.clone(), addr, request, events)
                .await
            {
                tracing::warn!(%workload, "tap: {e}");
                let item = Item::Error {
                    workload,
                    error: e.to_string(),
                };
                let _ = lines.send(json_line(&item)).await;
            }
        });
    }
    drop(events_tx);
    let deadline = tokio::time::Instant::now() + q.max_wait;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(e) => if lines_tx.send(json_line(&Item::Event(Box::new(e)))).await.is_err() { return },
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = lines_tx.closed() => return,
            }
        }
    });
    Ok(lines)
}

fn json_line(item: &Item) -> String {
    let mut s = serde_json::to_string(item).expect("tap items serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_parse_and_round_trip() {
        let parsed = TapQuery::parse(&q(&[
            ("namespace", "booksapp"),
            ("resource", "po/authors"),
            ("limit", "3"),
            ("max_wait", "20"),
            ("method", "GET"),
            ("path", "/books"),
        ]))
        .unwrap();
        assert_eq!(parsed.limit, 3);
        assert_eq!(parsed.max_wait, Duration::from_secs(20));
        assert!(parsed.matcher().is_some());
        let again: HashMap<String, String> = crate::viz::url::query(Some(&parsed.to_query()));
        assert_eq!(TapQuery::parse(&again).unwrap(), parsed);
        let plain = TapQuery::parse(&q(&[])).unwrap();
        assert_eq!(
            (plain.limit, plain.max_wait, plain.matcher()),
            (100, Duration::from_secs(60), None)
        );
        // (query, error)
        let bad = [
            (("limit", "0"), "limit must be"),
            (("limit", "x"), "limit must be"),
            (("max_wait", "-1"), "max_wait must be"),
            (("max_wait", "99999"), "max_wait must be"),
            (("method", "G T"), "not an HTTP method"),
            (("resource", "svc/x"), "svc/x"),
        ];
        for ((k, v), want) in bad {
            let err = TapQuery::parse(&q(&[(k, v)])).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
            assert_eq!(err.starts_with("resource "), k == "resource", "{err}");
        }
    }
}
