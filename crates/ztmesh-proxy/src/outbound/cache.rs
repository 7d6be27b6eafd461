//! The discovery caches: one watched answer per target, kept current by a
//! follower task (the target's control-plane stream), and dropped with
//! that task once nobody has looked the target up for [`IDLE_TIMEOUT`],
//! as linkerd2-proxy drops the discovery of services that receive no
//! traffic. The next lookup opens a fresh stream.
//!
//! Negative answers (no profile, no policy) are remembered for a while in
//! a [`Negative`] set, which forgets expired entries as it records new ones.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a target's watch outlives its last lookup.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Watched answers by target.
pub(crate) struct IdleCache<T> {
    entries: Arc<Mutex<HashMap<String, Entry<T>>>>,
    idle: Duration,
}

struct Entry<T> {
    rx: watch::Receiver<T>,
    last_used: Instant,
    /// Tells an evicted entry from a newer one for the same target.
    generation: u64,
}

impl<T> Clone for IdleCache<T> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            idle: self.idle,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> IdleCache<T> {
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            entries: Arc::default(),
            idle,
        }
    }

    /// The target's current answer, marking it used.
    pub(crate) fn get(&self, target: &str) -> Option<T> {
        let mut entries = self.entries.lock().expect("discovery cache");
        let entry = entries.get_mut(target)?;
        entry.last_used = Instant::now();
        Some(entry.rx.borrow().clone())
    }

    /// Caches `rx` for `target` and runs `follow` (which keeps it current)
    /// until it ends or the entry has been idle for the timeout; either way
    /// the entry is removed. `follow` gets a handle that removes it early
    /// (the control plane says the target is gone).
    pub(crate) fn insert<F, Fut>(&self, target: &str, rx: watch::Receiver<T>, follow: F)
    where
        F: FnOnce(Evict<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.lock().expect("discovery cache").insert(
            target.to_string(),
            Entry {
                rx,
                last_used: Instant::now(),
                generation,
            },
        );
        let evict = Evict {
            cache: self.clone(),
            target: target.to_string(),
            generation,
        };
        let follow = follow(evict.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = follow => {}
                () = evict.idle() => {
                    tracing::debug!(target = %evict.target, "discovery unused: dropping its watch");
                }
            }
            evict.evict();
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("discovery cache").len()
    }
}

/// Removes one cache entry (and not a newer one for the same target).
pub(crate) struct Evict<T> {
    cache: IdleCache<T>,
    target: String,
    generation: u64,
}

impl<T> Clone for Evict<T> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            target: self.target.clone(),
            generation: self.generation,
        }
    }
}

impl<T> Evict<T> {
    pub(crate) fn evict(&self) {
        let mut entries = self.cache.entries.lock().expect("discovery cache");
        if entries
            .get(&self.target)
            .is_some_and(|e| e.generation == self.generation)
        {
            entries.remove(&self.target);
        }
    }

    /// Completes once the entry has gone unused for the idle timeout (or
    /// is gone).
    async fn idle(&self) {
        loop {
            let last_used = {
                let entries = self.cache.entries.lock().expect("discovery cache");
                match entries.get(&self.target) {
                    Some(e) if e.generation == self.generation => e.last_used,
                    _ => return,
                }
            };
            let deadline = last_used + self.cache.idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Targets the control plane had no answer for, each until a deadline.
#[derive(Default)]
pub(crate) struct Negative(Mutex<HashMap<String, Instant>>);

impl Negative {
    /// Whether `target` was recorded less than its time to live ago.
    pub(crate) fn contains(&self, target: &str) -> bool {
        self.0
            .lock()
            .expect("negative cache")
            .get(target)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// Records `target` for `ttl`, forgetting every expired entry.
    pub(crate) fn insert(&self, target: &str, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.0.lock().expect("negative cache");
        entries.retain(|_, until| now < *until);
        entries.insert(target.to_string(), now + ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unused_entries_are_evicted_and_their_watch_dropped() {
        let cache = IdleCache::<u32>::new(Duration::from_secs(60));
        let (tx, rx) = watch::channel(7);
        let mut stream_open = tx.subscribe();
        cache.insert("a:80", rx, move |_evict| async move {
            // The follower holds its stream (here: the sender) until dropped.
            let _stream = tx;
            std::future::pending::<()>().await
        });
        assert_eq!(cache.get("a:80"), Some(7));

        // Used at 50s: kept past 60s.
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(cache.get("a:80"), Some(7));
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(cache.len(), 1, "used 50s ago: still cached");

        // Unused for 60s: evicted, and the follower (its stream) dropped.
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(30), stream_open.changed())
            .await
            .expect("the follower is dropped within the idle timeout")
            .expect_err("the stream's sender is dropped, not used");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(cache.get("a:80"), None);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_that_ends_removes_only_its_own_entry() {
        let cache = IdleCache::<u32>::new(Duration::from_secs(60));
        let (tx1, rx1) = watch::channel(1);
        let mut first_open = tx1.subscribe();
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
        cache.insert("a:80", rx1, move |_evict| async move {
            let _stream = tx1;
            let _ = gone_rx.await;
        });
        // A newer entry for the same target replaces it.
        let (_tx2, rx2) = watch::channel(2);
        cache.insert("a:80", rx2, |_evict| std::future::pending());
        // The first follower ends (its task then evicts, in the same poll).
        let _ = gone_tx.send(());
        assert!(first_open.changed().await.is_err());
        assert_eq!(cache.get("a:80"), Some(2), "the newer entry stays");

        // A follower told the target is gone evicts at once.
        let (_tx3, rx3) = watch::channel(3);
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
        let (evicted_tx, evicted_rx) = tokio::sync::oneshot::channel::<()>();
        cache.insert("b:80", rx3, move |evict| async move {
            let _ = gone_rx.await;
            evict.evict();
            let _ = evicted_tx.send(());
            std::future::pending::<()>().await
        });
        assert_eq!(cache.get("b:80"), Some(3));
        let _ = gone_tx.send(());
        evicted_rx.await.unwrap();
        assert_eq!(cache.get("b:80"), None);
        assert_eq!(cache.get("a:80"), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn negative_answers_expire_and_are_forgotten() {
        let negative = Negative::default();
        negative.insert("a:80", Duration::from_secs(10));
        assert!(negative.contains("a:80") && !negative.contains("b:80"));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!negative.contains("a:80"));
        negative.insert("b:80", Duration::from_secs(10));
        assert_eq!(negative.0.lock().unwrap().len(), 1, "a:80 is forgotten");
        assert!(negative.contains("b:80"));
    }
}
