//! Waiting in tests: [`eventually`] (and [`eventually_async`]) poll a
//! condition until a deadline and fail naming what was awaited and the last
//! thing seen; [`serial`] keeps the heavy suites (floods, load runs, rate
//! and memory measurements, the raised open-files limit) from running at
//! the same time now that every suite shares one test process.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every 50 ms until it returns `Ok`, for at most `within`;
/// returns that value. On timeout, panics naming `what` and the last
/// observation (the last `Err`).
pub fn eventually<T, O: Debug>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, O>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for async probes, sleeping with `tokio::time`.
pub async fn eventually_async<T, O: Debug, F: Future<Output = Result<T, O>>>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok(seen)` when `cond` holds, else `Err(seen)`: for probes that observe
/// a value and test it (the value is returned, or reported on timeout).
pub fn check<O>(cond: bool, seen: O) -> Result<O, O> {
    if cond { Ok(seen) } else { Err(seen) }
}

static HEAVY: Mutex<()> = Mutex::new(());

/// Held by a heavy test for its whole run: floods of connections (which
/// share the process's open-files limit), load runs whose rates or failure
/// counts are measured, and memory measurements. A test that failed while
/// holding it does not block the others (the poison is ignored).
pub fn serial() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
