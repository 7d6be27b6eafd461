//! Giving memory back after a burst.
//!
//! A flood of connections grows the heap (each connection's buffers and
//! state); when they close, the allocator keeps the freed pages, so a proxy
//! that once held 5,000 connections stayed ten times its resting size.
//! Every [`PERIOD`] this task looks at the open connections and the RSS:
//! when connections have closed since the last look and the RSS has grown
//! well past what it was after the last trim, glibc's `malloc_trim` ([`crate::sys`]) returns
//! the free pages of every arena to the kernel. Nothing runs on the
//! request path, and a steady proxy is never trimmed.

use std::time::Duration;

pub(crate) const PERIOD: Duration = Duration::from_secs(5);

/// Whether to trim now: most of the connections seen since the last
/// trim have closed, and the RSS is past 1.5x (and 4 MiB over) the
/// proxy's resting size.
pub(crate) fn should_trim(peak_open: usize, open_now: usize, rss: u64, resting: u64) -> bool {
    peak_open > 2 * open_now + 16 && rss > resting + resting / 2 && rss > resting + (4 << 20)
}

/// Runs forever; `open` counts the open connections (sampled every
/// second, so a burst is seen even between decisions). The resting size
/// is the smallest RSS seen.
pub(crate) async fn run(open: impl Fn() -> usize) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = open();
    let mut resting = rss_bytes().unwrap_or(0);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        let now = open();
        peak = peak.max(now);
        ticks += 1;
        if !ticks.is_multiple_of(PERIOD.as_secs()) {
            continue;
        }
        let rss = rss_bytes().unwrap_or(0);
        resting = resting.min(rss);
        if should_trim(peak, now, rss, resting) {
            let trimmed = trim();
            let after = rss_bytes().unwrap_or(rss);
            // Trimmed again only once as many connections close again.
            peak = now;
            tracing::info!(
                trimmed,
                rss_before = rss,
                rss_after = after,
                open = now,
                "returned free memory to the kernel after a burst of connections"
            );
        }
    }
}

/// The resident set size, from `/proc/self/statm`.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * crate::sys::page_size()?)
}

fn trim() -> bool {
    crate::sys::malloc_trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_a_burst_closed_and_the_heap_grew() {
        const MIB: u64 = 1 << 20;
        let cases = [
            // (peak open, open now, rss, resting rss, trim?)
            (5_000, 10, 100 * MIB, 13 * MIB, true),
            (5_000, 10, 15 * MIB, 13 * MIB, false), // barely grew
            (100, 90, 100 * MIB, 13 * MIB, false),  // steady load: never
            (5_000, 5_000, 100 * MIB, 13 * MIB, false), // a flood going on
            (40, 2, 6 * MIB, 2 * MIB, false),       // small heaps: 4 MiB floor
        ];
        for (before, now, rss, base, want) in cases {
            assert_eq!(
                should_trim(before, now, rss, base),
                want,
                "{before} {now} {rss} {base}"
            );
        }
    }

    #[test]
    fn reads_its_own_rss() {
        assert!(rss_bytes().unwrap() > 1 << 20);
    }
}
