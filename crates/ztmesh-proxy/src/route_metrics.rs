//! Per-route outbound metrics (ServiceProfile routes): requests, responses
//! by status and classification, retries, timeouts and retries refused by
//! the budget, labelled with the destination authority and the route name,
//! so `ztmesh viz routes` can show them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteEvent {
    Request,
    Retry,
    Timeout,
    BudgetExhausted,
}

impl RouteEvent {
    const ALL: [RouteEvent; 4] = [
        RouteEvent::Request,
        RouteEvent::Retry,
        RouteEvent::Timeout,
        RouteEvent::BudgetExhausted,
    ];

    fn family(self) -> (&'static str, &'static str) {
        match self {
            Self::Request => (
                "outbound_route_request_total",
                "Requests per route, not counting retries.",
            ),
            Self::Retry => ("outbound_route_retry_total", "Retries sent per route."),
            Self::Timeout => (
                "outbound_route_timeout_total",
                "Requests answered 504 because the route's timeout expired.",
            ),
            Self::BudgetExhausted => (
                "outbound_route_retry_budget_exhausted_total",
                "Retries not sent because the retry budget was spent.",
            ),
        }
    }
}

#[derive(Debug, Default)]
pub struct RouteMetrics {
    events: Mutex<BTreeMap<(RouteEvent, String), u64>>,
    /// (labels with status and classification) -> count
    responses: Mutex<BTreeMap<String, u64>>,
}

/// Counts one more for `key`; past [`crate::metrics::MAX_SERIES`] label
/// sets (the authority comes from clients), new ones are not created.
fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
    } else if map.len() < crate::metrics::MAX_SERIES {
        map.insert(key, 1);
    }
}

fn labels(dst: &str, route: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "direction=\"outbound\",dst=\"{}\",route_name=\"{}\"",
        esc(dst),
        esc(route)
    )
}

impl RouteMetrics {
    pub fn record(&self, event: RouteEvent, dst: &str, route: &str) {
        bump(
            &mut self.events.lock().expect("route metrics lock"),
            (event, labels(dst, route)),
        );
    }

    pub fn response(&self, dst: &str, route: &str, status: u16, failure: bool) {
        let classification = if failure { "failure" } else { "success" };
        let key = format!(
            "{},status_code=\"{status}\",classification=\"{classification}\"",
            labels(dst, route)
        );
        bump(&mut self.responses.lock().expect("route metrics lock"), key);
    }

    /// Current count of one event (tests and the CLI read it).
    pub fn count(&self, event: RouteEvent, dst: &str, route: &str) -> u64 {
        self.events
            .lock()
            .expect("route metrics lock")
            .get(&(event, labels(dst, route)))
            .copied()
            .unwrap_or(0)
    }

    pub fn encode(&self, out: &mut String) {
        let events = self.events.lock().expect("route metrics lock");
        for event in RouteEvent::ALL {
            let (name, help) = event.family();
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((e, l), n) in events.iter() {
                if *e == event {
                    let _ = writeln!(out, "{name}{{{l}}} {n}");
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP outbound_route_response_total Responses per route, by status and classification.\n# TYPE outbound_route_response_total counter"
        );
        for (l, n) in self.responses.lock().expect("route metrics lock").iter() {
            let _ = writeln!(out, "outbound_route_response_total{{{l}}} {n}");
        }
    }
}
