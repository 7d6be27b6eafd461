//! Retries: the budget that bounds them and the backoff between them.
//!
//! "Retries may add at most `retryRatio` of the requests seen in the last
//! `ttl`, plus `minRetriesPerSecond`" (Linkerd's retry budget, defaults
//! 0.2 / 10 / 10s): every request deposits, every retry withdraws, and
//! deposits and withdrawals older than `ttl` no longer count, so retries
//! can never multiply load beyond the budget. Time goes through
//! `tokio::time`, so the budget is tested on a paused clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Slots per ttl: deposits expire in steps of ttl / SLOTS.
const SLOTS: u32 = 10;

#[derive(Debug)]
pub(crate) struct RetryBudget {
    ratio: f64,
    reserve: f64,
    ttl: Duration,
    window: Mutex<VecDeque<Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: Instant,
    deposits: u64,
    withdrawals: u64,
}

impl RetryBudget {
    pub(crate) fn new(ratio: f32, min_per_second: u32, ttl: Duration) -> Self {
        let ttl = if ttl.is_zero() {
            Duration::from_secs(10)
        } else {
            ttl
        };
        Self {
            ratio: f64::from(ratio.clamp(0.0, 1000.0)),
            reserve: f64::from(min_per_second) * ttl.as_secs_f64(),
            ttl,
            window: Mutex::default(),
        }
    }

    fn slot(&self, now: Instant) -> std::sync::MutexGuard<'_, VecDeque<Slot>> {
        let mut w = self.window.lock().expect("retry budget lock");
        while w
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.start) >= self.ttl)
        {
            w.pop_front();
        }
        let width = self.ttl / SLOTS;
        if w.back()
            .is_none_or(|s| now.saturating_duration_since(s.start) >= width)
        {
            w.push_back(Slot {
                start: now,
                deposits: 0,
                withdrawals: 0,
            });
        }
        w
    }

    /// A request was sent (not a retry).
    pub(crate) fn deposit(&self) {
        let mut w = self.slot(Instant::now());
        w.back_mut().expect("a current slot").deposits += 1;
    }

    /// May one more retry be sent? Withdraws it if so.
    pub(crate) fn try_withdraw(&self) -> bool {
        let mut w = self.slot(Instant::now());
        let (deposits, withdrawals) = w.iter().fold((0u64, 0u64), |(d, r), s| {
            (d + s.deposits, r + s.withdrawals)
        });
        let balance = self.reserve + self.ratio * deposits as f64 - withdrawals as f64;
        if balance >= 1.0 {
            w.back_mut().expect("a current slot").withdrawals += 1;
            true
        } else {
            false
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` (from 1) waits a
/// random time up to min(BASE x 2^(n-1), MAX).
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(25);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(250);

pub(crate) fn backoff(attempt: u32, random_unit: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(BACKOFF_MAX).mul_f64(random_unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_retries_and_forgets_after_the_ttl() {
        // Linkerd's defaults: 20% of requests, plus 10/s over 10s.
        let b = RetryBudget::new(0.2, 10, Duration::from_secs(10));
        for _ in 0..1000 {
            b.deposit();
        }
        // 10/s x 10s = 100 in reserve, plus 20% of 1,000 = 200.
        let granted = (0..1000).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 300);
        assert!(!b.try_withdraw());
        // Past the ttl the old deposits and withdrawals are forgotten.
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..1000).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 100, "only the reserve remains");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_reserve_only_the_ratio_counts() {
        let b = RetryBudget::new(0.5, 0, Duration::from_secs(1));
        assert!(!b.try_withdraw());
        b.deposit();
        b.deposit();
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(25));
        assert_eq!(backoff(2, 1.0), Duration::from_millis(50));
        assert_eq!(backoff(4, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(5, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(40, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(3, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(3, 0.0), Duration::ZERO);
    }
}
