//! Stage: pick one endpoint of a service for each request.
//!
//! Power of two choices over peak-EWMA load, as linkerd2-proxy balances
//! (tower's `PeakEwma`): two distinct endpoints are drawn at random and the
//! one with the lower cost wins, where cost = latency estimate × (requests
//! in flight + 1). The latency estimate jumps up to any slower observation
//! at once (the "peak") and decays towards faster ones with a time constant
//! (`DECAY`), so a slow endpoint sheds load immediately and regains it
//! gradually. A new endpoint starts at `DEFAULT_RTT`, like tower's default.
//!
//! The endpoint set itself comes from discovery and may change at any time;
//! load is kept per address, so an endpoint that stays keeps its estimate
//! and one that leaves is forgotten. In-flight requests hold their own
//! handle and finish normally when their endpoint leaves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The latency assumed for an endpoint with no observation yet.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// How fast the estimate forgets a slow observation.
pub(crate) const DECAY: Duration = Duration::from_secs(10);

/// One endpoint's load: its latency estimate and requests in flight.
#[derive(Debug)]
pub(crate) struct Load {
    state: Mutex<Ewma>,
}

#[derive(Debug, Clone, Copy)]
struct Ewma {
    /// Estimated latency in nanoseconds.
    rtt_ns: f64,
    stamp: Instant,
    pending: u32,
}

impl Load {
    fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(Ewma {
                rtt_ns: DEFAULT_RTT.as_nanos() as f64,
                stamp: now,
                pending: 0,
            }),
        }
    }

    /// The cost of sending one more request here, at `now`.
    pub(crate) fn cost(&self, now: Instant) -> f64 {
        let s = *self.state.lock().expect("load lock");
        decayed(s.rtt_ns, s.stamp, now) * f64::from(s.pending + 1)
    }

    /// Marks a request in flight until the returned guard is finished or dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.state.lock().expect("load lock").pending += 1;
        InFlight {
            load: self.clone(),
            started: Instant::now(),
            done: false,
        }
    }

    fn observe(&self, rtt: Duration, now: Instant) {
        let mut s = self.state.lock().expect("load lock");
        let rtt_ns = rtt.as_nanos() as f64;
        s.rtt_ns = if rtt_ns > s.rtt_ns {
            // The peak: a slower observation replaces the estimate at once.
            rtt_ns
        } else {
            // Towards the observation, as far as the time since the last
            // one allows.
            let elapsed = now.saturating_duration_since(s.stamp).as_secs_f64();
            let w = (-elapsed / DECAY.as_secs_f64()).exp();
            s.rtt_ns * w + rtt_ns * (1.0 - w)
        };
        s.stamp = now;
    }

    fn finish(&self) {
        let mut s = self.state.lock().expect("load lock");
        s.pending = s.pending.saturating_sub(1);
    }
}

/// The estimate as it has decayed since `stamp`: with no new observation
/// it moves towards zero, so an endpoint that has not been tried for a
/// while gets tried again.
fn decayed(rtt_ns: f64, stamp: Instant, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(stamp).as_secs_f64();
    rtt_ns * (-elapsed / DECAY.as_secs_f64()).exp()
}

/// A request in flight on one endpoint; observes its latency when finished
/// (the response head arrived), and only counts as pending if dropped early.
pub(crate) struct InFlight {
    load: Arc<Load>,
    started: Instant,
    done: bool,
}

impl InFlight {
    pub(crate) fn finish(mut self) {
        let now = Instant::now();
        self.load.observe(now - self.started, now);
        self.load.finish();
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.load.finish();
        }
    }
}

/// Loads by endpoint address, shared by every request of the proxy.
#[derive(Default)]
pub(crate) struct Balancer {
    loads: Mutex<HashMap<SocketAddr, Arc<Load>>>,
}

impl Balancer {
    /// Picks one of `endpoints` (which must not be empty) by power of two
    /// choices, with `random` drawing an index below its argument.
    pub(crate) fn pick<'a, T>(
        &self,
        endpoints: &'a [T],
        addr: impl Fn(&T) -> SocketAddr,
        random: impl FnMut(usize) -> usize,
    ) -> (&'a T, Arc<Load>) {
        let now = Instant::now();
        let mut loads = self.loads.lock().expect("balancer lock");
        // Forget endpoints that are gone once the table has grown stale.
        if loads.len() > 4 * endpoints.len().max(16) {
            let live: std::collections::HashSet<_> = endpoints.iter().map(&addr).collect();
            loads.retain(|a, _| live.contains(a));
        }
        let mut load = |e: &T| {
            loads
                .entry(addr(e))
                .or_insert_with(|| Arc::new(Load::new(now)))
                .clone()
        };
        let i = choose(endpoints.len(), random, |i| load(&endpoints[i]).cost(now));
        let chosen = &endpoints[i];
        (chosen, load(chosen))
    }
}

/// Power of two choices: of two distinct random indexes below `n`, the one
/// with the lower cost (ties to the first draw).
pub(crate) fn choose(
    n: usize,
    mut random: impl FnMut(usize) -> usize,
    mut cost: impl FnMut(usize) -> f64,
) -> usize {
    match n {
        0 => panic!("choose needs at least one endpoint"),
        1 => 0,
        _ => {
            let a = random(n);
            // A second index distinct from the first.
            let b = (a + 1 + random(n - 1)) % n;
            if cost(b) < cost(a) { b } else { a }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_table() {
        // (n, draws, costs, chosen)
        let cases: &[(usize, [usize; 2], &[f64], usize)] = &[
            (1, [0, 0], &[5.0], 0),
            (2, [0, 0], &[5.0, 1.0], 1),
            (2, [1, 0], &[5.0, 1.0], 1),
            (2, [0, 0], &[1.0, 5.0], 0),
            (3, [2, 0], &[1.0, 9.0, 4.0], 0),
            (3, [2, 1], &[1.0, 9.0, 4.0], 2),
            // Ties keep the first draw.
            (3, [1, 0], &[3.0, 3.0, 3.0], 1),
        ];
        for (n, draws, costs, want) in cases {
            let mut d = draws.iter().copied();
            let got = choose(*n, |below| d.next().unwrap() % below, |i| costs[i]);
            assert_eq!(got, *want, "n={n} draws={draws:?} costs={costs:?}");
        }
    }

    #[test]
    fn second_draw_is_always_distinct() {
        for n in 2..6 {
            for a in 0..n {
                for r in 0..n - 1 {
                    let mut d = [a, r].into_iter();
                    let mut seen = Vec::new();
                    choose(
                        n,
                        |_| d.next().unwrap(),
                        |i| {
                            seen.push(i);
                            0.0
                        },
                    );
                    assert_ne!(seen[0], seen[1], "n={n} a={a} r={r}");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn peak_then_decay() {
        let now = Instant::now();
        let load = Arc::new(Load::new(now));
        assert_eq!(load.cost(now), DEFAULT_RTT.as_nanos() as f64);
        // A slow response is the new estimate at once.
        load.observe(Duration::from_millis(500), now);
        assert_eq!(load.cost(now), 500e6);
        // A fast one moves it down only as time passes.
        load.observe(Duration::from_millis(1), now);
        assert_eq!(load.cost(now), 500e6);
        let later = now + DECAY;
        load.observe(Duration::from_millis(1), later);
        let expected = 500e6 * (-1f64).exp() + 1e6 * (1.0 - (-1f64).exp());
        assert!(
            (load.cost(later) - expected).abs() < 1.0,
            "{}",
            load.cost(later)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_raise_the_cost_and_slow_endpoints_lose() {
        let balancer = Balancer::default();
        let eps: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        // Two requests in flight on the first endpoint: the second wins.
        let (_, l1) = balancer.pick(&eps, |a| *a, |_| 0);
        let (_a, _b) = (l1.start(), l1.start());
        let (chosen, _) = balancer.pick(&eps, |a| *a, |_| 0);
        assert_eq!(*chosen, eps[1]);
        drop((_a, _b));
        // The second is observed slow: the first wins from now on.
        let (_, l2) = balancer.pick(&eps, |a| *a, |_| 1);
        let slow = l2.start();
        tokio::time::advance(Duration::from_secs(1)).await;
        slow.finish();
        for draw in 0..2 {
            let (chosen, _) = balancer.pick(&eps, |a| *a, |n| draw % n);
            assert_eq!(*chosen, eps[0], "draw {draw}");
        }
    }
}
