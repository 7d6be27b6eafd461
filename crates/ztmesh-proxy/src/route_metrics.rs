//! Per-route outbound metrics (ServiceProfile routes): requests, responses
//! by status and classification, retries, timeouts and retries refused by
//! the budget, labelled with the destination authority and the route name,
//! so `ztmesh viz routes` can show them.

use crate::metrics::{MAX_SERIES, Registry, label};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

    /// The family's name (less the `_total` the encoder adds) and help.
    fn family(self) -> (&'static str, &'static str) {
        match self {
            Self::Request => (
                "outbound_route_request",
                "Requests per route, not counting retries",
            ),
            Self::Retry => ("outbound_route_retry", "Retries sent per route"),
            Self::Timeout => (
                "outbound_route_timeout",
                "Requests answered 504 because the route's timeout expired",
            ),
            Self::BudgetExhausted => (
                "outbound_route_retry_budget_exhausted",
                "Retries not sent because the retry budget was spent",
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RouteLabels {
    dst: String,
    route: String,
}

impl RouteLabels {
    fn new(dst: &str, route: &str) -> Self {
        Self {
            dst: dst.into(),
            route: route.into(),
        }
    }
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        label(encoder, "direction", "outbound")?;
        label(encoder, "dst", self.dst.as_str())?;
        label(encoder, "route_name", self.route.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResponseLabels {
    route: RouteLabels,
    status: u16,
    failure: bool,
}

impl EncodeLabelSet for ResponseLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        self.route.encode(encoder)?;
        label(encoder, "status_code", self.status)?;
        let classification = if self.failure { "failure" } else { "success" };
        label(encoder, "classification", classification)
    }
}

#[derive(Debug, Default)]
pub struct RouteMetrics {
    /// By [`RouteEvent`], in [`RouteEvent::ALL`]'s order.
    events: [Family<RouteLabels, Counter>; RouteEvent::ALL.len()],
    responses: Family<ResponseLabels, Counter>,
    /// Label sets created, of the events and of the responses; past
    /// [`MAX_SERIES`] (the authority comes from clients), new ones are not.
    created: Mutex<(usize, usize)>,
}

/// Counts one more for `key`, creating its series if `created` (the
/// family's count, under its lock) is below [`MAX_SERIES`].
fn bump<K>(family: &Family<K, Counter>, key: &K, created: impl FnOnce() -> bool)
where
    K: Clone + Eq + std::hash::Hash,
{
    if let Some(n) = family.get(key) {
        n.inc();
    } else if created() {
        family.get_or_create(key).inc();
    }
}

impl RouteMetrics {
    /// Takes one more label set from the events' (or the responses')
    /// share of the bound, unless `key` has its series already.
    fn create<K>(&self, family: &Family<K, Counter>, key: &K, responses: bool) -> bool
    where
        K: Clone + Eq + std::hash::Hash,
    {
        let mut created = self.created.lock().expect("route metrics lock");
        if family.get(key).is_some() {
            return true;
        }
        let n = if responses {
            &mut created.1
        } else {
            &mut created.0
        };
        if *n >= MAX_SERIES {
            return false;
        }
        *n += 1;
        // Created under the lock, so the count stays exact.
        let _ = family.get_or_create(key);
        true
    }

    pub fn record(&self, event: RouteEvent, dst: &str, route: &str) {
        let family = &self.events[event as usize];
        let key = RouteLabels::new(dst, route);
        bump(family, &key, || self.create(family, &key, false));
    }

    pub fn response(&self, dst: &str, route: &str, status: u16, failure: bool) {
        let key = ResponseLabels {
            route: RouteLabels::new(dst, route),
            status,
            failure,
        };
        bump(&self.responses, &key, || {
            self.create(&self.responses, &key, true)
        });
    }

    /// Current count of one event (tests and the CLI read it).
    pub fn count(&self, event: RouteEvent, dst: &str, route: &str) -> u64 {
        self.events[event as usize]
            .get(&RouteLabels::new(dst, route))
            .map_or(0, |n| n.get())
    }

    /// Adds the families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        for event in RouteEvent::ALL {
            let (name, help) = event.family();
            crate::metrics::register(registry, name, help, self.events[event as usize].clone());
        }
        crate::metrics::register(
            registry,
            "outbound_route_response",
            "Responses per route, by status and classification",
            self.responses.clone(),
        );
    }

    /// The families in the Prometheus text format.
    pub fn encode(&self, out: &mut String) {
        crate::metrics::encode_into(out, |r| self.register(r));
    }
}
