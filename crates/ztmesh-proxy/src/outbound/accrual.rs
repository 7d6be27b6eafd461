//! Failure accrual: endpoints that keep failing leave the balancer for a
//! while, as Linkerd's `balancer.linkerd.io/failure-accrual: consecutive`
//! prescribes.
//!
//! "After `max-failures` consecutive failures (connection errors or 5xx)
//! an endpoint is unavailable for a penalty that starts at the minimum
//! backoff and doubles (with jitter) up to the maximum; when the penalty
//! ends it is probed: the next request may go to it, one failure sends it
//! back out with a longer penalty, one success restores it." Time goes
//! through `tokio::time`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccrualConfig {
    pub(crate) max_failures: u32,
    pub(crate) min_penalty: Duration,
    pub(crate) max_penalty: Duration,
    /// 0.0 to 1.0: how much of each penalty is random.
    pub(crate) jitter: f32,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    consecutive: u32,
    ejections: u32,
    until: Option<Instant>,
}

/// Endpoint health by address, for every target with accrual configured.
#[derive(Default)]
pub(crate) struct Accrual {
    states: Mutex<HashMap<SocketAddr, State>>,
}

impl Accrual {
    /// Whether the endpoint may take a request now.
    pub(crate) fn available(&self, addr: SocketAddr) -> bool {
        let states = self.states.lock().expect("accrual lock");
        states
            .get(&addr)
            .and_then(|s| s.until)
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Records a response: `failed` for connection errors and 5xx.
    /// Returns the penalty when this ejected the endpoint.
    pub(crate) fn record(
        &self,
        addr: SocketAddr,
        failed: bool,
        config: &AccrualConfig,
        random_unit: f64,
    ) -> Option<Duration> {
        let mut states = self.states.lock().expect("accrual lock");
        let s = states.entry(addr).or_default();
        if !failed {
            *s = State::default();
            return None;
        }
        s.consecutive += 1;
        if s.consecutive < config.max_failures.max(1) {
            return None;
        }
        let base = config
            .min_penalty
            .saturating_mul(1u32 << s.ejections.min(16))
            .min(config.max_penalty);
        let jitter = f64::from(config.jitter.clamp(0.0, 1.0));
        let penalty = base.mul_f64(1.0 - jitter * random_unit.clamp(0.0, 1.0));
        s.ejections += 1;
        // Back from the penalty on probation: one more failure ejects it again.
        s.consecutive = config.max_failures.max(1) - 1;
        s.until = Some(Instant::now() + penalty);
        Some(penalty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: AccrualConfig = AccrualConfig {
        max_failures: 3,
        min_penalty: Duration::from_secs(1),
        max_penalty: Duration::from_secs(4),
        jitter: 0.0,
    };

    #[tokio::test(start_paused = true)]
    async fn ejected_after_consecutive_failures_probed_after_the_penalty() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let accrual = Accrual::default();
        assert_eq!(accrual.record(a, true, &CONFIG, 0.0), None);
        assert_eq!(accrual.record(a, true, &CONFIG, 0.0), None);
        // A success in between resets the count.
        assert_eq!(accrual.record(a, false, &CONFIG, 0.0), None);
        assert_eq!(accrual.record(a, true, &CONFIG, 0.0), None);
        assert_eq!(accrual.record(a, true, &CONFIG, 0.0), None);
        assert_eq!(
            accrual.record(a, true, &CONFIG, 0.0),
            Some(Duration::from_secs(1))
        );
        assert!(!accrual.available(a));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!accrual.available(a));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(accrual.available(a), "probed once the penalty ends");
        // The probe fails: out again, for twice as long, then capped.
        assert_eq!(
            accrual.record(a, true, &CONFIG, 0.0),
            Some(Duration::from_secs(2))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            accrual.record(a, true, &CONFIG, 0.0),
            Some(Duration::from_secs(4))
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            accrual.record(a, true, &CONFIG, 0.0),
            Some(Duration::from_secs(4))
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        // The probe succeeds: restored, counting from zero.
        assert_eq!(accrual.record(a, false, &CONFIG, 0.0), None);
        assert!(accrual.available(a));
        assert_eq!(accrual.record(a, true, &CONFIG, 0.0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_shortens_the_penalty_within_its_ratio() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let accrual = Accrual::default();
        let config = AccrualConfig {
            max_failures: 1,
            jitter: 0.5,
            ..CONFIG
        };
        assert_eq!(
            accrual.record(a, true, &config, 1.0),
            Some(Duration::from_millis(500))
        );
    }
}
