//! Reconnecting to the control plane: exponential backoff with jitter,
//! shared by every stream the proxy keeps open (Destination Get and
//! GetProfile, OutboundPolicies, InboundServerPolicies). While a stream is
//! down its last answer stays in force; the backoff only paces the
//! attempts to reopen it.

use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// 100 ms doubling to 5 s: a restarted controller is found again
    /// within a few seconds, a dead one is not hammered.
    pub(crate) fn control_plane() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The next delay: half of the current step plus up to another half
    /// (`random` in [0, 1)), then the step doubles up to the ceiling.
    pub(crate) fn next_delay(&mut self, random: f64) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step / 2 + step.mul_f64(random.clamp(0.0, 1.0) / 2.0)
    }

    pub(crate) async fn wait(&mut self) {
        let delay = self.next_delay(fastrand::f64());
        tokio::time::sleep(delay).await;
    }

    /// After an answer: the next failure starts from the shortest delay.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_ceiling_with_jitter_and_resets() {
        let mut b = Backoff::control_plane();
        let lows: Vec<u64> = (0..8)
            .map(|_| b.next_delay(0.0).as_millis() as u64)
            .collect();
        assert_eq!(lows, [50, 100, 200, 400, 800, 1600, 2500, 2500]);
        let mut b = Backoff::control_plane();
        let highs: Vec<u64> = (0..8)
            .map(|_| b.next_delay(0.999_999).as_millis() as u64)
            .collect();
        assert_eq!(highs, [99, 199, 399, 799, 1599, 3199, 4999, 4999]);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
    }
}
